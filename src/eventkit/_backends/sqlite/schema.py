"""
The SQLite backend's tables: created on first use, versioned, and migrated forward.

Every table this backend owns is created here, by a numbered `Migration`. To add a table
(snapshots, projection checkpoints) or to change one, append a migration with the next
version to `MIGRATIONS`; never edit one that has been released. A store opening an
older file runs the missing migrations in one write transaction, so a file is never
left half-migrated, and a store refuses a file written by a newer release.

Table names are ``{prefix}<name>``; the prefix is checked by `check_prefix`, so names
can be spliced into SQL.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from eventkit.exceptions import ArgumentError, ArgumentTypeError, StoreError

if TYPE_CHECKING:
    import sqlite3

_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}|")


class Migration(NamedTuple):
    """One step of the schema: the statements that bring a file to *version*."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "the event log",
        (
            # position is the rowid: read_all walks the table in its own order, and an
            # append writes at the end of the b-tree.
            """
            CREATE TABLE {prefix}events (
                position INTEGER PRIMARY KEY,
                stream_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                event_id BLOB NOT NULL,
                event_type TEXT NOT NULL,
                schema_version INTEGER NOT NULL,
                data TEXT NOT NULL,
                metadata TEXT NOT NULL,
                recorded_at TEXT NOT NULL
            )
            """,
            # A stream's version lookup, stream reads, and the last line of defence
            # against two events at one version.
            "CREATE UNIQUE INDEX {prefix}events_stream ON {prefix}events (stream_id, version)",
            "CREATE UNIQUE INDEX {prefix}events_event_id ON {prefix}events (event_id)",
            # read_all(event_types=...) pages through one type in position order.
            "CREATE INDEX {prefix}events_type ON {prefix}events (event_type, position)",
        ),
    ),
    Migration(
        2,
        "aggregate snapshots",
        (
            # One row per stream, replaced by each snapshot of it. A rowid table: states
            # can be large, and WITHOUT ROWID suits small rows.
            """
            CREATE TABLE {prefix}snapshots (
                stream_id TEXT PRIMARY KEY,
                aggregate_type TEXT NOT NULL,
                version INTEGER NOT NULL,
                event_id BLOB NOT NULL,
                snapshot_version INTEGER NOT NULL,
                state TEXT NOT NULL,
                taken_at TEXT NOT NULL,
                build_seconds REAL NOT NULL
            )
            """,
        ),
    ),
    Migration(
        3,
        "projection checkpoints and dead letters",
        (
            # One row per projection (and per rebuild in progress): the position its read
            # model includes, and the projection version that built it.
            """
            CREATE TABLE {prefix}projection_checkpoints (
                name TEXT PRIMARY KEY,
                position INTEGER NOT NULL,
                version INTEGER NOT NULL
            ) WITHOUT ROWID
            """,
            """
            CREATE TABLE {prefix}projection_dead_letters (
                projection TEXT NOT NULL,
                position INTEGER NOT NULL,
                stream_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                event_type TEXT NOT NULL,
                error TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                parked_at TEXT NOT NULL,
                PRIMARY KEY (projection, position)
            ) WITHOUT ROWID
            """,
        ),
    ),
)
"""Every schema step, oldest first; the last one's version is `SCHEMA_VERSION`."""

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The schema version this release writes and reads."""

_META = "CREATE TABLE IF NOT EXISTS {prefix}meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_GET = "SELECT value FROM {prefix}meta WHERE key = ?"
_SET = "INSERT OR REPLACE INTO {prefix}meta (key, value) VALUES (?, ?)"
_VERSION_KEY = "schema_version"


def check_prefix(prefix: object) -> str:
    """
    Return *prefix* if it can start a table name, else raise.

    Raises:
        ArgumentTypeError: *prefix* is not a string.
        ArgumentError: *prefix* is not empty or a letter or underscore followed by up
            to 63 letters, digits and underscores.
    """
    if not isinstance(prefix, str):
        raise ArgumentTypeError(f"table_prefix must be a string, got {prefix!r}")
    if not _PREFIX.fullmatch(prefix):
        raise ArgumentError(
            f"table_prefix must be empty or a letter or underscore followed by letters, "
            f"digits and underscores (at most 64 characters), got {prefix!r}"
        )
    return prefix


def stored_version(conn: sqlite3.Connection, prefix: str, name: str) -> int:
    """
    Return the schema version of the tables with *prefix*: 0 when there are none.

    Raises:
        StoreError: The stored version is damaged (not a version number), naming the
            file *name* and the table.
    """
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (f"{prefix}meta",)
    ).fetchone()
    if found is None:
        return 0
    row = conn.execute(_GET.format(prefix=prefix), (_VERSION_KEY,)).fetchone()
    if row is None:
        return 0
    value = row[0]
    # Written by migrate() as the digits of a version >= 1; anything else is damage, and
    # guessing a version would migrate, or refuse, the wrong tables.
    if value.__class__ is not str or not value.isascii() or not value.isdigit():
        raise StoreError(
            f"SQLite event store {name!r}: the schema version in table {prefix}meta is "
            f"damaged ({type(value).__name__} {value!r:.60}, not a version number)"
        )
    version = int(value)
    if str(version) != value or version < 1:
        raise StoreError(
            f"SQLite event store {name!r}: the schema version in table {prefix}meta is "
            f"damaged ({value!r:.60}, not a version number)"
        )
    return version


def check_version(version: int, name: str, prefix: str) -> None:
    """
    Raise unless a store of this release can read tables at schema *version*.

    Raises:
        StoreError: The tables were written by a newer release.
    """
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"SQLite event store {name!r}: the tables with prefix {prefix!r} are at schema "
            f"version {version}, newer than version {SCHEMA_VERSION} that this release of "
            "eventkit knows; upgrade eventkit to open this file"
        )


def migrate(conn: sqlite3.Connection, name: str, prefix: str) -> int:
    """
    Bring the tables with *prefix* up to `SCHEMA_VERSION`; return the version found.

    Call inside a write transaction: all steps commit together, or none does.

    Raises:
        StoreError: The tables were written by a newer release.
    """
    conn.execute(_META.format(prefix=prefix))
    found = stored_version(conn, prefix, name)
    check_version(found, name, prefix)
    for migration in MIGRATIONS[found:]:
        for statement in migration.statements:
            conn.execute(statement.format(prefix=prefix))
    if found != SCHEMA_VERSION:
        conn.execute(_SET.format(prefix=prefix), (_VERSION_KEY, str(SCHEMA_VERSION)))
    return found
