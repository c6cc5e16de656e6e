"""
The cattrs converter: the wire format of every stored value, and its strict reading.

`make_converter` decides how each type is written (Decimals, UUIDs and times as
strings, bytes as base64, sets as lists) and reads stored data back strictly: a value
is returned exactly as it was written, or structuring raises. cattrs' own hooks convert
whatever they are given (``str(None)`` is ``'None'``, ``int(3.7)`` is ``3``); these
check the JSON type first. Data whose keys differ from the class's fields is refused
too, so that neither a default nor a dropped key can stand in for stored data.

Attrs classes are structured by a function generated once per class: a fast path that
checks types inline and builds the instance, and, only when it fails, cattrs' detailed
structuring to say which field failed and why (``$.amount``).
"""

from __future__ import annotations

import base64
import binascii
import collections.abc
import enum
import linecache
import typing
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from uuid import UUID

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)

from eventkit._json import json_kind

T = TypeVar("T")
_Hook = typing.Callable[[Any, Any], Any]


class StoredValueError(ValueError):
    """A stored value does not have the type its field declares; the message says both."""


def _refuse(expected: str, value: object) -> StoredValueError:
    kind = json_kind(value)
    shown = "" if value is None or isinstance(value, bool) else f" ({value!r:.60})"
    return StoredValueError(f"expected {expected}, got a JSON {kind}{shown}")


# -- scalars ----------------------------------------------------------------------------------
# Each hook returns the value only when its JSON type is the one the field's type is
# written as. Hooks registered for a builtin class also see its subclasses (cattrs
# dispatches str, int, ... by class), which for the builtins means enums.


def _structure_str(value: Any, cls: Any) -> Any:
    if value.__class__ is str and cls is str:
        return value
    return _subclass_or_refuse(value, cls, str, "a string")


def _structure_int(value: Any, cls: Any) -> Any:
    if value.__class__ is int and cls is int:
        return value
    return _subclass_or_refuse(value, cls, int, "an integer")


def _structure_bool(value: Any, _: Any) -> Any:
    if value.__class__ is bool:
        return value
    raise _refuse("true or false", value)


def _structure_float(value: Any, cls: Any) -> Any:
    if value.__class__ is float and cls is float:
        return value
    # JSON has one number type: a writer may drop ".0". An integer is accepted when it
    # is exactly a float; a larger one would come back rounded.
    if value.__class__ is int and cls is float:
        try:
            result = float(value)
        except OverflowError:
            result = None
        if result == value:
            return result
        raise StoredValueError(f"the integer {value} is not exactly a float")
    return _subclass_or_refuse(value, cls, float, "a number")


def _subclass_or_refuse(value: Any, cls: Any, base: type, expected: str) -> Any:
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        return _structure_enum(value, cls)
    if cls is not base and isinstance(cls, type) and value.__class__ is base:
        return cls(value)  # a subclass of a builtin, built from the builtin, as cattrs does
    raise _refuse(expected, value)


def _structure_enum(value: Any, cls: Any) -> Any:
    try:
        member = cls(value)
    except (ValueError, TypeError):
        names = ", ".join(repr(member.value) for member in cls)
        raise StoredValueError(
            f"{value!r:.60} is not a value of {cls.__qualname__} ({names})"
        ) from None
    # Enum lookup goes by equality: 1.0 and True would find the member whose value is 1.
    if member.value.__class__ is not value.__class__:
        raise _refuse(f"{member.value!r} as a JSON {json_kind(member.value)}", value)
    return member


def _structure_decimal(value: Any, _: Any) -> Decimal:
    if value.__class__ is str:
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise StoredValueError(f"{value!r:.60} is not a decimal number") from None
        # Decimal() also accepts spaces and underscores; a value reads back only from
        # the text str() writes, so that no other text can pass for it.
        if str(result) != value:
            raise StoredValueError(f"{value!r:.60} is not a decimal as eventkit writes it")
        return result
    if value.__class__ is int or value.__class__ is Decimal:
        return Decimal(value)
    # A float has lost the decimal digits it was meant to hold: refused, not guessed.
    raise _refuse("a decimal number as a string", value)


