"""
The event store conformance suite.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from eventkit._acompat import ABarrier, AEvent, run_concurrently, yield_to_loop
from eventkit._envelope import ANY, NO_STREAM, STREAM_EXISTS, NewEvent, StreamAppend
from eventkit._records import AppendResult, NewRecord, RecordWrite
from eventkit.exceptions import (
    ConcurrencyError,
    DuplicateEventIdError,
    SerializationError,
    UnknownEventType,
)
from eventkit.testing._events import (
    Deposited,
    Noted,
    Tagged,
    _dep,
    _deposits,
    _everything,
    _raw,
    contract_registry,
)
from eventkit.testing._machine_async import AsyncEventStoreMachine
from eventkit.testing._stores_async import AsyncStoreFactory, _amounts, store_fixture

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from eventkit._store_async import AsyncEventStore


class AsyncEventStoreContract:
    """
    The behaviour every event store must have, as pytest tests.

    Mix into a ``Test*`` class that provides a ``make_store`` fixture (see the module
    docstring). Each test checks one guarantee of the `AsyncEventStore` protocol; a
    backend that passes them all can replace any other.

    .. versionadded:: 0.1.0
    """

    @store_fixture
    async def _contract_store(
        self, make_store: AsyncStoreFactory
    ) -> AsyncIterator[AsyncEventStore]:
        store = make_store(contract_registry)
        yield store
        await store.close()

    # -- appending and reading back ---------------------------------------------------------

    @pytest.mark.asyncio
    async def test_new_store_is_empty(self, store: AsyncEventStore) -> None:
        """A new store has no events, head position 0 and no streams."""
        assert (
            await store.head_position(),
            await store.stream_version("any"),
            [r async for r in store.read_all()],
        ) == (
            0,
            0,
            [],
        )

    @pytest.mark.asyncio
    async def test_append_then_read_stream_returns_events_in_order(
        self, store: AsyncEventStore
    ) -> None:
        """Events come back from their stream in the order they were appended."""
        await store.append("s", _deposits(1, 2, 3))
        assert await _amounts(store, "s") == [1, 2, 3]

    @pytest.mark.asyncio
    async def test_append_returns_new_version_and_positions(self, store: AsyncEventStore) -> None:
        """Append reports the stream's new version and the positions it wrote."""
        await store.append("other", _deposits(9))
        result = await store.append("s", _deposits(1, 2))
        stored = await store.read_stream("s")
        assert result == AppendResult("s", 2, tuple(r.position for r in stored))

    @pytest.mark.asyncio
    async def test_versions_continue_across_appends(self, store: AsyncEventStore) -> None:
        """A stream's versions are 1, 2, 3, ... across separate appends."""
        await store.append("s", _deposits(1))
        await store.append("s", _deposits(2, 3))
        assert [r.version for r in await store.read_stream("s")] == [1, 2, 3]

    @pytest.mark.asyncio
    async def test_positions_strictly_increase_across_streams(self, store: AsyncEventStore) -> None:
        """Global positions strictly increase in append order, whatever the stream."""
        for stream_id in ["a", "b", "a", "c", "b"]:
            await store.append(stream_id, _deposits(1, 2))
        positions = [r.position async for r in store.read_all()]
        assert positions == sorted(set(positions))
        assert len(positions) == 10

    @pytest.mark.asyncio
    async def test_head_position_is_the_last_position(self, store: AsyncEventStore) -> None:
        """head_position is the position of the newest event."""
        await store.append("a", _deposits(1))
        result = await store.append("b", _deposits(2, 3))
        assert await store.head_position() == result.positions[-1]

    @pytest.mark.asyncio
    async def test_stream_version_counts_the_streams_events(self, store: AsyncEventStore) -> None:
        """stream_version is the version of the stream's newest event."""
        await store.append("s", _deposits(1, 2, 3))
        await store.append("t", _deposits(1))
        assert (await store.stream_version("s"), await store.stream_version("t")) == (3, 1)

    @pytest.mark.asyncio
    async def test_reading_a_missing_stream_returns_nothing(self, store: AsyncEventStore) -> None:
        """A stream that was never written reads as empty, not as an error."""
        await store.append("s", _deposits(1))
        assert await store.read_stream("missing") == []

    @pytest.mark.asyncio
    async def test_recorded_event_carries_the_envelope(self, store: AsyncEventStore) -> None:
        """A read event carries its stream, version, position, id, time, metadata and type."""
        before = datetime.now(UTC)
        event_id = uuid.uuid4()
        new = NewEvent(Deposited(Decimal(5)), event_id=event_id, metadata={"correlation_id": "c"})
        result = await store.append("s", [new])
        (recorded,) = await store.read_stream("s")
        assert (
            recorded.stream_id,
            recorded.version,
            recorded.position,
            recorded.event_id,
            dict(recorded.metadata),
            recorded.event_type,
            recorded.event,
        ) == ("s", 1, result.positions[0], event_id, {"correlation_id": "c"}, *_dep(5))
        assert recorded.recorded_at.utcoffset() is not None
        assert before.timestamp() - 1 <= recorded.recorded_at.timestamp()

    @pytest.mark.asyncio
    async def test_a_given_recorded_at_is_stored_exactly(self, store: AsyncEventStore) -> None:
        """A record written with its recorded_at (a copied event) keeps it, to the microsecond."""
        given = datetime(2019, 3, 4, 5, 6, 7, 891011, tzinfo=timezone(timedelta(hours=-5)))
        record = NewRecord(uuid.uuid4(), "contract.Noted", 1, "{}", "{}", given)
        before = datetime.now(UTC)
        fresh_record = _raw("s", "x", "{}").records[0]
        await store.append_records([RecordWrite("s", (record, fresh_record), ANY)])
        copied, fresh = await store.read_stream_records("s")
        assert (copied.recorded_at, copied.recorded_at.utcoffset()) == (given, timedelta(0))
        assert before.timestamp() - 1 <= fresh.recorded_at.timestamp()

    @pytest.mark.asyncio
    async def test_a_naive_recorded_at_is_refused(self, store: AsyncEventStore) -> None:
        """A recorded_at without a timezone raises ValueError, and nothing is stored."""
        naive = datetime(2019, 3, 4)  # noqa: DTZ001 (naive on purpose)
        record = NewRecord(uuid.uuid4(), "contract.Noted", 1, "{}", "{}", naive)
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.append_records([RecordWrite("s", (record,), ANY)])
        assert await store.head_position() == 0

    @pytest.mark.asyncio
    async def test_bare_events_get_fresh_ids_and_no_metadata(self, store: AsyncEventStore) -> None:
        """Bare events are stored with distinct random ids and empty metadata."""
        await store.append("s", _deposits(1, 2))
        first, second = await store.read_stream("s")
        assert first.event_id != second.event_id
        assert (dict(first.metadata), dict(second.metadata)) == ({}, {})

    @pytest.mark.asyncio
    async def test_every_field_type_round_trips_exactly(self, store: AsyncEventStore) -> None:
        """Decimals, UUIDs, datetimes, enums, sets, tuples, big ints and nesting round-trip."""
        await store.append("s", [_everything()])
        (recorded,) = await store.read_stream("s")
        assert recorded.event == _everything()

    @pytest.mark.asyncio
    async def test_count_events_counts_what_readers_see(self, store: AsyncEventStore) -> None:
        """count_events counts the events after a position, up to another, not positions."""
        first = await store.append("a", _deposits(1, 2))
        second = await store.append("b", _deposits(3, 4, 5))
        positions = [*first.positions, *second.positions]
        assert [
            await store.count_events(),
            await store.count_events(after_position=positions[0]),
            await store.count_events(after_position=positions[1], up_to=positions[3]),
            await store.count_events(after_position=positions[4]),
            await store.count_events(after_position=positions[3], up_to=positions[2]),
        ] == [5, 4, 2, 0, 0]

    @pytest.mark.asyncio
    async def test_empty_append_writes_nothing(self, store: AsyncEventStore) -> None:
        """Appending no events stores nothing and reports the current version."""
        written = await store.append("s", _deposits(1))
        result = await store.append("s", [], expected_version=1)
        assert (result, await store.head_position()) == (
            AppendResult("s", 1, ()),
            written.positions[-1],
        )

    # -- optimistic concurrency -------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_matching_expected_version_appends(self, store: AsyncEventStore) -> None:
        """An append whose expected version is the stream's version succeeds."""
        await store.append("s", _deposits(1), expected_version=NO_STREAM)
        await store.append("s", _deposits(2), expected_version=1)
        assert await _amounts(store, "s") == [1, 2]

    @pytest.mark.asyncio
    async def test_stale_expected_version_raises_concurrency_error(
        self, store: AsyncEventStore
    ) -> None:
        """A stale expected version raises ConcurrencyError naming expected and actual."""
        await store.append("s", _deposits(1, 2))
        with pytest.raises(ConcurrencyError) as info:
            await store.append("s", _deposits(3), expected_version=1)
        assert (info.value.stream_id, info.value.expected_version, info.value.actual_version) == (
            "s",
            1,
            2,
        )

    @pytest.mark.asyncio
    async def test_expected_version_ahead_of_the_stream_raises(
        self, store: AsyncEventStore
    ) -> None:
        """An expected version beyond the stream's version is a conflict too."""
        await store.append("s", _deposits(1))
        with pytest.raises(ConcurrencyError):
            await store.append("s", _deposits(2), expected_version=5)

    @pytest.mark.asyncio
    async def test_no_stream_on_an_existing_stream_raises(self, store: AsyncEventStore) -> None:
        """NO_STREAM refuses a stream that already has events."""
        await store.append("s", _deposits(1))
        with pytest.raises(ConcurrencyError) as info:
            await store.append("s", _deposits(2), expected_version=NO_STREAM)
        assert info.value.expected_version is NO_STREAM

    @pytest.mark.asyncio
    async def test_expected_version_zero_means_no_stream(self, store: AsyncEventStore) -> None:
        """expected_version=0 accepts a new stream and refuses an existing one."""
        await store.append("s", _deposits(1), expected_version=0)
        with pytest.raises(ConcurrencyError):
            await store.append("s", _deposits(2), expected_version=0)

    @pytest.mark.asyncio
    async def test_stream_exists_on_a_missing_stream_raises(self, store: AsyncEventStore) -> None:
        """STREAM_EXISTS refuses a stream that has no events."""
        with pytest.raises(ConcurrencyError) as info:
            await store.append("s", _deposits(1), expected_version=STREAM_EXISTS)
        assert info.value.actual_version == 0

    @pytest.mark.asyncio
    async def test_stream_exists_on_an_existing_stream_appends(
        self, store: AsyncEventStore
    ) -> None:
        """STREAM_EXISTS accepts a stream that has events, whatever its version."""
        await store.append("s", _deposits(1, 2))
        await store.append("s", _deposits(3), expected_version=STREAM_EXISTS)
        assert await store.stream_version("s") == 3

    @pytest.mark.asyncio
    async def test_any_skips_the_check(self, store: AsyncEventStore) -> None:
        """ANY appends to new and existing streams alike."""
        await store.append("s", _deposits(1), expected_version=ANY)
        await store.append("s", _deposits(2), expected_version=ANY)
        assert await store.stream_version("s") == 2

    @pytest.mark.asyncio
    async def test_a_failed_append_writes_nothing(self, store: AsyncEventStore) -> None:
        """After a ConcurrencyError the store is exactly as before."""
        written = await store.append("s", _deposits(1))
        with pytest.raises(ConcurrencyError):
            await store.append("s", _deposits(2, 3), expected_version=0)
        assert (await store.head_position(), await _amounts(store, "s")) == (
            written.positions[-1],
            [1],
        )

    @pytest.mark.asyncio
    async def test_invalid_expected_version_is_refused(self, store: AsyncEventStore) -> None:
        """An expected version that is not an int >= 0 or a sentinel raises at once."""
        with pytest.raises(TypeError, match="expected_version"):
            await store.append("s", _deposits(1), expected_version="1")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="expected_version"):
            await store.append("s", _deposits(1), expected_version=-1)
        assert await store.head_position() == 0

    @pytest.mark.asyncio
    async def test_only_one_of_many_concurrent_writers_wins(self, store: AsyncEventStore) -> None:
        """Writers racing with the same expected version: exactly one succeeds."""
        writers = 8
        barrier = ABarrier(writers)
        outcomes: list[str] = []

        async def write(index: int) -> None:
            await barrier.wait()
            try:
                await store.append("contested", [Noted(str(index))], expected_version=NO_STREAM)
                outcomes.append("won")
            except ConcurrencyError:
                outcomes.append("lost")

        await run_concurrently(*(functools.partial(write, i) for i in range(writers)))
        assert sorted(outcomes) == ["lost"] * (writers - 1) + ["won"]
        assert await store.stream_version("contested") == 1

    # -- idempotency ------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_reappending_same_event_ids_is_idempotent(self, store: AsyncEventStore) -> None:
        """Appending the same events again stores nothing and returns the first result."""
        events = [NewEvent(e) for e in _deposits(1, 2)]
        first = await store.append("s", events, expected_version=NO_STREAM)
        again = await store.append("s", events, expected_version=NO_STREAM)
        assert (again, await _amounts(store, "s")) == (first, [1, 2])

    @pytest.mark.asyncio
    async def test_a_retry_after_the_stream_moved_on_is_idempotent(
        self, store: AsyncEventStore
    ) -> None:
        """A retry with its original expected version succeeds even after later appends."""
        events = [NewEvent(Deposited(Decimal(2)))]
        await store.append("s", _deposits(1))
        first = await store.append("s", events, expected_version=1)
        await store.append("s", _deposits(3))
        assert await store.append("s", events, expected_version=1) == first
        assert await _amounts(store, "s") == [1, 2, 3]

    @pytest.mark.asyncio
    async def test_same_ids_with_a_different_expected_version_conflict(
        self, store: AsyncEventStore
    ) -> None:
        """Re-appending stored events with an expected version they did not have conflicts."""
        events = [NewEvent(Deposited(Decimal(2)))]
        await store.append("s", _deposits(1))
        await store.append("s", events, expected_version=1)
        await store.append("s", _deposits(3))
        with pytest.raises(ConcurrencyError) as info:
            await store.append("s", events, expected_version=NO_STREAM)
        assert info.value.actual_version == 3

    @pytest.mark.asyncio
    async def test_an_event_id_used_in_another_stream_raises(self, store: AsyncEventStore) -> None:
        """Event ids are unique in the store: reusing one elsewhere is refused."""
        new = NewEvent(Deposited(Decimal(1)))
        await store.append("s", [new])
        with pytest.raises(DuplicateEventIdError) as info:
            await store.append("t", [new])
        assert (info.value.event_id, info.value.stream_id, info.value.existing_stream_id) == (
            new.event_id,
            "t",
            "s",
        )
        assert await store.stream_version("t") == 0

    @pytest.mark.asyncio
    async def test_a_partly_stored_batch_raises(self, store: AsyncEventStore) -> None:
        """A batch mixing stored and new ids is not a retry: it is refused, nothing stored."""
        stored = NewEvent(Deposited(Decimal(1)))
        await store.append("s", [stored])
        with pytest.raises(DuplicateEventIdError):
            await store.append("s", [stored, NewEvent(Deposited(Decimal(2)))])
        assert await _amounts(store, "s") == [1]

    @pytest.mark.asyncio
    async def test_an_event_id_twice_in_one_append_raises(self, store: AsyncEventStore) -> None:
        """One append may not carry the same event id twice."""
        event_id = uuid.uuid4()
        events = [NewEvent(Deposited(Decimal(n)), event_id=event_id) for n in (1, 2)]
        with pytest.raises(DuplicateEventIdError):
            await store.append("s", events)
        assert await store.head_position() == 0

    # -- multi-stream appends ---------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_append_many_writes_every_stream(self, store: AsyncEventStore) -> None:
        """append_many stores each stream's events and reports each stream's result."""
        await store.append("a", _deposits(1))
        results = await store.append_many(
            [
                StreamAppend("a", _deposits(2), expected_version=1),
                StreamAppend("b", _deposits(3, 4), expected_version=NO_STREAM),
            ]
        )
        assert [(r.stream_id, r.version, len(r.positions)) for r in results] == [
            ("a", 2, 1),
            ("b", 2, 2),
        ]
        assert (await _amounts(store, "a"), await _amounts(store, "b")) == ([1, 2], [3, 4])

    @pytest.mark.asyncio
    async def test_append_many_is_all_or_nothing(self, store: AsyncEventStore) -> None:
        """One stale expected version in append_many stores nothing in any stream."""
        written = await store.append("b", _deposits(1))
        with pytest.raises(ConcurrencyError) as info:
            await store.append_many(
                [
                    StreamAppend("a", _deposits(1), expected_version=NO_STREAM),
                    StreamAppend("b", _deposits(2), expected_version=NO_STREAM),
                ]
            )
        assert info.value.stream_id == "b"
        assert (await store.stream_version("a"), await store.head_position()) == (
            0,
            written.positions[-1],
        )

    @pytest.mark.asyncio
    async def test_append_many_refuses_a_stream_twice(self, store: AsyncEventStore) -> None:
        """A stream may appear only once in one append_many."""
        with pytest.raises(ValueError, match="twice"):
            await store.append_many(
                [StreamAppend("a", _deposits(1)), StreamAppend("a", _deposits(2))]
            )
        assert await store.head_position() == 0

    # -- read_stream ranges -----------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_read_stream_range_is_inclusive(self, store: AsyncEventStore) -> None:
        """from_version and to_version are both inclusive."""
        await store.append("s", _deposits(1, 2, 3, 4, 5))
        assert await _amounts(store, "s", from_version=2, to_version=4) == [2, 3, 4]

    @pytest.mark.asyncio
    async def test_read_stream_backwards_starts_at_the_newest(self, store: AsyncEventStore) -> None:
        """Backwards without from_version starts at the newest event."""
        await store.append("s", _deposits(1, 2, 3))
        assert await _amounts(store, "s", backwards=True) == [3, 2, 1]

    @pytest.mark.asyncio
    async def test_read_stream_backwards_between_versions(self, store: AsyncEventStore) -> None:
        """Backwards reads from from_version down to to_version, both inclusive."""
        await store.append("s", _deposits(1, 2, 3, 4, 5))
        assert await _amounts(store, "s", from_version=4, to_version=2, backwards=True) == [4, 3, 2]

    @pytest.mark.asyncio
    async def test_read_stream_limit(self, store: AsyncEventStore) -> None:
        """Limit caps the number of events, counted from the starting end."""
        await store.append("s", _deposits(1, 2, 3, 4))
        assert await _amounts(store, "s", limit=2) == [1, 2]
        assert await _amounts(store, "s", limit=2, backwards=True) == [4, 3]
        assert await _amounts(store, "s", limit=0) == []

    @pytest.mark.asyncio
    async def test_read_stream_past_the_end_is_empty(self, store: AsyncEventStore) -> None:
        """A range that starts after the newest event is empty."""
        await store.append("s", _deposits(1, 2))
        assert await _amounts(store, "s", from_version=3) == []

    @pytest.mark.asyncio
    async def test_read_stream_refuses_bad_ranges(self, store: AsyncEventStore) -> None:
        """Versions below 1 and negative limits raise ValueError naming the argument."""
        with pytest.raises(ValueError, match="from_version"):
            await store.read_stream("s", from_version=0)
        with pytest.raises(ValueError, match="limit"):
            await store.read_stream("s", limit=-1)
        with pytest.raises(ValueError, match="stream_id"):
            await store.read_stream("")

    # -- read_all ---------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_read_all_after_position_and_limit(self, store: AsyncEventStore) -> None:
        """read_all starts after after_position and yields at most limit events."""
        result = await store.append("s", _deposits(1, 2, 3, 4, 5))
        positions = result.positions
        selected = store.read_all(after_position=positions[1], limit=2)
        assert [r.position async for r in selected] == list(positions[2:4])

    @pytest.mark.asyncio
    async def test_read_all_filters_by_event_type(self, store: AsyncEventStore) -> None:
        """event_types keeps only the named types; classes and names both work."""
        await store.append("s", [Deposited(Decimal(1)), Noted("x"), Deposited(Decimal(2))])
        by_name = [r.event async for r in store.read_all(event_types=["contract.Noted"])]
        by_class = [r.event async for r in store.read_all(event_types=[Deposited], limit=1)]
        assert (by_name, by_class) == ([Noted("x")], [Deposited(Decimal(1))])
        assert [r async for r in store.read_all(event_types=[])] == []

    @pytest.mark.asyncio
    async def test_read_all_crosses_page_boundaries(self, store: AsyncEventStore) -> None:
        """A long log is read completely and in order, across the backend's pages."""
        for start in range(0, 2500, 500):
            await store.append(f"s{start}", _deposits(*range(start, start + 500)))
        amounts = [r.event.amount async for r in store.read_all()]
        assert amounts == list(range(2500))

    @pytest.mark.asyncio
    async def test_read_all_is_a_lazy_iterator(self, store: AsyncEventStore) -> None:
        """read_all returns an iterator that can be consumed a little at a time."""
        await store.append("s", _deposits(1, 2, 3))
        iterator = store.read_all()
        first = await anext(iterator)
        assert first.event == Deposited(Decimal(1))
        assert [r.event.amount async for r in iterator] == [2, 3]

    @pytest.mark.asyncio
    async def test_read_all_refuses_bad_arguments_at_once(self, store: AsyncEventStore) -> None:
        """Bad arguments raise when read_all is called, not on the first anext()."""
        with pytest.raises(ValueError, match="after_position"):
            store.read_all(after_position=-1)
        with pytest.raises(UnknownEventType):
            store.read_all(event_types=[int])

    @pytest.mark.asyncio
    async def test_read_all_never_skips_a_late_commit(self, store: AsyncEventStore) -> None:
        """A reader tailing read_all while writers race sees every event, none skipped."""
        writers, appends = 4, 30
        stop = AEvent()
        seen: list[int] = []

        async def tail() -> None:
            after = 0
            while True:
                finished = stop.is_set()
                async for recorded in store.read_all(after_position=after):
                    seen.append(recorded.position)
                    after = recorded.position
                if finished:
                    return
                await yield_to_loop()

        async def write(index: int) -> None:
            for n in range(appends):
                await store.append(f"writer-{index}", [Noted(str(n)), Noted(str(n))])
                await yield_to_loop()

        async def write_all() -> None:
            await run_concurrently(*(functools.partial(write, i) for i in range(writers)))
            stop.set()

        await run_concurrently(tail, write_all)
        everything = [r.position async for r in store.read_all()]
        assert len(everything) == writers * appends * 2
        assert seen == everything

    # -- bad input --------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_appending_an_unregistered_class_raises(self, store: AsyncEventStore) -> None:
        """An event whose class is not registered raises UnknownEventType naming the class."""

        @attrs.frozen
        class Stray:
            x: int

        with pytest.raises(UnknownEventType, match="Stray"):
            await store.append("s", [Deposited(Decimal(1)), Stray(1)])
        assert await store.head_position() == 0

    @pytest.mark.asyncio
    async def test_a_single_event_not_in_a_list_is_refused(self, store: AsyncEventStore) -> None:
        """Passing one event instead of a list raises TypeError saying so."""
        with pytest.raises(TypeError, match="list"):
            await store.append("s", Deposited(Decimal(1)))  # type: ignore[arg-type]

    @pytest.mark.asyncio
    async def test_an_unknown_stored_type_raises_naming_the_event(
        self, store: AsyncEventStore
    ) -> None:
        """A stored type name that no class claims raises UnknownEventType with its place."""
        await store.append_records([_raw("s", "contract.Vanished", "{}")])
        with pytest.raises(UnknownEventType) as info:
            await store.read_stream("s")
        assert (info.value.event_type, info.value.stream_id, info.value.version) == (
            "contract.Vanished",
            "s",
            1,
        )

    @pytest.mark.asyncio
    async def test_malformed_stored_json_raises_serialization_error(
        self, store: AsyncEventStore
    ) -> None:
        """Stored data that is not JSON raises SerializationError; other events still read."""
        await store.append("good", _deposits(1))
        await store.append_records([_raw("bad", "contract.Deposited", "{not json")])
        with pytest.raises(SerializationError) as info:
            await store.read_stream("bad")
        assert (info.value.stream_id, info.value.version, info.value.event_type) == (
            "bad",
            1,
            "contract.Deposited",
        )
        assert await _amounts(store, "good") == [1]

    @pytest.mark.asyncio
    async def test_stored_data_of_the_wrong_shape_names_the_field(
        self, store: AsyncEventStore
    ) -> None:
        """Data that does not fit the class raises SerializationError naming the field."""
        await store.append_records([_raw("bad", "contract.Deposited", '{"amount": "lots"}')])
        with pytest.raises(SerializationError, match=r"\$\.amount"):
            await store.read_stream("bad")

    @pytest.mark.asyncio
    async def test_raw_records_expose_the_stored_form(self, store: AsyncEventStore) -> None:
        """read_all_records returns undecoded records: type name, schema version, JSON."""
        await store.append("s", _deposits(7))
        (record,) = [r async for r in store.read_all_records()]
        assert (record.stream_id, record.event_type, record.schema_version, record.data) == (
            "s",
            "contract.Deposited",
            1,
            '{"amount":"7"}',
        )

    @pytest.mark.asyncio
    async def test_an_old_schema_version_is_kept_and_read_upcast(
        self, store: AsyncEventStore
    ) -> None:
        """A record stored at schema version 1 stays at 1 and reads through its upcaster."""
        await store.append_records(
            [_raw("s", "contract.Tagged", '{"text":"old"}', schema_version=1)]
        )
        await store.append("s", [Tagged("new", "v2")])
        assert [record.schema_version async for record in store.read_all_records()] == [1, 2]
        assert [recorded.event for recorded in await store.read_stream("s")] == [
            Tagged("old", "v1"),
            Tagged("new", "v2"),
        ]

    @pytest.mark.asyncio
    async def test_close_is_idempotent(self, store: AsyncEventStore) -> None:
        """Closing a store twice is harmless."""
        await store.close()
        await store.close()

    # -- properties -------------------------------------------------------------------------

    def test_random_operations_agree_with_a_model(self, make_store: AsyncStoreFactory) -> None:
        """Random appends and reads never disagree with a plain-Python model of a store."""
        run_state_machine_as_test(
            AsyncEventStoreMachine.for_store(make_store),
            settings=settings(deadline=None, suppress_health_check=[HealthCheck.too_slow]),
        )
