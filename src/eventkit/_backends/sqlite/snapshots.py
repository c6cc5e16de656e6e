"""
Snapshots and stream listing in the SQLite file: the SQL, and rows to records and back.

The snapshot table (see `schema`) holds one row per stream, replaced by each save.
Stream ids are listed from the events table's (stream_id, version) index by a skip scan:
one index search per stream, so listing costs the number of streams, not of events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventkit._store import SnapshotRecord

_COLUMNS = (
    "stream_id, aggregate_type, version, event_id, snapshot_version, state, taken_at, build_seconds"
)


class SnapshotStatements:
    """The SQL for snapshots and stream ids, spliced with the store's table names."""

    save = (
        "INSERT OR REPLACE INTO {snapshots} (stream_id, aggregate_type, version, event_id, "
        "snapshot_version, state, taken_at, build_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    load = (
        "SELECT stream_id, aggregate_type, version, event_id, snapshot_version, state, "
        "taken_at, build_seconds FROM {snapshots} WHERE stream_id = ?"
    )
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

    def __init__(self, prefix: str) -> None:
        names = {"events": f"{prefix}events", "snapshots": f"{prefix}snapshots"}
        for attribute, template in vars(SnapshotStatements).items():
            if not attribute.startswith("_") and isinstance(template, str):
                setattr(self, attribute, template.format_map(names))


def stream_ids_params(prefix: str, after: str | None, limit: int) -> tuple[Any, ...]:
    """Return the parameters of `SnapshotStatements.stream_ids`."""
    # Stream ids are never empty, so "after the empty string" is "from the start".
    length = len(prefix)
    return (prefix, after or "", length, prefix, limit, length, prefix)


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