def _structure_uuid(value: Any, _: Any) -> UUID:
    if value.__class__ is str:
        try:
            return UUID(value)
        except ValueError:
            raise StoredValueError(f"{value!r:.60} is not a UUID") from None
    if value.__class__ is UUID:
        return value
    raise _refuse("a UUID as a string", value)


def _structure_datetime(value: Any, _: Any) -> datetime:
    result = value
    if value.__class__ is str:
        try:
            result = datetime.fromisoformat(value)
        except ValueError:
            raise StoredValueError(f"{value!r:.60} is not an ISO 8601 datetime") from None
    elif value.__class__ is not datetime:
        raise _refuse("an ISO 8601 datetime as a string", value)
    # Datetimes are written with their offset; one without has lost it.
    if result.utcoffset() is None:
        raise StoredValueError(f"{value!r:.60} has no timezone; datetimes must be aware")
    return result  # type: ignore[no-any-return]


def _temporal(cls: type[date | time], name: str) -> _Hook:
    def structure(value: Any, _: Any) -> Any:
        if value.__class__ is str:
            try:
                return cls.fromisoformat(value)
            except ValueError:
                raise StoredValueError(f"{value!r:.60} is not an ISO 8601 {name}") from None
        if value.__class__ is cls:
            return value
        raise _refuse(f"an ISO 8601 {name} as a string", value)

    return structure


def _structure_bytes(value: Any, cls: Any) -> Any:
    if value.__class__ is str:
        try:
            # validate=True: the default skips characters outside the alphabet, which
            # would read garbage as some other bytes.
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise StoredValueError(f"{value!r:.60} is not base64") from None
    if value.__class__ is bytes and cls is bytes:
        return value
    raise _refuse("base64 text", value)


def _encode_datetime(value: datetime) -> str:
    if value.utcoffset() is None:
        raise ValueError(f"{value!r} has no timezone; store aware datetimes")
    return value.isoformat()


# -- collections ------------------------------------------------------------------------------


def _is_array(cls: Any) -> bool:
    origin = typing.get_origin(cls) or cls
    if origin is tuple:
        return typing.get_args(cls)[1:] == (...,) or not typing.get_args(cls)
    return origin in (list, collections.abc.Sequence, collections.abc.MutableSequence)


def _is_fixed_tuple(cls: Any) -> bool:
    args = typing.get_args(cls)
    return typing.get_origin(cls) is tuple and bool(args) and args[1:] != (...,)


_SETS = (set, frozenset, collections.abc.Set, collections.abc.MutableSet)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def _is_set(cls: Any) -> bool:
    return (typing.get_origin(cls) or cls) in _SETS


def _is_mapping(cls: Any) -> bool:
    return (typing.get_origin(cls) or cls) in _MAPPINGS


def _item_errors(cls: Any, items: list[tuple[int, _Hook, Any, Any]]) -> IterableValidationError:
    errors: list[Exception] = []
    for index, hook, item_type, item in items:
        try:
            hook(item, item_type)
        except Exception as exc:  # noqa: BLE001 (collected, with its index, for the message)
            note = IterableValidationNote(f"Structuring {cls} @ index {index}", index, item_type)
            exc.__notes__ = [*getattr(exc, "__notes__", []), note]
            errors.append(exc)
    return IterableValidationError(f"While structuring {cls!r}", errors, cls)


