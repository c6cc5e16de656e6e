"""
The in-memory event store: the reference backend, written to be read rather than fast.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

import bisect
import itertools
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from eventkit._acompat import ALock, yield_to_loop
from eventkit._projection_store_async import AsyncProjectionLock, TaskBoundLocks
from eventkit._records import EventRecord, StoredEventRef
from eventkit._rules import decide_append
from eventkit._store_async import AsyncBaseEventStore
from eventkit.exceptions import ArgumentError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from uuid import UUID

    import cattrs

    from eventkit._events import EventRegistry
    from eventkit._records import AppendResult, Checkpoint, DeadLetter, RecordWrite, SnapshotRecord
    from eventkit._storage import ProjectionTransaction

T = TypeVar("T")

# read_all copies this many records at a time under the lock, so a reader holds the lock
# briefly and never copies the whole log.
_PAGE_SIZE = 500


class AsyncInMemoryEventStore(AsyncBaseEventStore):
    """
    An event store that keeps everything in process memory.

    For tests, examples and prototypes: nothing survives the process. It is safe to
    share between threads and tasks, passes the same conformance suite as the durable
    backends, and stores events encoded, exactly as they would be on disk, so
    serialization problems show up here first.

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
        # Reentrant: a projection transaction that appended holds it until it ends, and
        # its handler may read the store meanwhile.
        self._lock = threading.RLock()
        # The global log: position n is self._log[n - 1].
        self._log: list[EventRecord] = []
        self._streams: dict[str, list[EventRecord]] = {}
        self._ids: dict[UUID, StoredEventRef] = {}
        # Stream ids in ascending order, for _stream_ids; kept sorted as streams appear.
        self._stream_order: list[str] = []
        self._snapshots: dict[str, SnapshotRecord] = {}
        self._projection_locks = TaskBoundLocks()
        # One projection transaction at a time, as a database's write lock would allow.
        self._projection_mutex = ALock()
        self._checkpoints: dict[str, Checkpoint] = {}
        self._dead_letters: dict[str, dict[int, DeadLetter]] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} with {len(self._log)} events>"

    async def _append(self, writes: list[RecordWrite]) -> list[AppendResult]:
        with self._lock:
            return self._store(writes)

    def _store(self, writes: Sequence[RecordWrite]) -> list[AppendResult]:
        # Called with self._lock held.
        versions = [len(self._streams.get(write.stream_id, ())) for write in writes]
        found = {
            record.event_id: self._ids[record.event_id]
            for write in writes
            for record in write.records
            if record.event_id in self._ids
        }
        # Decided before anything is stored, so a failure leaves nothing behind.
        plan = decide_append(writes, versions, found)
        first = len(self._log) + 1
        now = datetime.now(UTC)
        for position, (stream_id, version, record) in enumerate(plan.rows, start=first):
            # A copied event keeps the time it was first recorded.
            given = record.recorded_at
            recorded_at = now if given is None else given.astimezone(UTC)
            stored = EventRecord(
                stream_id,
                version,
                position,
                record.event_id,
                record.event_type,
                record.schema_version,
                record.data,
                record.metadata,
                recorded_at,
            )
            self._log.append(stored)
            if stream_id not in self._streams:
                bisect.insort(self._stream_order, stream_id)
            self._streams.setdefault(stream_id, []).append(stored)
            self._ids[record.event_id] = StoredEventRef(stream_id, version, position)
        return plan.results(range(first, first + len(plan.rows)))

    async def _read_stream(
        self, stream_id: str, low: int, high: int | None, *, backwards: bool, limit: int | None
    ) -> list[EventRecord]:
        with self._lock:
            selected = self._streams.get(stream_id, [])[low - 1 : high]
        if backwards:
            selected.reverse()
        return selected[:limit]

    async def _read_all(
        self, after_position: int, limit: int | None, event_types: frozenset[str] | None
    ) -> AsyncIterator[EventRecord]:
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
            await yield_to_loop()

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's version: 0 when it does not exist."""
        with self._lock:
            return len(self._streams.get(stream_id, ()))

    async def head_position(self) -> int:
        """Return the highest position in the store: 0 when it is empty."""
        with self._lock:
            return len(self._log)

    async def _stream_ids(self, prefix: str, after: str | None, limit: int) -> list[str]:
        with self._lock:
            start = bisect.bisect_left(self._stream_order, prefix)
            if after is not None:
                start = max(start, bisect.bisect_right(self._stream_order, after))
            candidates = self._stream_order[start : start + limit]
        # Sorted order puts every id with the prefix in one run, starting at the prefix.
        return list(itertools.takewhile(lambda stream_id: stream_id.startswith(prefix), candidates))

    async def _save_snapshot(self, record: SnapshotRecord) -> None:
        with self._lock:
            self._snapshots[record.stream_id] = record

    async def _load_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        with self._lock:
            return self._snapshots.get(stream_id)

    # -- projection storage -----------------------------------------------------------------

    @property
    def exactly_once(self) -> bool:
        """False: handlers write to Python objects that a rollback cannot undo."""
        return False

    async def run_projection_transaction(self, body: Callable[[ProjectionTransaction], T]) -> T:
        """
        Call *body* in a projection transaction: committed if it returns, else forgotten.

        Checkpoints, dead letters and events appended through the transaction commit
        together or not at all. From its first append until it ends, the transaction
        holds the store's lock, so that no one reads events that may yet be rolled back.
        """
        async with self._projection_mutex:
            transaction = _MemoryProjectionTransaction(self)
            try:
                result = body(transaction)
            except BaseException:
                transaction.roll_back()
                raise
            # Reached only without an exception: the staged copies become the state.
            self._checkpoints = transaction.checkpoints
            self._dead_letters = transaction.dead_letters
            appended = transaction.commit()
        if appended:
            self._listeners.notify()
        return result

    async def projection_checkpoints(self) -> dict[str, Checkpoint]:
        """Return every committed checkpoint, by projection name."""
        return dict(self._checkpoints)

    async def dead_letters(self, projection: str) -> list[DeadLetter]:
        """Return the projection's committed dead letters, in position order."""
        letters = self._dead_letters.get(projection, {})
        return [letters[position] for position in sorted(letters)]

    async def lock_projection(self, projection: str) -> AsyncProjectionLock | None:
        """Take the projection's lock; it is free again when its taker (task, thread) ends."""
        return self._projection_locks.acquire(projection)


