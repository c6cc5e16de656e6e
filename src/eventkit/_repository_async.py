"""
The repository: loads aggregates from their streams and saves their new events.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Generic, TypeVar

import attrs

from eventkit._aggregate import Aggregate
from eventkit._envelope import NO_STREAM, NewEvent
from eventkit._snapshots import (
    SnapshotPolicy,
    SnapshotProgress,
    boundary_reason,
    check_snapshot_class,
    choose_policy,
    logger,
    restore,
    take_snapshot,
    unusable_reason,
)
from eventkit.exceptions import (
    ArgumentError,
    ArgumentTypeError,
    StoreError,
    StreamNotFound,
    VersionNotFoundError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
    from typing import Any
    from uuid import UUID

    from eventkit._envelope import RecordedEvent
    from eventkit._records import AppendResult, SnapshotRecord
    from eventkit._store_async import AsyncEventStore

A = TypeVar("A", bound=Aggregate)


def _check_aggregate_class(aggregate_type: object) -> None:
    if not isinstance(aggregate_type, type) or not issubclass(aggregate_type, Aggregate):
        raise ArgumentTypeError(f"a repository needs an Aggregate subclass, got {aggregate_type!r}")
    # attrs.has() is true through inheritance; the subclass itself must be decorated, or
    # its fields are shared class attributes that equality and copying ignore.
    if "__attrs_attrs__" not in vars(aggregate_type):
        raise ArgumentTypeError(
            f"{aggregate_type.__qualname__} must be decorated with @attrs.define"
        )
    for field in attrs.fields(aggregate_type):
        if field.name != "id" and field.init and field.default is attrs.NOTHING:
            raise ArgumentTypeError(
                f"{aggregate_type.__qualname__}.{field.name} needs a default: aggregates are "
                "built empty and filled by replaying their events"
            )


def _check_at_version(at_version: object) -> None:
    if at_version is None:
        return
    if isinstance(at_version, bool) or not isinstance(at_version, int) or at_version < 1:
        raise ArgumentError(f"at_version must be an integer >= 1, got {at_version!r}")


class AsyncRepository(Generic[A]):
    """
    Loads and saves aggregates of one class through an event store.

    With *snapshot_every* or *snapshot_policy*, the repository also keeps a snapshot
    of each aggregate's state beside its events, and loads from the snapshot plus the
    events after it: the result equals a replay of every event, only faster. Snapshots
    are written after a successful save, never before; a snapshot that cannot be
    written is logged (logger ``eventkit.snapshots``) and the save still succeeds. A
    stored snapshot that no longer fits (another ``snapshot_version``, data that does
    not structure, a stream that was truncated or restored) is logged, ignored, and
    replaced at the aggregate's next save.

    Args:
        store: The event store.
        aggregate_type: The `Aggregate` subclass this repository handles.
        stream_prefix: Prepended to an aggregate id to give its stream id
            (``"account-"`` stores aggregate ``"42"`` in stream ``"account-42"``).
        snapshot_every: Snapshot an aggregate each time a save takes its version past
            a multiple of this number.
        snapshot_policy: Or decide after each save: a `SnapshotPolicy` called with the
            saved aggregate and the events just appended, returning True to snapshot.

    Raises:
        TypeError: *aggregate_type* is not an attrs `Aggregate` subclass whose fields
            (other than ``id``) all have defaults; with snapshots, it has fields
            declared ``init=False``, which snapshots would lose; *snapshot_policy* is
            not callable.
        ValueError: Both *snapshot_every* and *snapshot_policy* are given, or
            *snapshot_every* is not an integer >= 1.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        store: AsyncEventStore,
        aggregate_type: type[A],
        *,
        stream_prefix: str = "",
        snapshot_every: int | None = None,
        snapshot_policy: SnapshotPolicy | None = None,
    ) -> None:
        _check_aggregate_class(aggregate_type)
        self.snapshot_policy = choose_policy(snapshot_every, snapshot_policy)
        if self.snapshot_policy is not None:
            check_snapshot_class(aggregate_type)
        self.store = store
        self.aggregate_type = aggregate_type
        self.stream_prefix = stream_prefix
        # Streams whose stored snapshot could not be used: their next save replaces it,
        # whatever the snapshot policy says.
        self._stale_snapshots: set[str] = set()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.aggregate_type.__qualname__} in {self.store!r}>"

    def stream_id(self, aggregate_id: str) -> str:
        """Return the id of the stream that holds the aggregate *aggregate_id*."""
        return f"{self.stream_prefix}{aggregate_id}"

    async def load(self, aggregate_id: str, *, at_version: int | None = None) -> A:
        """
        Rebuild the aggregate *aggregate_id* from its snapshot and events.

        Args:
            aggregate_id: The aggregate to load.
            at_version: Load the aggregate as it was at this version (time travel)
                instead of as it is now. The stored snapshot is used when it is at or
                below this version.

        Raises:
            StreamNotFound: No events are stored for *aggregate_id*.
            VersionNotFoundError: The stream has not reached *at_version*.
            ValueError: *at_version* is not an integer >= 1.
            SerializationError: A stored event cannot be decoded.
        """
        _check_at_version(at_version)
        stream_id = self.stream_id(aggregate_id)
        if self.snapshot_policy is not None:
            loaded, stale = await self._load_from_snapshot(aggregate_id, stream_id, at_version)
            if loaded is not None:
                return loaded
            if stale:
                self._stale_snapshots.add(stream_id)
        history = await self.store.read_stream(stream_id, to_version=at_version)
        if not history:
            raise StreamNotFound(stream_id)
        _check_reached(stream_id, history, at_version)
        aggregate = self.aggregate_type(id=aggregate_id)
        return aggregate.replay(recorded.event for recorded in history)

    async def _load_from_snapshot(
        self, aggregate_id: str, stream_id: str, at_version: int | None
    ) -> tuple[A | None, bool]:
        # Returns the aggregate (None: replay instead) and whether the stored snapshot
        # must be replaced at the next save.
        try:
            record = await self.store.load_snapshot(stream_id)
        except Exception:  # noqa: BLE001 (logged: a row the backend cannot even read is corrupt)
            logger.warning(
                "stream %r: ignoring a snapshot that cannot be read, replaying every event",
                stream_id,
                exc_info=True,
            )
            return None, True
        if record is None or (at_version is not None and at_version < record.version):
            return None, False
        reason = unusable_reason(record, self.aggregate_type)
        if reason is None:
            # From the snapshot's own version: its event proves the stream still is the
            # one the snapshot was taken from.
            tail = await self.store.read_stream(
                stream_id, from_version=record.version, to_version=at_version
            )
            reason = boundary_reason(record, tail[0] if tail else None)
        if reason is None:
            try:
                aggregate = restore(record, self.aggregate_type, aggregate_id, self.store.codec)
            except Exception as exc:  # noqa: BLE001 (any failure means: replay instead)
                reason = f"its state does not load: {exc}"
        if reason is not None:
            logger.warning(
                "stream %r: ignoring the snapshot at version %d and replaying every event: %s",
                stream_id,
                record.version,
                reason,
            )
            return None, True
        _check_reached(stream_id, tail, at_version)
        return aggregate.replay(recorded.event for recorded in tail[1:]), False

    async def save(
        self, aggregate: A, *, metadata: Mapping[str, str] | None = None
    ) -> AppendResult | None:
        """
        Append the aggregate's pending events, if it has any; then snapshot it if due.

        The append expects the stream to be at the version the aggregate was loaded
        at, so a concurrent change is detected rather than overwritten. The snapshot
        is written after the append succeeded; failing to write it is logged and does
        not make the save fail.

        Args:
            aggregate: The aggregate to save.
            metadata: Stored with every event of this save (``correlation_id``, ...).

        Returns:
            What was appended, or None when the aggregate had no pending events.

        Saving is safe to retry: the pending events keep the ids they were given when
        recorded, so if a save fails with an error whose outcome is unknown (the
        connection dropped after the commit, say), saving the same aggregate again
        stores nothing twice and returns what the first save appended.

        Raises:
            ConcurrencyError: The stream changed since the aggregate was loaded. Its
                pending events are kept; reload and retry the command.
        """
        pending = aggregate.pending_events
        if not pending:
            return None
        expected = aggregate.saved_version
        stream_id = self.stream_id(aggregate.id)
        new_events = [
            NewEvent(event, event_id=event_id, metadata=metadata or {})
            for event, event_id in zip(pending, aggregate.pending_event_ids, strict=True)
        ]
        result = await self.store.append(
            stream_id, new_events, expected_version=expected or NO_STREAM
        )
        aggregate.mark_saved()
        if self.snapshot_policy is not None:
            await self._snapshot_after_save(aggregate, stream_id, pending, new_events[-1].event_id)
        return result

    async def _snapshot_after_save(
        self, aggregate: A, stream_id: str, new_events: Sequence[Any], event_id: UUID
    ) -> None:
        assert self.snapshot_policy is not None  # noqa: S101 (checked by the caller)
        try:
            stale = stream_id in self._stale_snapshots
            if not (stale or self.snapshot_policy(aggregate, new_events)):
                return
            await self.store.save_snapshot(
                take_snapshot(
                    aggregate, stream_id=stream_id, event_id=event_id, codec=self.store.codec
                )
            )
            self._stale_snapshots.discard(stream_id)
        except Exception:  # noqa: BLE001 (logged: a snapshot must never fail a stored save)
            # The events are stored: the save succeeded. A missing snapshot only makes
            # later loads slower, so it must not turn into an error the caller retries.
            logger.warning(
                "stream %r: the events up to version %d are saved, but writing their "
                "snapshot failed",
                stream_id,
                aggregate.version,
                exc_info=True,
            )

    async def exists(self, aggregate_id: str) -> bool:
        """Return whether any event is stored for the aggregate *aggregate_id*."""
        return await self.store.stream_version(self.stream_id(aggregate_id)) > 0

    async def rebuild_snapshots(
        self,
        *,
        aggregate_ids: Iterable[str] | None = None,
        progress: Callable[[SnapshotProgress], object] | None = None,
    ) -> SnapshotProgress:
        """
        Replay aggregates from their events and write a fresh snapshot of each.

        Run it after a deploy that bumped ``snapshot_version`` or changed ``apply``,
        so that loads start from snapshots at once rather than after each aggregate's
        next save. A stream whose snapshot cannot be built is logged and counted as
        failed, and the rebuild goes on; a `StoreError` stops it.

        Args:
            aggregate_ids: The aggregates to rebuild. By default every stream whose id
                starts with the repository's *stream_prefix*, listed by the store.
            progress: Called after each stream with the progress so far;
                ``progress=print`` prints a line per stream.

        Returns:
            The final progress (streams handled, snapshots written, failures).

        Raises:
            ValueError: The repository takes no snapshots, or it has no
                *stream_prefix* and no *aggregate_ids* were given (every stream in the
                store would be taken for one of this repository's aggregates).
            StoreError: The store failed.
        """
        if self.snapshot_policy is None:
            raise ArgumentError(
                f"{self!r} takes no snapshots: give it snapshot_every or snapshot_policy"
            )
        if aggregate_ids is None and not self.stream_prefix:
            raise ArgumentError(
                f"{self!r} has no stream_prefix, so its streams cannot be told apart "
                "from other aggregates' streams: pass aggregate_ids"
            )
        started = time.perf_counter()
        status = SnapshotProgress()
        async for aggregate_id in self._aggregate_ids(aggregate_ids):
            written = await self._rebuild_snapshot(aggregate_id)
            elapsed = time.perf_counter() - started
            status = status.advanced(self.stream_id(aggregate_id), written=written, elapsed=elapsed)
            if progress is not None:
                progress(status)
        return status

    async def _aggregate_ids(self, given: Iterable[str] | None) -> AsyncIterator[str]:
        # The ids given, or those of the store's streams with the repository's prefix.
        if given is not None:
            for aggregate_id in given:
                yield aggregate_id
            return
        skip = len(self.stream_prefix)
        async for stream_id in self.store.stream_ids(prefix=self.stream_prefix):
            yield stream_id[skip:]

    async def _rebuild_snapshot(self, aggregate_id: str) -> bool:
        stream_id = self.stream_id(aggregate_id)
        try:
            record = await self._fresh_snapshot(aggregate_id, stream_id)
        except StoreError:
            raise
        except Exception:  # noqa: BLE001 (logged: one broken aggregate must not stop the rest)
            logger.warning("stream %r: could not rebuild its snapshot", stream_id, exc_info=True)
            return False
        if record is None:
            logger.warning("stream %r: no snapshot rebuilt, the stream has no events", stream_id)
            return False
        await self.store.save_snapshot(record)
        self._stale_snapshots.discard(stream_id)
        return True

    async def _fresh_snapshot(self, aggregate_id: str, stream_id: str) -> SnapshotRecord | None:
        started = time.perf_counter()
        history = await self.store.read_stream(stream_id)
        if not history:
            return None
        aggregate = self.aggregate_type(id=aggregate_id)
        aggregate.replay(recorded.event for recorded in history)
        return take_snapshot(
            aggregate,
            stream_id=stream_id,
            event_id=history[-1].event_id,
            codec=self.store.codec,
            started=started,
        )


def _check_reached(
    stream_id: str, history: Sequence[RecordedEvent[Any]], at_version: int | None
) -> None:
    if at_version is not None and history[-1].version < at_version:
        raise VersionNotFoundError(stream_id, at_version, history[-1].version)