def _array_factory(converter: cattrs.Converter) -> typing.Callable[[Any], _Hook]:
    def factory(cls: Any) -> _Hook:
        args = typing.get_args(cls)
        item_type = args[0] if args else Any
        hook = converter.get_structure_hook(item_type)
        make: type = tuple if (typing.get_origin(cls) or cls) is tuple else list

        def structure(value: Any, _: Any) -> Any:
            if value.__class__ is not list and value.__class__ is not tuple:
                raise _refuse("an array", value)
            try:
                return make([hook(item, item_type) for item in value])
            except Exception:  # noqa: BLE001 (items are structured again, one by one, to say which)
                raise _item_errors(
                    cls, [(i, hook, item_type, item) for i, item in enumerate(value)]
                ) from None

        return structure

    return factory


def _fixed_tuple_factory(converter: cattrs.Converter) -> typing.Callable[[Any], _Hook]:
    def factory(cls: Any) -> _Hook:
        item_types = typing.get_args(cls)
        hooks = [converter.get_structure_hook(item_type) for item_type in item_types]

        def structure(value: Any, _: Any) -> Any:
            if value.__class__ is not list and value.__class__ is not tuple:
                raise _refuse(f"an array of {len(item_types)} items", value)
            if len(value) != len(item_types):
                raise StoredValueError(
                    f"expected an array of {len(item_types)} items, got {len(value)}"
                )
            try:
                return tuple(
                    hook(item, item_type)
                    for hook, item_type, item in zip(hooks, item_types, value, strict=True)
                )
            except Exception:  # noqa: BLE001 (items are structured again, one by one, to say which)
                raise _item_errors(
                    cls,
                    [
                        (i, hook, item_type, item)
                        for i, (hook, item_type, item) in enumerate(
                            zip(hooks, item_types, value, strict=True)
                        )
                    ],
                ) from None

        return structure

    return factory


def _set_factory(converter: cattrs.Converter) -> typing.Callable[[Any], _Hook]:
    def factory(cls: Any) -> _Hook:
        args = typing.get_args(cls)
        item_type = args[0] if args else Any
        hook = converter.get_structure_hook(item_type)
        origin = typing.get_origin(cls) or cls
        make: type = set if origin in (set, collections.abc.MutableSet) else frozenset

        def structure(value: Any, _: Any) -> Any:
            if value.__class__ not in (list, tuple, set, frozenset):
                raise _refuse("an array", value)
            try:
                result = make([hook(item, item_type) for item in value])
            except Exception:  # noqa: BLE001 (items are structured again, one by one, to say which)
                raise _item_errors(
                    cls, [(i, hook, item_type, item) for i, item in enumerate(value)]
                ) from None
            # A set is written without repeats: a repeated item means another set.
            if len(result) != len(value):
                raise StoredValueError("a set's array holds the same item twice")
            return result

        return structure

    return factory


def _mapping_factory(converter: cattrs.Converter) -> typing.Callable[[Any], _Hook]:
    def factory(cls: Any) -> _Hook:
        args = typing.get_args(cls)
        key_type, value_type = args if len(args) == 2 else (Any, Any)  # noqa: PLR2004
        key_hook = _key_hook(converter, key_type)
        value_hook = converter.get_structure_hook(value_type)

        def structure(value: Any, _: Any) -> Any:
            if value.__class__ is not dict:
                raise _refuse("an object", value)
            result = {}
            for key, item in value.items():
                try:
                    result[key_hook(key, key_type)] = value_hook(item, value_type)
                except Exception as exc:
                    raise StoredValueError(f"at key {key!r:.60}: {_describe_one(exc)}") from exc
            return result

        return structure

    return factory


def _key_hook(converter: cattrs.Converter, key_type: Any) -> _Hook:
    if key_type is int:
        # JSON keys are strings: an int key is written as its decimal digits.
        def structure_int_key(key: Any, _: Any) -> int:
            if key.__class__ is str and key.lstrip("-").isdigit():
                number = int(key)
                if str(number) == key:
                    return number
            raise _refuse("an integer as a key", key)

        return structure_int_key
    return converter.get_structure_hook(key_type)