class _MemoryProjectionTransaction:
    # Works on copies of the store's dictionaries; the store adopts them on commit, so
    # a rollback is simply forgetting them. Appended events go into the store's log at
    # once, under its lock, which the transaction keeps until it ends; a rollback takes
    # them out again.
    connection = None

    def __init__(self, store: AsyncInMemoryEventStore) -> None:
        self._store = store
        self.checkpoints = dict(store._checkpoints)  # noqa: SLF001 (the store's own helper)
        self.dead_letters = {
            name: dict(letters)
            for name, letters in store._dead_letters.items()  # noqa: SLF001
        }
        self._log_size: int | None = None  # the log's length before the first append
        self._stream_sizes: dict[str, int] = {}

    def append(self, writes: Sequence[RecordWrite]) -> list[AppendResult]:
        store = self._store
        if self._log_size is None:
            store._lock.acquire()  # noqa: SLF001 (released by commit or roll_back)
            self._log_size = len(store._log)  # noqa: SLF001
        for write in writes:
            streams = store._streams  # noqa: SLF001
            self._stream_sizes.setdefault(write.stream_id, len(streams.get(write.stream_id, ())))
        return store._store(writes)  # noqa: SLF001

    def read_stream(self, stream_id: str) -> list[EventRecord]:
        store = self._store
        with store._lock:  # noqa: SLF001
            return list(store._streams.get(stream_id, ()))  # noqa: SLF001

    def commit(self) -> bool:
        """Keep the appended events; return whether there were any."""
        if self._log_size is None:
            return False
        appended = len(self._store._log) > self._log_size  # noqa: SLF001
        self._store._lock.release()  # noqa: SLF001
        return appended

    def roll_back(self) -> None:
        """Take the appended events out of the store again."""
        if self._log_size is None:
            return
        store = self._store
        try:
            for record in store._log[self._log_size :]:  # noqa: SLF001
                store._ids.pop(record.event_id, None)  # noqa: SLF001
            del store._log[self._log_size :]  # noqa: SLF001
            for stream_id, size in self._stream_sizes.items():
                if size:
                    del store._streams[stream_id][size:]  # noqa: SLF001
                elif store._streams.pop(stream_id, None) is not None:  # noqa: SLF001
                    store._stream_order.remove(stream_id)  # noqa: SLF001
        finally:
            store._lock.release()  # noqa: SLF001

    def checkpoint(self, projection: str) -> Checkpoint | None:
        return self.checkpoints.get(projection)

    def save_checkpoint(self, projection: str, checkpoint: Checkpoint) -> None:
        self.checkpoints[projection] = checkpoint

    def forget(self, projection: str) -> None:
        self.checkpoints.pop(projection, None)
        self.dead_letters.pop(projection, None)

    def park(self, letter: DeadLetter) -> None:
        self.dead_letters.setdefault(letter.projection, {})[letter.position] = letter

    def unpark(self, projection: str, position: int) -> None:
        self.dead_letters.get(projection, {}).pop(position, None)

    def move_projection(self, source: str, target: str) -> None:
        checkpoint = self.checkpoints.pop(source, None)
        letters = self.dead_letters.pop(source, {})
        self.forget(target)
        if checkpoint is not None:
            self.checkpoints[target] = checkpoint
        self.dead_letters[target] = {
            position: letter._replace(projection=target) for position, letter in letters.items()
        }

    def drop_tables(self, names: Sequence[str]) -> None:
        _refuse_tables(names)

    def replace_tables(self, moves: Sequence[tuple[str, str]]) -> None:
        _refuse_tables([target for _, target in moves])


def _refuse_tables(names: Sequence[str]) -> None:
    if names:
        raise ArgumentError(
            f"InMemoryEventStore keeps no read-model tables, but tables {list(names)!r} "
            "were named; keep an in-memory read model in the projection's attributes"
        )
