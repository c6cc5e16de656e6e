"""
Snapshots in the SQLite file: rows of the snapshot table to records and back.

The snapshot table (see `schema`) holds one row per stream, replaced by each save.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventkit._records import SnapshotRecord
from eventkit.exceptions import SerializationError


def snapshot_row(record: SnapshotRecord) -> tuple[Any, ...]:
    """Return *record* as a row of the snapshot table."""
    return (
        record.stream_id,
        record.aggregate_type,
        record.version,
        record.event_id.bytes,
        record.snapshot_version,
        record.state,
        record.taken_at.astimezone(UTC).isoformat(timespec="microseconds"),
        float(record.build_seconds),
    )


_COLUMNS = (
    ("stream_id", str),
    ("aggregate_type", str),
    ("version", int),
    ("event_id", bytes),
    ("snapshot_version", int),
    ("state", str),
    ("taken_at", str),
    ("build_seconds", float),
)


def snapshot_record(row: tuple[Any, ...]) -> SnapshotRecord:
    """
    Return the record stored as *row* of the snapshot table.

    Raises:
        SerializationError: The row is damaged (a column of the wrong type, an event id
            that is not 16 bytes, a time that cannot be read), naming the stream and
            the column.
    """
    stream_id, aggregate_type, version, event_id, snapshot_version, state, taken_at, took = row
    for (name, kind), value in zip(_COLUMNS, row, strict=True):
        # SQLite gives back an integral REAL as an int: both are a number of seconds.
        if value.__class__ is not kind and not (kind is float and value.__class__ is int):
            raise _damaged(row, f"column {name} holds {type(value).__name__} {value!r:.60}")
    if len(event_id) != _UUID_BYTES:
        raise _damaged(row, f"event_id is {len(event_id)} bytes long, not {_UUID_BYTES}")
    try:
        taken = datetime.fromisoformat(taken_at)
    except ValueError:
        taken = None
    if taken is None or taken.utcoffset() is None:
        raise _damaged(row, f"taken_at {taken_at!r:.60} is not an ISO 8601 time with an offset")
    return SnapshotRecord(
        stream_id=stream_id,
        aggregate_type=aggregate_type,
        version=version,
        event_id=UUID(bytes=event_id),
        snapshot_version=snapshot_version,
        state=state,
        taken_at=taken,
        build_seconds=took,
    )


_UUID_BYTES = 16


def _damaged(row: tuple[Any, ...], detail: str) -> SerializationError:
    stream_id, version = row[0], row[2]
    return SerializationError(
        f"the stored snapshot row is damaged: {detail}",
        stream_id=stream_id if stream_id.__class__ is str else repr(stream_id),
        version=version if version.__class__ is int else None,
    )