def _describe_one(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, path="$", format_exception=format_error))
    return str(exc) if isinstance(exc, StoredValueError) else f"{type(exc).__name__}: {exc}"


def _is_plain_literal(cls: Any) -> bool:
    return typing.get_origin(cls) is typing.Literal and not any(
        isinstance(arg, enum.Enum) for arg in typing.get_args(cls)
    )


def _structure_literal(value: Any, cls: Any) -> Any:
    # By type as well as value: Literal[1] does not accept true, nor 1.0.
    for allowed in typing.get_args(cls):
        if value.__class__ is allowed.__class__ and value == allowed:
            return value
    raise StoredValueError(f"{value!r:.60} is not one of {typing.get_args(cls)!r}")


# -- attrs classes ----------------------------------------------------------------------------

_INLINE = {str: _structure_str, int: _structure_int, bool: _structure_bool, float: _structure_float}


def _attrs_factory(converter: cattrs.Converter) -> typing.Callable[[Any], _Hook]:
    def factory(cls: Any) -> _Hook:
        detailed = converter.gen_structure_attrs_fromdict(cls)
        try:
            attrs.resolve_types(cls)
        except Exception:  # noqa: BLE001 (unresolvable names: cattrs reports them when used)
            return _checked(cls, detailed)
        fields = [field for field in attrs.fields(cls) if field.init]
        if getattr(cls, "__parameters__", ()) or any(
            isinstance(field.type, (TypeVar, str)) for field in fields
        ):
            return _checked(cls, detailed)  # generic classes: cattrs resolves their types
        return _generate(cls, converter, fields, _checked(cls, detailed))

    return factory


def _checked(cls: Any, detailed: _Hook) -> _Hook:
    """Return cattrs' detailed structuring of *cls*, after a check of the data's keys."""
    fields = {field.name: field for field in attrs.fields(cls) if field.init}

    def structure(value: Any, _: Any = None) -> Any:
        if value.__class__ is not dict:
            raise _refuse("an object", value)
        # cattrs fills a missing field with its default: that would read stored data as
        # something it was not. Unknown keys are refused by the converter itself.
        missing = [name for name in fields if name not in value]
        if missing:
            errors: list[Exception] = []
            for name in missing:
                error = KeyError(name)
                note = AttributeValidationNote(
                    f"Structuring class {cls.__qualname__} @ attribute {name}",
                    name,
                    fields[name].type,
                )
                error.__notes__ = [note]
                errors.append(error)
            unknown = {key for key in value if key not in fields}
            if unknown:  # both, so that data of another class reads as what it is
                errors.append(cattrs.ForbiddenExtraKeysError("", cls, unknown))
            raise ClassValidationError(f"While structuring {cls.__qualname__}", errors, cls)
        return detailed(value, cls)

    return structure


def _generate(cls: Any, converter: cattrs.Converter, fields: list[Any], slow: _Hook) -> _Hook:
    # The fast path: one length check proves the keys are exactly the fields (every
    # field is then looked up), types are checked inline, and the class is called once.
    # Any failure, whatever it is, runs *slow*, which raises the detailed error.
    namespace: dict[str, Any] = {"__cl": cls, "__slow": slow, "__fail": _fail}
    arguments = []
    for index, field in enumerate(fields):
        item = f"o[{field.name!r}]"
        hook = converter.get_structure_hook(field.type) if field.type is not None else None
        if hook is None:
            value = item
        elif hook is _INLINE.get(field.type):
            name = field.type.__name__
            namespace[f"__{name}"] = field.type
            value = f"({item} if {item}.__class__ is __{name} else __fail())"
        else:
            namespace[f"__h{index}"] = hook
            namespace[f"__t{index}"] = field.type
            value = f"__h{index}({item}, __t{index})"
        arguments.append(f"{field.alias}={value}")
    lines = [
        "def structure(o, _=None):",
        f"    if o.__class__ is not dict or len(o) != {len(fields)}:",
        "        return __slow(o)",
        "    try:",
        f"        return __cl({', '.join(arguments)})",
        "    except Exception:",
        "        return __slow(o)",
    ]
    source = "\n".join(lines) + "\n"
    filename = f"<eventkit structure {cls.__module__}.{cls.__qualname__}>"
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 (generated from field names)
    # Tracebacks through the generated function show its source.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    function: _Hook = namespace["structure"]
    return function


