"""
What commands share: opening stores, importing the application, failing in one line.

No message shows a password: every store URL a command reads is remembered, and its
secrets are masked in whatever the command prints.
"""

from __future__ import annotations

import importlib
import pathlib
import sys
from typing import TYPE_CHECKING, Any, cast

from eventkit._events import EventRegistry, default_registry
from eventkit._urls import StoreURL, open_store, parse_store_url
from eventkit.exceptions import StoreError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from eventkit._store import BaseEventStore

STORE_HELP = (
    "the event store's URL: sqlite:///file.db, postgresql://user@host/db?schema=...; "
    "default: $EVENTKIT_STORE"
)
APP_HELP = (
    "import MODULE first, so that the application's events and upcasters register; "
    "MODULE:ATTRIBUTE also names its projection runner (repeatable; default: $EVENTKIT_APP)"
)
# How long a probe of a PostgreSQL server waits, unless the URL says (connect_timeout).
_CONNECT_TIMEOUT = 5

# Every URL a command opened: whatever it prints passes through `scrub`.
_seen: list[StoreURL] = []


class Failure(Exception):  # noqa: N818 (what the command reports, not a programming error)
    """The command failed: a one-line message, and the exit code (1; 2 for usage)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def scrub(text: str) -> str:
    """Return *text* with the password of every store URL seen masked."""
    for url in _seen:
        text = url.scrub(text)
    return text


def parse(url: str | None) -> StoreURL:
    """
    Read the store URL a command was given.

    Raises:
        Failure: No URL, or not a store URL (a usage error, exit code 2).
    """
    if not url:
        raise Failure("no store given: use --store URL or set EVENTKIT_STORE", 2)
    try:
        parsed = parse_store_url(url)
    except ValueError as exc:
        raise Failure(str(exc), 2) from exc
    _seen.append(parsed)
    return parsed


def open_url(
    url: str | None, *, write: bool = False, registry: EventRegistry | None = None
) -> tuple[BaseEventStore, StoreURL]:
    """
    Open the store *url* names: for reading only unless *write*.

    A store that is only read must exist: an SQLite file that is not there, or a
    PostgreSQL schema without the store's tables, is an error rather than a new, empty
    store. A PostgreSQL server is reached once first, so that an unreachable one fails
    at once with the driver's reason.

    Raises:
        Failure: The URL is bad (exit code 2), or the store cannot be opened.
    """
    parsed = parse(url)
    registry = EventRegistry() if registry is None else registry
    options: dict[str, Any] = {"registry": registry}
    if parsed.backend == "sqlite" and parsed.target != ":memory:":
        options["read_only"] = not write
        if write and not pathlib.Path(parsed.target).parent.is_dir():
            raise Failure(f"cannot create {parsed.shown}: its folder does not exist")
    if parsed.backend == "postgresql":
        _probe_postgres(parsed, must_exist=not write)
    try:
        store = cast("BaseEventStore", open_store(url or "", **options))
        if parsed.backend == "postgresql":
            store.open()  # type: ignore[attr-defined]
    except (StoreError, ValueError, ImportError) as exc:
        raise Failure(scrub(str(exc))) from exc
    return store, parsed


def _probe_postgres(parsed: StoreURL, *, must_exist: bool) -> None:
    try:
        import psycopg  # noqa: PLC0415 (the postgres extra: only for PostgreSQL URLs)
        from psycopg.conninfo import make_conninfo  # noqa: PLC0415 (the same)

        from eventkit._backends.postgres import schema  # noqa: PLC0415 (the same)
    except ImportError as exc:
        raise Failure(
            f"{parsed.shown} needs the 'postgres' extra: pip install 'eventkit-es[postgres]'"
        ) from exc
    try:
        name = schema.check_name("schema", parsed.options.get("schema", "public"))
        prefix = schema.check_prefix(parsed.options.get("table_prefix", "eventkit_"))
    except ValueError as exc:
        raise Failure(f"{exc} in {parsed.shown}", 2) from exc
    conninfo = parsed.target
    if "connect_timeout=" not in conninfo:
        conninfo = make_conninfo(conninfo, connect_timeout=_CONNECT_TIMEOUT)
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            meta = schema.table_names(name, prefix)["meta"]
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (meta,)).fetchone()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Failure(scrub(f"cannot connect to {parsed.shown}: {reason}")) from exc
    if must_exist and not (row and row[0]):
        raise Failure(
            f"no event store at {parsed.shown}: schema {name!r} has no tables with prefix "
            f"{prefix!r}"
        )


def import_app(specs: Iterable[str]) -> list[tuple[str, str]]:
    """
    Import each application module named in *specs* (``MODULE`` or ``MODULE:ATTRIBUTE``).

    As with ``python -m``, modules import from the working directory too.

    Returns:
        The ``(module, attribute)`` pairs of the specs that name an attribute.

    Raises:
        Failure: A module cannot be imported (exit code 2 when it does not exist).
    """
    here = str(pathlib.Path.cwd())
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)
    named = []
    for spec in specs:
        module_name, _, attribute = spec.partition(":")
        if not module_name:
            raise Failure(f"--app takes MODULE or MODULE:ATTRIBUTE, got {spec!r}", 2)
        try:
            importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise Failure(
                    f"cannot import {module_name}: no module named {exc.name}", 2
                ) from exc
            raise Failure(f"cannot import {module_name}: {exc}") from exc
        except Exception as exc:
            raise Failure(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
        if attribute:
            named.append((module_name, attribute))
    return named


def lookup(module_name: str, attribute: str) -> object:
    """
    Return ``module_name.attribute`` (dotted attributes allowed).

    Raises:
        Failure: There is no such attribute (exit code 2).
    """
    found: object = sys.modules[module_name]
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise Failure(f"{module_name} has no attribute {attribute!r}", 2)
        found = getattr(found, part)
    return found


def registry_from(spec: str | None) -> EventRegistry:
    """
    Return the `EventRegistry` named ``MODULE:NAME``, or `default_registry`.

    Raises:
        Failure: *spec* does not name a registry (exit code 2).
    """
    if spec is None:
        return default_registry
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise Failure(f"--registry takes MODULE:NAME, got {spec!r}", 2)
    import_app([module_name])
    found = lookup(module_name, attribute)
    if not isinstance(found, EventRegistry):
        raise Failure(f"{spec} is not an EventRegistry (it is a {type(found).__name__})", 2)
    return found
