"""The SQLite store's statements, and the turning of fetched rows into records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from eventkit._serialization import EventRecord

MAX_INT = 2**63 - 1
"""SQLite's largest integer: bounds beyond it are clamped to it, meaning no bound."""

_SELECT = (
    "SELECT stream_id, version, position, event_id, event_type, schema_version, data, "
    "metadata, recorded_at FROM {events}"
)


class Statements:
    """The store's SQL, spliced once with its table names (from a checked prefix)."""

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

    def __init__(self, prefix: str) -> None:
        names = {"events": f"{prefix}events", "marks": "{marks}"}
        for attribute, template in vars(Statements).items():
            if not attribute.startswith("_") and isinstance(template, str):
                setattr(self, attribute, template.format_map(names))

    def read_all_of(self, count: int) -> str:
        """Return a read_all page query for *count* event types."""
        # SQLite reads each type's range of the (event_type, position) index in order and
        # stops once the page is full, so a page costs the same wherever it starts.
        marks = ", ".join("?" * count)
        return self.read_all_of_types.format(marks=marks) + " ORDER BY position LIMIT ?"

    def find(self, count: int) -> str:
        """Return a query for where *count* event ids are stored."""
        return self.find_ids + "(" + ", ".join("?" * count) + ")"


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
