"""
The PostgreSQL backend's tables: created on first use, versioned, migrated forward.

Every object the backend owns lives in one PostgreSQL schema, under names that start
with the store's table prefix, and is created here by a numbered `Migration`. To add
or change one, append a migration with the next version; never edit a released one.
A store that finds older tables runs the missing migrations in one transaction, under
an advisory lock, so that stores starting at once in several processes migrate once;
a store refuses tables written by a newer release.

Positions are ``((transaction id + offset) << 20) | n``: the writing transaction's
64-bit id in the high bits and the event's number within that transaction in the
low 20, so that readers who only read below the oldest running transaction's id
never skip an event and see positions strictly increase (see `horizon`). The
``xid_offset`` kept in the meta table keeps positions growing after a logical
restore, which restarts transaction ids.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from eventkit.exceptions import ArgumentError, ArgumentTypeError, StoreError

POSITION_BITS = 20
"""Bits of a position that number the events of one transaction."""

MAX_EVENTS_PER_TRANSACTION = (1 << POSITION_BITS) - 1
"""The most events one transaction can append (a position's low bits number them)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}|")


class Migration(NamedTuple):
    """One step of the schema: the statements that bring the tables to *version*."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "the event log, snapshots, projection checkpoints, dead letters and leases",
        (
            """
            CREATE TABLE {events} (
                position bigint PRIMARY KEY,
                -- "C": ordered and compared by code point, as the store contract asks.
                stream_id text COLLATE "C" NOT NULL,
                version integer NOT NULL,
                event_id uuid NOT NULL,
                event_type text NOT NULL,
                schema_version integer NOT NULL,
                -- text, not json or jsonb: the stored text comes back character for
                -- character, whatever it holds (the codec checks it on read).
                data text NOT NULL,
                metadata text NOT NULL,
                recorded_at timestamptz NOT NULL,
                CONSTRAINT {events}_stream_version UNIQUE (stream_id, version),
                CONSTRAINT {events}_event_id UNIQUE (event_id)
            )
            """,
            # read_all(event_types=...) pages through one type in position order.
            "CREATE INDEX {events}_type ON {events} (event_type, position)",
            # stream_ids lists streams through their first events: one entry per stream.
            "CREATE INDEX {events}_streams ON {events} (stream_id) WHERE version = 1",
            """
            CREATE TABLE {snapshots} (
                stream_id text COLLATE "C" PRIMARY KEY,
                aggregate_type text NOT NULL,
                version integer NOT NULL,
                event_id uuid NOT NULL,
                snapshot_version integer NOT NULL,
                state text NOT NULL,
                taken_at timestamptz NOT NULL,
                build_seconds double precision NOT NULL
            )
            """,
            """
            CREATE TABLE {checkpoints} (
                name text PRIMARY KEY,
                position bigint NOT NULL,
                version integer NOT NULL
            )
            """,
            """
            CREATE TABLE {dead_letters} (
                projection text NOT NULL,
                position bigint NOT NULL,
                stream_id text NOT NULL,
                version integer NOT NULL,
                event_type text NOT NULL,
                error text NOT NULL,
                attempts integer NOT NULL,
                parked_at timestamptz NOT NULL,
                PRIMARY KEY (projection, position)
            )
            """,
            # One row per projection that a runner ever held: who holds it, since which
            # takeover (generation), and until when, on the database's clock.
            """
            CREATE TABLE {leases} (
                name text PRIMARY KEY,
                owner uuid NOT NULL,
                generation bigint NOT NULL,
                expires_at timestamptz NOT NULL
            )
            """,
        ),
    ),
)
"""Every schema step, oldest first; the last one's version is `SCHEMA_VERSION`."""

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The schema version this release writes and reads."""


def check_name(what: str, name: object) -> str:
    """
    Return *name* if it can be a PostgreSQL schema name spliced into SQL, else raise.

    Raises:
        TypeError: *name* is not a string.
        ValueError: *name* is not a letter or underscore followed by up to 62 letters,
            digits and underscores.
    """
    if not isinstance(name, str):
        raise ArgumentTypeError(f"{what} must be a string, got {name!r}")
    if not _NAME.fullmatch(name):
        raise ArgumentError(
            f"{what} must be a letter or underscore followed by letters, digits and "
            f"underscores (at most 63 characters), got {name!r}"
        )
    return name


def check_prefix(prefix: object) -> str:
    """
    Return *prefix* if it can start the store's table names, else raise.

    Raises:
        TypeError: *prefix* is not a string.
        ValueError: *prefix* is not empty or a letter or underscore followed by up to
            31 letters, digits and underscores (table names must stay under 64
            characters, PostgreSQL's limit).
    """
    if not isinstance(prefix, str):
        raise ArgumentTypeError(f"table_prefix must be a string, got {prefix!r}")
    if not _PREFIX.fullmatch(prefix):
        raise ArgumentError(
            "table_prefix must be empty or a letter or underscore followed by letters, "
            f"digits and underscores (at most 32 characters), got {prefix!r}"
        )
    return prefix


def table_names(schema: str, prefix: str) -> dict[str, str]:
    """Return the qualified names of the store's tables, by role."""
    return {
        role: f'"{schema}"."{prefix}{role}"'
        for role in ("events", "snapshots", "meta", "checkpoints", "dead_letters", "leases")
    }


def own_tables(prefix: str) -> frozenset[str]:
    """Return the unqualified names of every table the store owns."""
    roles = ("events", "snapshots", "meta", "checkpoints", "dead_letters", "leases")
    return frozenset(prefix + role for role in roles)


def migration_statements(schema: str, prefix: str, found: int) -> list[str]:
    """Return the statements that bring tables at version *found* to `SCHEMA_VERSION`."""
    names = table_names(schema, prefix)
    # Constraint and index names are unqualified: they live in the tables' schema.
    spliced = {**names, **{f"{role}_name": f"{prefix}{role}" for role in names}}
    statements = []
    for migration in MIGRATIONS[found:]:
        for statement in migration.statements:
            text = statement
            for role in names:
                # "{events}_type" is an index name: unqualified, beside the table.
                text = text.replace("{%s}_" % role, spliced[f"{role}_name"] + "_")  # noqa: UP031
            statements.append(text.format_map(names))
    return statements


def check_version(version: int, where: str) -> None:
    """
    Raise unless this release can read tables at schema *version*.

    Raises:
        StoreError: The tables were written by a newer release.
    """
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"PostgreSQL event store {where}: the tables are at schema version {version}, "
            f"newer than version {SCHEMA_VERSION} that this release of eventkit knows; "
            "upgrade eventkit to use them"
        )
