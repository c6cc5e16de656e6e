"""
Event stores named by URL: `open_store`, and how a store URL is read and shown.

A URL names *where* a store is: the backend, the file or server, and the place of the
store's tables there (a schema, a table prefix). How the store behaves (pool sizes,
timeouts, the registry) is given in code, as keyword options. URLs are shown only with
their password masked, so that they can go into logs and error messages.
"""

from __future__ import annotations

import importlib
import urllib.parse
from typing import TYPE_CHECKING, Any, Literal, cast, overload

import attrs

from eventkit.exceptions import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    from eventkit._store import EventStore
    from eventkit._store_async import AsyncEventStore

_MASK = "***"
_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:///:memory:, "
    "postgresql://user@host/database, or memory://"
)
# What the URL may say about where the tables are, per backend. Any other parameter
# of a PostgreSQL URL is the server's (sslmode, application_name, ...).
_SQLITE_PARAMETERS = frozenset({"table_prefix"})
_POSTGRES_PARAMETERS = frozenset({"schema", "table_prefix"})


@attrs.frozen
class StoreURL:
    """
    A store URL, read: which backend, where, and how to show it.

    Attributes:
        backend: ``"sqlite"``, ``"postgresql"`` or ``"memory"``.
        target: The SQLite file's path (or ``":memory:"``); the connection string
            PostgreSQL gets (the URL without eventkit's parameters); empty for memory.
        options: The store's options named in the URL (``schema``, ``table_prefix``).
        shown: The URL as it may be shown: its password masked.
        secrets: Texts that must never be shown (the password, as written and decoded).
    """

    backend: Literal["sqlite", "postgresql", "memory"]
    target: str
    options: dict[str, str]
    shown: str
    secrets: tuple[str, ...] = ()

    def scrub(self, text: str) -> str:
        """Return *text* with every secret of this URL masked."""
        for secret in self.secrets:
            text = text.replace(secret, _MASK)
        return text


def parse_store_url(url: str) -> StoreURL:
    """
    Read a store URL.

    Raises:
        ArgumentError: (A ``ValueError``.) *url* is not a store URL; the message shows
            it masked.
    """
    if not isinstance(cast("object", url), str):
        raise ArgumentTypeError(f"a store URL is a string, got {type(url).__name__}")
    if not url.strip():
        raise ArgumentError(f"a store URL is needed: {_FORMS}")
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError as exc:  # an unbalanced [ in the host, say
        raise ArgumentError(f"not a store URL ({exc}): {_mask_text(url)}") from exc
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        return _sqlite(parts, url.strip())
    if scheme in {"postgresql", "postgres"}:
        return _postgres(parts)
    if scheme == "memory":
        if parts.netloc or parts.path or parts.query:
            shown = _mask_text(url)
            raise ArgumentError(f"a memory:// URL takes no host, path or parameters: {shown}")
        return StoreURL("memory", "", {}, "memory://")
    shown = _mask_text(url)
    if not scheme:
        raise ArgumentError(
            f"not a store URL: {shown}; for an SQLite file write sqlite:///{shown}, "
            f"or use one of {_FORMS}"
        )
    raise ArgumentError(f"unknown kind of store {scheme!r} in {shown}; use {_FORMS}")


def _sqlite(parts: urllib.parse.SplitResult, shown: str) -> StoreURL:
    if parts.netloc:
        raise ArgumentError(
            f"an sqlite URL names a file, not a host: {shown}; write sqlite:///relative.db "
            "or sqlite:////absolute/path.db"
        )
    # sqlite:///bank.db is the relative path bank.db, sqlite:////srv/bank.db the
    # absolute /srv/bank.db: the form SQLAlchemy and others use.
    path = urllib.parse.unquote(parts.path.removeprefix("/"))
    if not parts.path.startswith("/") or not path:
        raise ArgumentError(f"an sqlite URL needs a file: sqlite:///path/to/file.db, got {shown}")
    options = _parameters(parts.query, shown)
    _refuse_unknown(options, _SQLITE_PARAMETERS, shown)
    return StoreURL("sqlite", path, options, shown)


def _postgres(parts: urllib.parse.SplitResult) -> StoreURL:
    secrets = tuple(
        secret
        for raw in ([parts.password] if parts.password else [])
        for secret in (raw, urllib.parse.unquote(raw))
    )
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    secrets += tuple(value for key, value in pairs if key == "password" and value)
    shown = _masked(parts)
    if not parts.hostname and not parts.path.strip("/") and not pairs:
        raise ArgumentError(f"a PostgreSQL URL names a server or database: {shown}")
    options = _parameters(parts.query, shown)
    ours = {key: value for key, value in options.items() if key in _POSTGRES_PARAMETERS}
    rest = [(key, value) for key, value in pairs if key not in _POSTGRES_PARAMETERS]
    target = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if rest:
        target += "?" + urllib.parse.urlencode(rest)
    return StoreURL("postgresql", target, ours, shown, tuple(sorted(set(secrets), key=len))[::-1])


