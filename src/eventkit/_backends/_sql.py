"""SQL templates for backends whose table names carry a prefix."""

from __future__ import annotations


class _KeepUnknown(dict[str, str]):
    # Leaves placeholders that are not table names (``{marks}``) for a later format().
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class SQLTemplates:
    """
    SQL statements as class attributes, spliced once with a store's table names.

    Subclass it with one string attribute per statement, naming tables in braces
    (``"SELECT max(position) FROM {events}"``); an instance holds the statements with
    the names filled in. Placeholders that are not table names are left for later.
    Names must come from a checked prefix: they are spliced into SQL.
    """

    def __init__(self, **tables: str) -> None:
        names = _KeepUnknown(tables)
        for cls in reversed(type(self).__mro__):
            for attribute, template in vars(cls).items():
                if not attribute.startswith("_") and isinstance(template, str):
                    setattr(self, attribute, template.format_map(names))
