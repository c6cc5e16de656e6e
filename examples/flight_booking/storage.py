"""
Where the service keeps its data: the store named by a URL, and the read side.

The events and the read models live in one database: an SQLite file
(``sqlite:///flights.db``) or a schema of a PostgreSQL database
(``postgresql://host/db?schema=flights``). Every process opens the store with
`open_store` and queries the read models through `ReadModels`; the projections write
their tables through the connection of the store's own transaction. What differs
between the two databases is kept here: `database` says which one a URL names, and
`in_dialect` turns the read models' SQL, written once with ``?`` placeholders, into
what the connection's driver takes.
"""

from __future__ import annotations

import re
import sqlite3
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import attrs

import eventkit

if TYPE_CHECKING:
    from collections.abc import Sequence

    import psycopg

    from eventkit import EventStore

    # What a projection's handler gets from the store's transaction, and a reader uses.
    Connection: TypeAlias = sqlite3.Connection | psycopg.Connection[Any]

SQLITE_URL = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# The store's tables, beside the read models: the prefix both stores give them.
STORE_TABLES = "eventkit_"


def in_dialect(conn: Connection, statement: str) -> str:
    """
    Return *statement*, written with SQLite's ``?`` placeholders, as *conn* takes it.

    psycopg's placeholders are ``%s``. The read models' statements hold no literal
    ``?`` or ``%``, so this is all that differs between the two.
    """
    return statement if isinstance(conn, sqlite3.Connection) else statement.replace("?", "%s")


@attrs.frozen
class SQLiteFile:
    """The events and the read models in one SQLite file, in WAL mode."""

    path: Path
    error: ClassVar[type[Exception]] = sqlite3.Error

    def __str__(self) -> str:
        return str(self.path)

    def open_store(self) -> EventStore:
        """Open the event store."""
        return eventkit.SQLiteEventStore(self.path)

    def connect(self) -> sqlite3.Connection:
        """
        Open a read-only connection to the read models.

        In WAL mode a reader never waits for the writer, and each query sees one
        committed state.
        """
        uri = self.path.resolve().as_uri() + "?mode=ro"
        return sqlite3.connect(uri, uri=True, timeout=10)

    def remove_previous_run(self, tables: Sequence[str]) -> None:
        """Delete the file a previous run left, and only such a file."""
        path = self.path
        if not path.exists():
            return
        try:
            conn = sqlite3.connect(path)
            try:
                found = [
                    row[0]
                    for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                ]
            finally:
                conn.close()
        except sqlite3.DatabaseError:
            found = []
        if not found or not all(ours(name, tables) for name in found):
            raise SystemExit(f"{path} is not a file this example wrote; give another path")
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        for lock in path.parent.glob(f"{path.name}-eventkit_projection-*.lock"):
            lock.unlink()


@attrs.frozen
class PostgresSchema:
    """The events and the read models in one schema of a PostgreSQL database."""

    url: str  # the store's URL, schema included
    conninfo: str  # the same without the store's parameters: what psycopg connects to
    schema: str
    shown: str  # the server and database, without credentials

    @classmethod
    def of(cls, url: str) -> PostgresSchema:
        """Read the schema and the server's address from a store URL."""
        parts = urllib.parse.urlsplit(url)
        pairs = urllib.parse.parse_qsl(parts.query)
        schema = dict(pairs).get("schema", "public")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", schema):
            # As the store asks, and safe to write into SQL in double quotes.
            raise SystemExit(f"not a schema name the store takes: {schema!r}")
        server = [(key, value) for key, value in pairs if key != "schema"]
        conninfo = parts._replace(query=urllib.parse.urlencode(server)).geturl()
        port = f":{parts.port}" if parts.port else ""
        return cls(url, conninfo, schema, f"{parts.hostname or 'localhost'}{port}{parts.path}")

    @property
    def error(self) -> type[Exception]:
        """The error a failed query raises."""
        import psycopg  # noqa: PLC0415 (only PostgreSQL runs need psycopg)

        return psycopg.Error

    def __str__(self) -> str:
        return f"schema {self.schema} of {self.shown}"

    def open_store(self) -> EventStore:
        """Open the event store."""
        return eventkit.open_store(self.url)

    def connect(self) -> psycopg.Connection[Any]:
        """
        Open a connection to the read models, in autocommit mode.

        Each query is its own transaction and sees one committed state; a reader never
        waits for the projections' writes.
        """
        import psycopg  # noqa: PLC0415 (only PostgreSQL runs need psycopg)

        conn = psycopg.connect(self.conninfo, autocommit=True)
        conn.execute(f'SET search_path TO "{self.schema}"')
        return conn

    def remove_previous_run(self, tables: Sequence[str]) -> None:
        """Drop the tables a previous run left in the schema, if it holds no others."""
        with self.connect() as conn, conn.transaction():
            found = [
                name
                for (name,) in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.schema,)
                )
            ]
            if not all(ours(name, tables) for name in found):
                raise SystemExit(
                    f"{self} holds tables this example did not write; give another schema"
                )
            for name in found:
                conn.execute(f'DROP TABLE "{self.schema}"."{name}"')


def ours(table: str, tables: Sequence[str]) -> bool:
    """Say whether *table* is one of the store's, a read model's, or a rebuild's copy."""
    return table.startswith(STORE_TABLES) or table.removesuffix("__rebuild") in tables


def database(url: str) -> SQLiteFile | PostgresSchema:
    """
    Return the database named by *url*.

    *url* is ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, a plain
    path, or ``postgresql://[user@]host[:port]/database[?schema=name]`` (the schema
    ``public`` when none is named).
    """
    if url.startswith(SQLITE_URL):
        return SQLiteFile(Path(url.removeprefix(SQLITE_URL)))
    if url.startswith(POSTGRES_SCHEMES):
        return PostgresSchema.of(url)
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise SystemExit(
            f"{scheme}:// stores keep no tables for the read models: "
            "give a sqlite:/// or postgresql:// URL"
        )
    return SQLiteFile(Path(url))


def open_store(url: str) -> EventStore:
    """Open the event store named by *url* (see `database`)."""
    return database(url).open_store()


class ReadModels:
    """
    A connection to the read models, for one thread.

    The projections write their tables in the store's database, in the transactions
    that move their checkpoints; readers query them on connections of their own.
    """

    def __init__(self, url: str) -> None:
        where = database(url)
        self.error = where.error
        self._conn = where.connect()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query (``?`` placeholders) in its own read transaction; return its rows."""
        return self._conn.execute(in_dialect(self._conn, sql), params).fetchall()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