def _parameters(query: str, shown: str) -> dict[str, str]:
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ArgumentError(f"unreadable parameters in {shown}") from exc
    found: dict[str, str] = {}
    for key, value in pairs:
        if key in found:
            raise ArgumentError(f"parameter {key!r} is given twice in {shown}")
        found[key] = value
    return found


def _refuse_unknown(options: dict[str, str], known: frozenset[str], shown: str) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise ArgumentError(
            f"unknown parameter {unknown[0]!r} in {shown} (known: {', '.join(sorted(known))})"
        )


def _masked(parts: urllib.parse.SplitResult) -> str:
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:{_MASK}@{host}"
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = "&".join(
        f"{key}={_MASK if key == 'password' else urllib.parse.quote(value, safe='')}"
        for key, value in pairs
    )
    # Put together by hand: urlunsplit drops the // of a URL without a host.
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    return f"{shown}?{query}" if query else shown


def _mask_text(url: str) -> str:
    # For URLs too broken to parse: mask whatever sits between "//user:" and "@".
    head, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    if ":" not in credentials:
        return url
    return f"{head}://{credentials.partition(':')[0]}:{_MASK}@{host}"


@overload
def open_store(url: str, *, asynchronous: Literal[False] = False, **options: Any) -> EventStore: ...
@overload
def open_store(url: str, *, asynchronous: Literal[True], **options: Any) -> AsyncEventStore: ...
def open_store(url: str, *, asynchronous: bool = False, **options: Any) -> Any:
    """
    Open the event store that *url* names.

    ========================================  ==========================================
    URL                                       store
    ========================================  ==========================================
    ``sqlite:///bank.db``                     `SQLiteEventStore` on ``bank.db``, relative
                                              to the working directory
    ``sqlite:////var/lib/app/bank.db``        the absolute path ``/var/lib/app/bank.db``
    ``sqlite:///:memory:``                    a private in-memory SQLite database
    ``postgresql://app@db.example/bank``      `PostgresEventStore`; ``postgres://``
                                              works too
    ``memory://``                             `InMemoryEventStore`
    ========================================  ==========================================

    Query parameters say where the store's tables are: ``table_prefix`` (both SQL
    backends) and ``schema`` (PostgreSQL), as in
    ``postgresql://app@db/bank?schema=ledger&table_prefix=ek_``. Every other parameter
    of a PostgreSQL URL goes to the server (``sslmode=require``,
    ``application_name=...``); an SQLite URL takes no other. A password in the URL is
    never shown: reprs and errors show ``postgresql://app:***@db/bank``.

    The stores open as their constructors do: an SQLite file is opened (and created,
    unless ``read_only=True``) at once; PostgreSQL connects on first use (call the
    store's ``open()`` to fail early). Read the URL from where the application keeps
    its settings, e.g. ``open_store(os.environ["EVENTKIT_STORE"])``, the variable that
    the ``eventkit`` command reads too.

    Example:
        .. code-block:: python

            store = open_store("sqlite:///bank.db", registry=bank_events)
            astore = open_store("postgresql://app@db/bank", asynchronous=True, pool_size=20)

    Args:
        url: The store's URL.
        asynchronous: Return the async form of the store (`AsyncSQLiteEventStore`,
            `AsyncPostgresEventStore`, `AsyncInMemoryEventStore`).
        options: Keyword arguments for the store's constructor (``registry``,
            ``pool_size``, ``synchronous``, ...), beside those the URL names.

    Returns:
        The store, which the caller closes.

    Raises:
        ArgumentError: (A ``ValueError``.) *url* is not a store URL, or names an
            option that *options* gives too.
        TypeError: An option is not one the store takes.
        ImportError: A PostgreSQL URL without the ``postgres`` extra installed.
        StoreError: The SQLite file cannot be opened.

    .. versionadded:: 0.1.0
    """
    parsed = parse_store_url(url)
    twice = sorted(set(parsed.options) & set(options))
    if twice:
        raise ArgumentError(f"{twice[0]!r} is given both in the URL and as an option")
    arguments = {**parsed.options, **options}
    store_class = _store_class(parsed.backend, asynchronous=asynchronous)
    if parsed.backend == "memory":
        return store_class(**arguments)
    return store_class(parsed.target, **arguments)


_CLASSES = {
    ("sqlite", False): ("eventkit._backends.sqlite", "SQLiteEventStore"),
    ("sqlite", True): ("eventkit._backends.sqlite", "AsyncSQLiteEventStore"),
    ("postgresql", False): ("eventkit._backends.postgres", "PostgresEventStore"),
    ("postgresql", True): ("eventkit._backends.postgres", "AsyncPostgresEventStore"),
    ("memory", False): ("eventkit._backends.memory", "InMemoryEventStore"),
    ("memory", True): ("eventkit._backends.memory_async", "AsyncInMemoryEventStore"),
}


def _store_class(backend: str, *, asynchronous: bool) -> Any:
    module_name, name = _CLASSES[backend, bool(asynchronous)]
    try:
        # Imported here: the PostgreSQL backend needs psycopg, an optional dependency.
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"a PostgreSQL store needs the 'postgres' extra: pip install "
            f"'eventkit-es[postgres]' ({exc})"
        ) from exc
    return getattr(module, name)
