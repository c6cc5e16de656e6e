"""
The event store contract, and the shared half of every backend.

`AsyncEventStore` is the protocol users and the `AsyncRepository` program against.
`AsyncBaseEventStore` implements it once: it validates arguments, encodes and decodes
events, tells append listeners, and leaves a backend eight storage methods that see
only records (`_records`). Backends decide appends with the pure rules of `_rules`,
inside their own transactions, so every backend decides conflicts the same way.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

import abc
import asyncio
from typing import TYPE_CHECKING, Any, Protocol, Self

from eventkit._acompat import amap, is_async, yield_to_loop
from eventkit._envelope import ANY, ExpectedVersion, StreamAppend
from eventkit._events import EventRegistry, default_registry
from eventkit._records import AppendResult, EventRecord, RecordWrite, SnapshotRecord
from eventkit._rules import check_count, check_snapshot_record, check_stream_id, check_writes
from eventkit._serialization import Codec
from eventkit._storage import AppendListeners
from eventkit._upcasting import check_upcasters
from eventkit.exceptions import ArgumentTypeError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Sequence
    from types import TracebackType

    import cattrs

    from eventkit._envelope import RecordedEvent

# stream_ids asks a backend for this many ids at a time.
_STREAM_ID_PAGE = 500
# The async store lets other tasks run after encoding or decoding this many events, so a
# large append or read never holds the event loop for long.
_ENCODE_SLICE = 500
_DECODE_SLICE = 1000


async def _nothing() -> AsyncIterator[Any]:
    # An empty iterator of the right kind: a generator that returns at once.
    return
    yield


class AsyncEventStore(Protocol):
    """
    The event store contract: every backend provides these methods.

    Program against this protocol; choose a backend (`InMemoryEventStore`, ...) at
    start-up.

    .. versionadded:: 0.1.0
    """

    @property
    def registry(self) -> EventRegistry:
        """The registry that maps this store's type names to classes."""
        ...

    @property
    def codec(self) -> Codec:
        """The codec that turns this store's events into records and back."""
        ...

    async def append(
        self,
        stream_id: str,
        events: Iterable[Any],
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        """Append *events* to one stream atomically; see `AsyncBaseEventStore.append`."""
        ...

    async def append_many(self, appends: Iterable[StreamAppend]) -> list[AppendResult]:
        """Append to several streams in one atomic step; see `AsyncBaseEventStore.append_many`."""
        ...

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent[Any]]:
        """Return events of one stream; see `AsyncBaseEventStore.read_stream`."""
        ...

    def read_all(
        self,
        *,
        after_position: int = 0,
        limit: int | None = None,
        event_types: Iterable[str | type[Any]] | None = None,
    ) -> AsyncIterator[RecordedEvent[Any]]:
        """Iterate over all events in position order; see `AsyncBaseEventStore.read_all`."""
        ...

    async def append_records(self, writes: Sequence[RecordWrite]) -> list[AppendResult]:
        """Append already-encoded records (tooling); see `AsyncBaseEventStore.append_records`."""
        ...

    async def read_stream_records(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[EventRecord]:
        """Return one stream's stored records, undecoded (tooling)."""
        ...

    def read_all_records(
        self,
        *,
        after_position: int = 0,
        limit: int | None = None,
        event_types: Iterable[str | type[Any]] | None = None,
    ) -> AsyncIterator[EventRecord]:
        """Iterate over all stored records, undecoded (tooling)."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's version: 0 when it does not exist."""
        ...

    async def head_position(self) -> int:
        """Return the highest position in the store: 0 when it is empty."""
        ...

    async def count_events(self, *, after_position: int = 0, up_to: int | None = None) -> int:
        """Count the events after a position; see `AsyncBaseEventStore.count_events`."""
        ...

    def stream_ids(self, *, prefix: str = "") -> AsyncIterator[str]:
        """Iterate over the ids of streams with events; see `AsyncBaseEventStore.stream_ids`."""
        ...

    async def save_snapshot(self, record: SnapshotRecord) -> None:
        """Store *record* as its stream's snapshot; see `AsyncBaseEventStore.save_snapshot`."""
        ...

    async def load_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        """Return the stream's snapshot, or None; see `AsyncBaseEventStore.load_snapshot`."""
        ...

    async def close(self) -> None:
        """Release the store's resources; the store cannot be used afterwards."""
        ...


class AsyncBaseEventStore(abc.ABC):
    """
    The shared half of every event store backend.

    A backend subclasses this and implements the storage methods `_append`,
    `_read_stream`, `_read_all`, `stream_version`, `head_position`, `_stream_ids`,
    `_save_snapshot` and `_load_snapshot` (plus `close` when it holds resources).
    Those methods see only records; this class validates arguments, encodes and
    decodes events, and applies upcasters.

    Args:
        registry: Where event type names are looked up; `default_registry` if omitted.
        converter: The cattrs converter for event data; `make_converter()` if omitted.

    Raises:
        RegistrationError: The registry's upcaster chains are broken
            (`check_upcasters`): a store is not built on a registry that cannot
            read some stored schema version.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        registry: EventRegistry | None = None,
        converter: cattrs.Converter | None = None,
    ) -> None:
        registry = default_registry if registry is None else registry
        # Events and upcasters register at import time, in any order: the store is the
        # first moment the registry can be taken as complete.
        check_upcasters(registry)
        self._codec = Codec(registry, converter)
        self._listeners = AppendListeners()

    @property
    def registry(self) -> EventRegistry:
        """The registry that maps this store's type names to classes."""
        return self._codec.registry

    @property
    def codec(self) -> Codec:
        """The codec that turns this store's events into records and back."""
        return self._codec

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the public API --------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Iterable[Any],
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        """
        Append *events* to the stream *stream_id*, atomically.

        Either every event is stored, at consecutive versions, or none is.

        Args:
            stream_id: The stream to append to; created by its first append.
            events: Instances of registered event classes, or `NewEvent` wrappers
                carrying an event id and metadata.
            expected_version: The stream version the caller based its decision on:
                an int (``0`` means the stream must not exist), `NO_STREAM`,
                `STREAM_EXISTS`, or `ANY` (the default) to skip the check.

        Returns:
            The new stream version and the positions written. Re-appending events
            whose ids are already stored, in the same order to the same stream, writes
            nothing and returns the original result.

        Raises:
            ConcurrencyError: The stream's version does not match *expected_version*.
            DuplicateEventIdError: An event id is already used by another event.
            UnknownEventType: An event's class is not registered.
            SerializationError: An event cannot be encoded.
        """
        results = await self.append_many([StreamAppend(stream_id, events, expected_version)])
        return results[0]

    async def append_many(self, appends: Iterable[StreamAppend]) -> list[AppendResult]:
        """
        Append to several streams in one atomic step: all are stored, or none.

        Each `StreamAppend` carries its own expected version; one mismatch fails the
        whole step.

        Returns:
            One `AppendResult` per `StreamAppend`, in order.

        Raises:
            ValueError: A stream appears twice, or an event id twice.
            ConcurrencyError, DuplicateEventIdError, UnknownEventType,
            SerializationError: As for `AsyncBaseEventStore.append`.
        """
        encode = self._codec.encode
        if is_async():
            writes = []
            for item in appends:
                records = []
                for index, event in enumerate(item.events, start=1):
                    records.append(encode(event))
                    if not index % _ENCODE_SLICE:
                        await yield_to_loop()
                writes.append(RecordWrite(item.stream_id, tuple(records), item.expected_version))
            return await self.append_records(writes)
        return await self.append_records(
            [
                RecordWrite(
                    item.stream_id,
                    tuple(encode(event) for event in item.events),
                    item.expected_version,
                )
                for item in appends
            ]
        )

    async def append_records(self, writes: Sequence[RecordWrite]) -> list[AppendResult]:
        """
        Append already-encoded records: the raw form of `append_many`, for tooling.

        Raises:
            ValueError: A stream appears twice, or an event id twice.
            ConcurrencyError, DuplicateEventIdError: As for `AsyncBaseEventStore.append`.
        """
        if is_async():
            if sum(len(write.records) for write in writes) > _ENCODE_SLICE:
                # Checking a large append takes as long as encoding many slices: off the loop.
                await asyncio.to_thread(check_writes, writes)
            else:
                check_writes(writes)
        else:
            check_writes(writes)
        results = await self._append(list(writes))
        if any(write.records for write in writes):
            self._listeners.notify()
        return results

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent[Any]]:
        """
        Return the events of one stream, in version order.

        Args:
            stream_id: The stream to read.
            from_version: The first version to return (inclusive). Defaults to 1, or to
                the newest event when reading backwards.
            to_version: The last version to return (inclusive); no bound if omitted.
                Reading backwards, the lowest version to return.
            backwards: Return newest first.
            limit: Return at most this many events.

        Returns:
            The events in the range. A stream that does not exist reads as empty.

        Raises:
            ValueError: A version or the limit is out of range.
            SerializationError: A stored event cannot be decoded.
        """
        records = await self.read_stream_records(
            stream_id,
            from_version=from_version,
            to_version=to_version,
            backwards=backwards,
            limit=limit,
        )
        decode = self._codec.decode
        if is_async():
            events = []
            for index, record in enumerate(records, start=1):
                events.append(decode(record))
                if not index % _DECODE_SLICE:
                    await yield_to_loop()
            return events
        return [decode(record) for record in records]

    async def read_stream_records(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[EventRecord]:
        """Return one stream's stored records, undecoded; arguments as for `read_stream`."""
        check_stream_id(stream_id)
        check_count("from_version", from_version, 1)
        check_count("to_version", to_version, 1)
        check_count("limit", limit, 0)
        if limit == 0:
            return []
        if backwards:
            low, high = (to_version or 1), from_version
        else:
            low, high = (from_version or 1), to_version
        if high is not None and high < low:
            return []
        return await self._read_stream(stream_id, low, high, backwards=backwards, limit=limit)

    def read_all(
        self,
        *,
        after_position: int = 0,
        limit: int | None = None,
        event_types: Iterable[str | type[Any]] | None = None,
    ) -> AsyncIterator[RecordedEvent[Any]]:
        """
        Iterate over every event in the store, in position order.

        The iterator streams: memory use does not grow with the size of the store.
        A reader never misses an event: no event that commits later can appear at a
        position the reader has already passed.

        Args:
            after_position: Start after this position (0: from the beginning).
            limit: Yield at most this many events.
            event_types: Only events of these types (names or registered classes),
                including events stored under their old names (see `eventkit.upcaster`).

        Raises:
            ValueError: *after_position* or *limit* is out of range (raised at once).
            UnknownEventType: A class in *event_types* is not registered (at once).
            SerializationError: A stored event cannot be decoded (while iterating).
        """
        records = self.read_all_records(
            after_position=after_position, limit=limit, event_types=event_types
        )
        # map() costs less per event than a generator: reads are the hot path.
        return amap(self._codec.decode, records)

    def read_all_records(
        self,
        *,
        after_position: int = 0,
        limit: int | None = None,
        event_types: Iterable[str | type[Any]] | None = None,
    ) -> AsyncIterator[EventRecord]:
        """Iterate over all stored records, undecoded; arguments as for `read_all`."""
        check_count("after_position", after_position, 0, optional=False)
        check_count("limit", limit, 0)
        names = None if event_types is None else self.registry.stored_names(event_types)
        if limit == 0 or names == frozenset():
            return _nothing()
        return self._read_all(after_position, limit, names)

    def stream_ids(self, *, prefix: str = "") -> AsyncIterator[str]:
        """
        Iterate over the ids of the streams that have events, in ascending order.

        The iterator streams, a page at a time: memory use does not grow with the
        number of streams. Streams created while it runs may or may not be included.

        Args:
            prefix: Only ids that start with this text, taken literally (no wildcards).

        Raises:
            TypeError: *prefix* is not a string (raised at once).
        """
        if not isinstance(prefix, str):
            raise ArgumentTypeError(f"prefix must be a string, got {prefix!r}")
        return self._page_stream_ids(prefix)

    async def count_events(self, *, after_position: int = 0, up_to: int | None = None) -> int:
        """
        Count the events readers see after *after_position*, up to *up_to* (inclusive).

        How far a reader at *after_position* is behind: positions may have gaps (on
        PostgreSQL they are far apart), so subtracting them does not count events.

        Args:
            after_position: Count events after this position.
            up_to: Count events up to this position; up to the head if None.

        Raises:
            ArgumentError: A position is not an integer >= 0.
        """
        check_count("after_position", after_position, 0, optional=False)
        check_count("up_to", up_to, 0)
        if up_to is not None and up_to <= after_position:
            return 0
        return await self._count_events(after_position, up_to)

    async def _count_events(self, after_position: int, up_to: int | None) -> int:
        # Correct for every backend, in time that grows with the count: backends that can
        # count in one query do.
        count = 0
        async for record in self._read_all(after_position, None, None):
            if up_to is not None and record.position > up_to:
                break
            count += 1
        return count

    async def _page_stream_ids(self, prefix: str) -> AsyncIterator[str]:
        after: str | None = None
        while True:
            page = await self._stream_ids(prefix, after, _STREAM_ID_PAGE)
            for stream_id in page:
                yield stream_id
            if len(page) < _STREAM_ID_PAGE:
                return
            after = page[-1]

    async def save_snapshot(self, record: SnapshotRecord) -> None:
        """
        Store *record* as the snapshot of its stream, replacing any earlier one.

        The last snapshot saved wins, whatever its version: the `Repository` decides
        which snapshots are worth keeping. Snapshots never change the stream's events.

        Raises:
            TypeError, ValueError: A field of *record* has the wrong type or is out of
                range; the stored snapshot is left as it was.
        """
        await self._save_snapshot(check_snapshot_record(record))

    async def load_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        """
        Return the snapshot stored for the stream *stream_id*, or None.

        The record comes back as stored: the `Repository` checks that it still fits the
        aggregate class and the stream before using it.

        Raises:
            ValueError: *stream_id* is not a non-empty string.
        """
        return await self._load_snapshot(check_stream_id(stream_id))

    def on_append(self, callback: Callable[[], None]) -> Callable[[], None]:
        """
        Call *callback* after each append through this store object commits.

        Projection runners subscribe so that they wake at once; appends made by other
        store objects or processes are seen by polling.

        Returns:
            A function that unsubscribes the callback.
        """
        return self._listeners.add(callback)

    async def close(self) -> None:  # noqa: B027 (an optional hook: stores without resources need none)
        """Release the store's resources; the store cannot be used afterwards."""

    # -- what a backend implements ------------------------------------------------------------

    @abc.abstractmethod
    async def _append(self, writes: list[RecordWrite]) -> list[AppendResult]:
        """
        Store *writes* in one atomic step.

        Arguments are validated. Inside one transaction: read each write's stream
        version (and, when some event ids may be stored already, where they are),
        call `decide_append`, store the rows it plans at new positions, and return
        `AppendPlan.results` for those positions. Raise to roll everything back.
        """

    @abc.abstractmethod
    async def _read_stream(
        self, stream_id: str, low: int, high: int | None, *, backwards: bool, limit: int | None
    ) -> list[EventRecord]:
        """
        Return the stream's records with low <= version <= high (no bound if None).

        Oldest first, or newest first when *backwards*; *limit* counts from the end the
        read starts at (the newest event when *backwards*).
        """

    @abc.abstractmethod
    def _read_all(
        self, after_position: int, limit: int | None, event_types: frozenset[str] | None
    ) -> AsyncIterator[EventRecord]:
        """Yield records after *after_position*, in position order, streaming."""

    @abc.abstractmethod
    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's version: 0 when it does not exist."""

    @abc.abstractmethod
    async def head_position(self) -> int:
        """Return the highest position in the store: 0 when it is empty."""

    @abc.abstractmethod
    async def _stream_ids(self, prefix: str, after: str | None, limit: int) -> list[str]:
        """
        Return up to *limit* ids of streams that have events, in ascending order.

        Only ids that start with *prefix* (compared literally, character by character)
        and, when *after* is given, sort after it. Order is Python's string order (by
        code point), so that pages continue where the previous one ended.
        """

    @abc.abstractmethod
    async def _save_snapshot(self, record: SnapshotRecord) -> None:
        """Store *record* (validated) as its stream's only snapshot, atomically."""

    @abc.abstractmethod
    async def _load_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        """Return the snapshot stored for *stream_id*, or None."""
