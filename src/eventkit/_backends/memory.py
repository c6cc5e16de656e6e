"""The in-memory event store: the reference backend, written to be read rather than fast."""

from __future__ import annotations

import bisect
import itertools
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from eventkit._serialization import EventRecord
from eventkit._store import (
    AppendResult,
    BaseEventStore,
    RecordWrite,
    SnapshotRecord,
    StoredEventRef,
    check_expected_version,
    resolve_existing,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from uuid import UUID

    import cattrs

    from eventkit._events import EventRegistry

# read_all copies this many records at a time under the lock, so a reader holds the lock
# briefly and never copies the whole log.
_PAGE_SIZE = 500


class InMemoryEventStore(BaseEventStore):
    """
    An event store that keeps everything in process memory.

    For tests, examples and prototypes: nothing survives the process. It is
    thread-safe, passes the same conformance suite as the durable backends, and stores
    events encoded, exactly as they would be on disk, so serialization problems show
    up here first.

    Args:
        registry: Where event type names are looked up; `default_registry` if omitted.
        converter: The cattrs converter for event data; `make_converter()` if omitted.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        registry: EventRegistry | None = None,
        converter: cattrs.Converter | None = None,
    ) -> None:
        super().__init__(registry=registry, converter=converter)
        self._lock = threading.Lock()
        # The global log: position n is self._log[n - 1].
        self._log: list[EventRecord] = []
        self._streams: dict[str, list[EventRecord]] = {}
        self._ids: dict[UUID, StoredEventRef] = {}
        # Stream ids in ascending order, for _stream_ids; kept sorted as streams appear.
        self._stream_order: list[str] = []
        self._snapshots: dict[str, SnapshotRecord] = {}

    def __repr__(self) -> str:
        return f"<InMemoryEventStore with {len(self._log)} events>"

    def _append(self, writes: list[RecordWrite]) -> list[AppendResult]:
        with self._lock:
            # Decide every write before storing any, so a failure leaves nothing behind.
            results: list[AppendResult] = []
            staged: list[EventRecord] = []
            position = len(self._log)
            recorded_at = datetime.now(UTC)
            for write in writes:
                actual = len(self._streams.get(write.stream_id, ()))
                found = {
                    record.event_id: self._ids[record.event_id]
                    for record in write.records
                    if record.event_id in self._ids
                }
                if found:
                    results.append(resolve_existing(write, found, actual))
                    continue
                check_expected_version(write.stream_id, write.expected_version, actual)
                for version, record in enumerate(write.records, start=actual + 1):
                    position += 1
                    staged.append(
                        EventRecord(
                            write.stream_id,
                            version,
                            position,
                            record.event_id,
                            record.event_type,
                            record.schema_version,
                            record.data,
                            record.metadata,
                            recorded_at,
                        )
                    )
                count = len(write.records)
                results.append(
                    AppendResult(
                        write.stream_id,
                        actual + count,
                        tuple(range(position - count + 1, position + 1)),
                    )
                )
            for stored in staged:
                self._log.append(stored)
                if stored.stream_id not in self._streams:
                    bisect.insort(self._stream_order, stored.stream_id)
                self._streams.setdefault(stored.stream_id, []).append(stored)
                self._ids[stored.event_id] = StoredEventRef(
                    stored.stream_id, stored.version, stored.position
                )
            return results

    def _read_stream(
        self, stream_id: str, low: int, high: int | None, *, backwards: bool, limit: int | None
    ) -> list[EventRecord]:
        with self._lock:
            selected = self._streams.get(stream_id, [])[low - 1 : high]
        if backwards:
            selected.reverse()
        return selected[:limit]

    def _read_all(
        self, after_position: int, limit: int | None, event_types: frozenset[str] | None
    ) -> Iterator[EventRecord]:
        remaining = limit
        while remaining is None or remaining > 0:
            with self._lock:
                page = self._log[after_position : after_position + _PAGE_SIZE]
            if not page:
                return
            for record in page:
                if event_types is None or record.event_type in event_types:
                    yield record
                    if remaining is not None:
                        remaining -= 1
                        if remaining == 0:
                            return
            after_position = page[-1].position

    def stream_version(self, stream_id: str) -> int:
        """Return the stream's version: 0 when it does not exist."""
        with self._lock:
            return len(self._streams.get(stream_id, ()))

    def head_position(self) -> int:
        """Return the highest position in the store: 0 when it is empty."""
        with self._lock:
            return len(self._log)

    def _stream_ids(self, prefix: str, after: str | None, limit: int) -> list[str]:
        with self._lock:
            start = bisect.bisect_left(self._stream_order, prefix)
            if after is not None:
                start = max(start, bisect.bisect_right(self._stream_order, after))
            candidates = self._stream_order[start : start + limit]
        # Sorted order puts every id with the prefix in one run, starting at the prefix.
        return list(itertools.takewhile(lambda stream_id: stream_id.startswith(prefix), candidates))

    def _save_snapshot(self, record: SnapshotRecord) -> None:
        with self._lock:
            self._snapshots[record.stream_id] = record

    def _load_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        with self._lock:
            return self._snapshots.get(stream_id)
