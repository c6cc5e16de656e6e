"""
Snapshots in the SQLite file: rows of the snapshot table to records and back.

The snapshot table (see `schema`) holds one row per stream, replaced by each save.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventkit._records import SnapshotRecord


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


def snapshot_record(row: tuple[Any, ...]) -> SnapshotRecord:
    """
    Return the record stored as *row* of the snapshot table.

    Raises:
        ValueError, TypeError: The row is corrupt (an id or a time that cannot be read).
    """
    stream_id, aggregate_type, version, event_id, snapshot_version, state, taken_at, took = row
    return SnapshotRecord(
        stream_id=stream_id,
        aggregate_type=aggregate_type,
        version=version,
        event_id=UUID(bytes=event_id),
        snapshot_version=snapshot_version,
        state=state,
        taken_at=datetime.fromisoformat(taken_at),
        build_seconds=took,
    )