def _fail() -> typing.NoReturn:
    raise StoredValueError  # never seen: the slow path reports the failure


# -- the converter ----------------------------------------------------------------------------


def make_converter() -> cattrs.Converter:
    """
    Return a new cattrs converter configured the way eventkit stores events.

    Decimals, UUIDs, datetimes, dates and times become strings (exactly, with no float
    on the way); bytes become base64; sets and frozensets become lists. Datetimes must
    be timezone-aware.

    Reading is strict: a value is returned exactly as it was written, or structuring
    raises. Each value must have the JSON type its field is written as (a string for
    ``str``, ``Decimal``, ``UUID``, dates and times, bytes; an integer for
    ``int``; ``true``/``false`` for ``bool``; a number for ``float``, an integer only
    when it is exactly a float; an array for lists, tuples and sets; an object for
    dicts and attrs classes), and an object must have exactly the keys of its class:
    a missing key is not filled with the field's default, and an unknown key is not
    dropped. Decimals read only from the text ``str()`` writes (or a JSON integer),
    never from a float; base64 must be valid; enum values must match in type too.

    Register your own hooks on it for other types and pass it to a store as
    *converter*.

    .. versionadded:: 0.1.0
    """
    converter = cattrs.Converter(
        unstruct_collection_overrides={collections.abc.Set: list}, forbid_extra_keys=True
    )
    for exact in (Decimal, UUID):
        converter.register_unstructure_hook(exact, str)
    converter.register_unstructure_hook(datetime, _encode_datetime)
    for temporal in (date, time):
        converter.register_unstructure_hook(temporal, temporal.isoformat)
    converter.register_unstructure_hook(bytes, lambda value: base64.b64encode(value).decode())
    structure_hooks: list[tuple[type, _Hook]] = [
        (str, _structure_str),
        (int, _structure_int),
        (bool, _structure_bool),
        (float, _structure_float),
        (Decimal, _structure_decimal),
        (UUID, _structure_uuid),
        (datetime, _structure_datetime),
        (date, _temporal(date, "date")),
        (time, _temporal(time, "time")),
        (bytes, _structure_bytes),
    ]
    for cls, hook in structure_hooks:
        converter.register_structure_hook(cls, hook)
    predicates: list[tuple[typing.Callable[[Any], bool], _Hook]] = [
        (lambda cls: isinstance(cls, type) and issubclass(cls, enum.Enum), _structure_enum),
        (_is_plain_literal, _structure_literal),
    ]
    for predicate, hook in predicates:
        converter.register_structure_hook_func(predicate, hook)
    factories = [
        (_is_array, _array_factory),
        (_is_fixed_tuple, _fixed_tuple_factory),
        (_is_set, _set_factory),
        (_is_mapping, _mapping_factory),
        (attrs.has, _attrs_factory),
    ]
    for predicate, factory in factories:
        converter.register_structure_hook_factory(predicate, factory(converter))
    return converter


def format_error(exc: BaseException, cls: Any) -> str:
    """Format one leaf of a cattrs validation error: eventkit's own errors say it best."""
    if isinstance(exc, StoredValueError):
        return str(exc)
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown keys {sorted(exc.extra_fields)} (written by newer code?)"
    if isinstance(exc, KeyError):
        return "missing key"
    return cattrs.v.format_exception(exc, cls)


def describe(exc: BaseException) -> str:
    """Return what a failed structuring says, with the path of each failing field."""
    return _describe_one(exc)
