"""The SQLite store's statements, and the turning of fetched rows into records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from eventkit._backends._sql import SQLTemplates
from eventkit._records import EventRecord

MAX_INT = 2**63 - 1
"""SQLite's largest integer: bounds beyond it are clamped to it, meaning no bound."""

_SELECT = (
    "SELECT stream_id, version, position, event_id, event_type, schema_version, data, "
    "metadata, recorded_at FROM {events}"
)


class Statements(SQLTemplates):
    """The store's SQL: events, snapshots, stream ids and projection storage."""

    head = "SELECT max(position) FROM {events}"
    version = "SELECT max(version) FROM {events} WHERE stream_id = ?"
    head_and_version = (
        "SELECT (SELECT max(position) FROM {events}), "
        "(SELECT max(version) FROM {events} WHERE stream_id = ?)"
    )
    insert = (
        "INSERT INTO {events} (position, stream_id, version, event_id, event_type, "
        "schema_version, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    undo = "DELETE FROM {events} WHERE position > ?"
    find_ids = "SELECT event_id, stream_id, version, position FROM {events} WHERE event_id IN "
    read_stream = (
        _SELECT + " WHERE stream_id = ? AND version BETWEEN ? AND ? ORDER BY version LIMIT ?"
    )
    read_stream_backwards = (
        _SELECT + " WHERE stream_id = ? AND version BETWEEN ? AND ? ORDER BY version DESC LIMIT ?"
    )
    read_all = _SELECT + " WHERE position > ? ORDER BY position LIMIT ?"
    read_all_of_types = _SELECT + " WHERE event_type IN ({marks}) AND position > ?"
    # Each step asks the index for the next stream id, and the walk stops at the first id
    # without the prefix: ids with a prefix are one run in the index's (binary) order,
    # which is code point order, as the store contract asks. substr() compares the prefix
    # literally, where LIKE would treat % and _ as wildcards.
    stream_ids = """
        WITH RECURSIVE ids(stream_id) AS (
            SELECT (SELECT min(stream_id) FROM {events} WHERE stream_id >= ? AND stream_id > ?)
            UNION ALL
            SELECT (SELECT min(stream_id) FROM {events} WHERE stream_id > ids.stream_id)
            FROM ids WHERE substr(ids.stream_id, 1, ?) = ?
            LIMIT ?
        )
        SELECT stream_id FROM ids WHERE substr(stream_id, 1, ?) = ?
    """

    save_snapshot = (
        "INSERT OR REPLACE INTO {snapshots} (stream_id, aggregate_type, version, event_id, "
        "snapshot_version, state, taken_at, build_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    load_snapshot = (
        "SELECT stream_id, aggregate_type, version, event_id, snapshot_version, state, "
        "taken_at, build_seconds FROM {snapshots} WHERE stream_id = ?"
    )

    get_checkpoint = "SELECT position, version FROM {checkpoints} WHERE name = ?"
    put_checkpoint = (
        "INSERT OR REPLACE INTO {checkpoints} (name, position, version) VALUES (?, ?, ?)"
    )
    delete_checkpoint = "DELETE FROM {checkpoints} WHERE name = ?"
    rename_checkpoint = "UPDATE {checkpoints} SET name = ? WHERE name = ?"
    checkpoints = "SELECT name, position, version FROM {checkpoints}"
    park = (
        "INSERT OR REPLACE INTO {dead_letters} (projection, position, stream_id, "
        "version, event_type, error, attempts, parked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    unpark = "DELETE FROM {dead_letters} WHERE projection = ? AND position = ?"
    forget_dead_letters = "DELETE FROM {dead_letters} WHERE projection = ?"
    move_dead_letters = "UPDATE {dead_letters} SET projection = ? WHERE projection = ?"
    dead_letters = (
        "SELECT projection, position, stream_id, version, event_type, error, attempts, "
        "parked_at FROM {dead_letters} WHERE projection = ? ORDER BY position"
    )
    table_exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    table_indexes = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL"
    )

    def __init__(self, prefix: str) -> None:
        super().__init__(
            events=f"{prefix}events",
            snapshots=f"{prefix}snapshots",
            checkpoints=f"{prefix}projection_checkpoints",
            dead_letters=f"{prefix}projection_dead_letters",
        )

    def read_all_of(self, count: int) -> str:
        """Return a read_all page query for *count* event types."""
        # SQLite reads each type's range of the (event_type, position) index in order and
        # stops once the page is full, so a page costs the same wherever it starts.
        marks = ", ".join("?" * count)
        return self.read_all_of_types.format(marks=marks) + " ORDER BY position LIMIT ?"

    def find(self, count: int) -> str:
        """Return a query for where *count* event ids are stored."""
        return self.find_ids + "(" + ", ".join("?" * count) + ")"


def stream_ids_params(prefix: str, after: str | None, limit: int) -> tuple[Any, ...]:
    """Return the parameters of `Statements.stream_ids`."""
    # Stream ids are never empty, so "after the empty string" is "from the start".
    length = len(prefix)
    return (prefix, after or "", length, prefix, limit, length, prefix)


_new = object.__new__
_set = object.__setattr__
_SAFE_UNKNOWN = uuid.SafeUUID.unknown


def _fast_uuid(raw: bytes) -> uuid.UUID:
    # UUID(bytes=...) validates its arguments in Python and costs as much as decoding an
    # event's JSON; 16 stored bytes need no validation. This fills the two slots that
    # UUID.__init__ fills (as the psycopg driver does).
    value = _new(uuid.UUID)
    _set(value, "int", int.from_bytes(raw))
    _set(value, "is_safe", _SAFE_UNKNOWN)
    return value


def _checked_uuid_from_bytes() -> Any:
    sample = uuid.uuid4()
    try:
        same = _fast_uuid(sample.bytes) == sample and hash(_fast_uuid(sample.bytes)) == hash(sample)
    except (AttributeError, TypeError):  # pragma: no cover (a Python whose UUID differs)
        same = False
    return _fast_uuid if same else lambda raw: uuid.UUID(bytes=raw)  # pragma: no branch


uuid_from_bytes = _checked_uuid_from_bytes()
"""Return the UUID stored as 16 bytes (fast where this Python's UUID allows it)."""


def records(rows: list[Any]) -> list[EventRecord]:
    """Turn rows fetched by the statements above into records."""
    result: list[EventRecord] = []
    append = result.append
    make_uuid = uuid_from_bytes
    new_tuple = tuple.__new__
    parse = datetime.fromisoformat
    # Events appended together share their recorded_at: parse it once per run of them.
    last_text, last_time = "", datetime.min.replace(tzinfo=UTC)
    for stream_id, version, position, event_id, event_type, schema_version, data, meta, at in rows:
        if at != last_text:
            last_text, last_time = at, parse(at)
        # tuple.__new__ skips the Python frame of the NamedTuple's generated __new__.
        append(
            new_tuple(
                EventRecord,
                (
                    stream_id,
                    version,
                    position,
                    make_uuid(event_id),
                    event_type,
                    schema_version,
                    data,
                    meta,
                    last_time,
                ),
            )
        )
    return result
