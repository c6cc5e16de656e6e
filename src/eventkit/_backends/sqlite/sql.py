"""The SQLite store's statements, and the turning of fetched rows into records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from eventkit._backends._sql import SQLTemplates
from eventkit._records import EventRecord
from eventkit.exceptions import SerializationError

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
    # Without an upper bound: SQLite sorts text and blobs after every number, so a row
    # whose version was damaged into one is read (and refused), not silently left out.
    read_stream_to_end = _SELECT + " WHERE stream_id = ? AND version >= ? ORDER BY version LIMIT ?"
    read_stream_from_end = (
        _SELECT + " WHERE stream_id = ? AND version >= ? ORDER BY version DESC LIMIT ?"
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
    """
    Turn rows fetched by the statements above into records.

    Raises:
        SerializationError: A row is damaged (a column of the wrong type, an event id
            that is not 16 bytes, a recording time that is not an aware ISO timestamp),
            naming its stream, version and position.
    """
    result: list[EventRecord] = []
    append = result.append
    make_uuid = uuid_from_bytes
    new_tuple = tuple.__new__
    # Events appended together share their recorded_at: parse it once per run of them.
    last_text, last_time = "", datetime.min.replace(tzinfo=UTC)
    for row in rows:
        stream_id, version, position, event_id, event_type, schema_version, data, meta, at = row
        # SQLite keeps values of any type in any column: a row edited by hand may hold
        # text where an integer belongs, or a blob of another length. Checked here is
        # what could otherwise read as a different value; position is the rowid, always
        # an integer, and the text columns' affinity turns numbers into text, so they can
        # only hold a blob, which the codec refuses when it reads them. (__class__ is the
        # cheapest type check per row: this loop runs for every event read.)
        if not (
            version.__class__ is int
            and schema_version.__class__ is int
            and stream_id.__class__ is str
            and event_id.__class__ is bytes
            and len(event_id) == _UUID_BYTES
        ):
            raise damaged_row(row)
        if at != last_text:
            last_time = _recorded_at(row)
            last_text = at
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


_UUID_BYTES = 16
_COLUMNS = (
    ("stream_id", str),
    ("version", int),
    ("position", int),
    ("event_id", bytes),
    ("event_type", str),
    ("schema_version", int),
    ("data", str),
    ("metadata", str),
    ("recorded_at", str),
)


def _recorded_at(row: tuple[Any, ...]) -> datetime:
    at = row[-1]
    try:
        parsed = datetime.fromisoformat(at)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        raise _row_error(row, f"recorded_at {at!r:.60} is not an ISO 8601 time with an offset")
    return parsed


def damaged_row(row: tuple[Any, ...]) -> SerializationError:
    """Return the error for an event row one of whose columns has the wrong type."""
    for (name, kind), value in zip(_COLUMNS, row, strict=True):
        if value.__class__ is not kind:
            return _row_error(row, f"column {name} holds {_shown(value)}, not {kind.__name__}")
    return _row_error(row, f"event_id is {len(row[3])} bytes long, not {_UUID_BYTES}")


def _shown(value: object) -> str:
    return f"{type(value).__name__} {value!r:.60}"


def _row_error(row: tuple[Any, ...], detail: str) -> SerializationError:
    stream_id, version, position, _, event_type = row[:5]
    return SerializationError(
        f"the stored event row is damaged: {detail}",
        stream_id=stream_id if stream_id.__class__ is str else repr(stream_id),
        version=version,
        position=position,
        event_type=event_type if event_type.__class__ is str else None,
    )


def check_versions(stream_id: str, low: int, rows: list[EventRecord], *, backwards: bool) -> None:
    """
    Raise unless *rows*, read from *stream_id* from version *low* on, have no gap.

    Versions are unique in a stream (an index says so), so a run of rows is whole when
    its first and last versions are as far apart as it is long; forwards it must start
    at *low*. A row whose version was changed by hand would otherwise be skipped.

    Raises:
        SerializationError: A version is missing, naming the stream and the gap.
    """
    if not rows:
        return
    first, last = rows[0].version, rows[-1].version
    span = first - last if backwards else last - first
    start = last if backwards else first
    if span != len(rows) - 1 or (start != low and not backwards):
        seen = sorted(row.version for row in rows)
        expected = range(low if not backwards else seen[0], seen[-1] + 1)
        missing = next(version for version in expected if version not in set(seen))
        raise SerializationError(
            f"the stored stream is damaged: version {missing} is missing between "
            f"versions {seen[0]} and {seen[-1]}",
            stream_id=stream_id,
            version=missing,
        )


def stored_version(stream_id: str, value: Any) -> int:
    """
    Return a stream's version from its highest stored version, *value* (None: no events).

    Raises:
        SerializationError: The highest stored version is not an integer (SQLite sorts
            text and blobs after numbers), naming the stream.
    """
    if value is None:
        return 0
    if value.__class__ is not int:
        raise SerializationError(
            f"the stored stream is damaged: a version column holds "
            f"{type(value).__name__} {value!r:.60}",
            stream_id=stream_id,
        )
    return int(value)
