"""
Test helpers: the event store conformance suite and aggregate scenarios.

This module needs pytest and hypothesis (``pip install eventkit[test]``); eventkit
itself never imports it.

To check a backend, mix `EventStoreContract` into a test class and give it a
``make_store`` fixture: a callable that takes an `EventRegistry` and returns a new,
empty store using it. The suite closes every store it makes.

.. code-block:: python

    from eventkit.testing import EventStoreContract

    class TestMyEventStore(EventStoreContract):
        @pytest.fixture(name="make_store")
        def _make_store(self, tmp_path):
            counter = itertools.count()
            return lambda registry: MyEventStore(tmp_path / f"{next(counter)}.db",
                                                 registry=registry)

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import enum
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from eventkit._envelope import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion, NewEvent
from eventkit._events import EventRegistry, event
from eventkit._serialization import NewRecord
from eventkit._store import AppendResult, EventStore, RecordWrite, StreamAppend
from eventkit.exceptions import (
    ConcurrencyError,
    DuplicateEventIdError,
    SerializationError,
    UnknownEventType,
)

if TYPE_CHECKING:
    from eventkit._aggregate import Aggregate

__all__ = [
    "AggregateScenario",
    "EventStoreContract",
    "EventStoreMachine",
    "StoreFactory",
    "contract_registry",
    "given",
]

StoreFactory = Callable[[EventRegistry], EventStore]
"""Makes a new, empty store that uses the given registry."""

contract_registry = EventRegistry()
"""The registry of the events the conformance suite appends."""


@event("contract.Deposited", registry=contract_registry)
@attrs.frozen
class Deposited:
    """A contract event with one exact decimal."""

    amount: Decimal


@event("contract.Noted", registry=contract_registry)
@attrs.frozen
class Noted:
    """A contract event with text, to tell event types apart."""

    text: str


class Tier(enum.Enum):
    """An enum, to check that enum values round-trip."""

    GOLD = "gold"
    SILVER = "silver"


@attrs.frozen
class Address:
    """A nested attrs class."""

    street: str
    since: date


@event("contract.Everything", registry=contract_registry)
@attrs.frozen
class Everything:
    """A contract event with every kind of field the serializer must round-trip."""

    amount: Decimal
    reference: uuid.UUID
    at: datetime
    tier: Tier
    tags: frozenset[str]
    pair: tuple[int, int]
    address: Address
    nickname: str | None = None


def _everything() -> Everything:
    return Everything(
        amount=Decimal("12345678901234567890.000000000000000000001"),
        reference=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        tier=Tier.GOLD,
        tags=frozenset({"a", "ü", "😀"}),
        pair=(-(2**63), 2**63),
        address=Address("Rue du Nord 1", date(1999, 12, 31)),
    )


def _amounts(store: EventStore, stream_id: str, **kwargs: Any) -> list[int]:
    return [int(recorded.event.amount) for recorded in store.read_stream(stream_id, **kwargs)]


def _deposits(*amounts: int) -> list[Deposited]:
    return [Deposited(Decimal(amount)) for amount in amounts]


def _raw(stream_id: str, event_type: str, data: str, schema_version: int = 1) -> RecordWrite:
    record = NewRecord(uuid.uuid4(), event_type, schema_version, data, "{}")
    return RecordWrite(stream_id, (record,), ANY)


class EventStoreContract:
    """
    The behaviour every event store must have, as pytest tests.

    Mix into a ``Test*`` class that provides a ``make_store`` fixture (see the module
    docstring). Each test checks one guarantee of the `EventStore` protocol; a backend
    that passes them all can replace any other.

    .. versionadded:: 0.1.0
    """

    @pytest.fixture(name="store")
    def _contract_store(self, make_store: StoreFactory) -> Iterator[EventStore]:
        store = make_store(contract_registry)
        yield store
        store.close()

    # -- appending and reading back ---------------------------------------------------------

    def test_new_store_is_empty(self, store: EventStore) -> None:
        """A new store has no events, head position 0 and no streams."""
        assert (store.head_position(), store.stream_version("any"), list(store.read_all())) == (
            0,
            0,
            [],
        )

    def test_append_then_read_stream_returns_events_in_order(self, store: EventStore) -> None:
        """Events come back from their stream in the order they were appended."""
        store.append("s", _deposits(1, 2, 3))
        assert _amounts(store, "s") == [1, 2, 3]

    def test_append_returns_new_version_and_positions(self, store: EventStore) -> None:
        """Append reports the stream's new version and the positions it wrote."""
        store.append("other", _deposits(9))
        result = store.append("s", _deposits(1, 2))
        stored = store.read_stream("s")
        assert result == AppendResult("s", 2, tuple(r.position for r in stored))

    def test_versions_continue_across_appends(self, store: EventStore) -> None:
        """A stream's versions are 1, 2, 3, ... across separate appends."""
        store.append("s", _deposits(1))
        store.append("s", _deposits(2, 3))
        assert [r.version for r in store.read_stream("s")] == [1, 2, 3]

    def test_positions_strictly_increase_across_streams(self, store: EventStore) -> None:
        """Global positions strictly increase in append order, whatever the stream."""
        for stream_id in ["a", "b", "a", "c", "b"]:
            store.append(stream_id, _deposits(1, 2))
        positions = [r.position for r in store.read_all()]
        assert positions == sorted(set(positions))
        assert len(positions) == 10

    def test_head_position_is_the_last_position(self, store: EventStore) -> None:
        """head_position is the position of the newest event."""
        store.append("a", _deposits(1))
        result = store.append("b", _deposits(2, 3))
        assert store.head_position() == result.positions[-1]

    def test_stream_version_counts_the_streams_events(self, store: EventStore) -> None:
        """stream_version is the version of the stream's newest event."""
        store.append("s", _deposits(1, 2, 3))
        store.append("t", _deposits(1))
        assert (store.stream_version("s"), store.stream_version("t")) == (3, 1)

    def test_reading_a_missing_stream_returns_nothing(self, store: EventStore) -> None:
        """A stream that was never written reads as empty, not as an error."""
        store.append("s", _deposits(1))
        assert store.read_stream("missing") == []

    def test_recorded_event_carries_the_envelope(self, store: EventStore) -> None:
        """A read event carries its stream, version, position, id, time, metadata and type."""
        before = datetime.now(UTC)
        event_id = uuid.uuid4()
        new = NewEvent(Deposited(Decimal(5)), event_id=event_id, metadata={"correlation_id": "c"})
        result = store.append("s", [new])
        (recorded,) = store.read_stream("s")
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

    def test_bare_events_get_fresh_ids_and_no_metadata(self, store: EventStore) -> None:
        """Bare events are stored with distinct random ids and empty metadata."""
        store.append("s", _deposits(1, 2))
        first, second = store.read_stream("s")
        assert first.event_id != second.event_id
        assert (dict(first.metadata), dict(second.metadata)) == ({}, {})

    def test_every_field_type_round_trips_exactly(self, store: EventStore) -> None:
        """Decimals, UUIDs, datetimes, enums, sets, tuples, big ints and nesting round-trip."""
        store.append("s", [_everything()])
        assert store.read_stream("s")[0].event == _everything()

    def test_empty_append_writes_nothing(self, store: EventStore) -> None:
        """Appending no events stores nothing and reports the current version."""
        store.append("s", _deposits(1))
        result = store.append("s", [], expected_version=1)
        assert (result, store.head_position()) == (AppendResult("s", 1, ()), 1)

    # -- optimistic concurrency -------------------------------------------------------------

    def test_matching_expected_version_appends(self, store: EventStore) -> None:
        """An append whose expected version is the stream's version succeeds."""
        store.append("s", _deposits(1), expected_version=NO_STREAM)
        store.append("s", _deposits(2), expected_version=1)
        assert _amounts(store, "s") == [1, 2]

    def test_stale_expected_version_raises_concurrency_error(self, store: EventStore) -> None:
        """A stale expected version raises ConcurrencyError naming expected and actual."""
        store.append("s", _deposits(1, 2))
        with pytest.raises(ConcurrencyError) as info:
            store.append("s", _deposits(3), expected_version=1)
        assert (info.value.stream_id, info.value.expected_version, info.value.actual_version) == (
            "s",
            1,
            2,
        )

    def test_expected_version_ahead_of_the_stream_raises(self, store: EventStore) -> None:
        """An expected version beyond the stream's version is a conflict too."""
        store.append("s", _deposits(1))
        with pytest.raises(ConcurrencyError):
            store.append("s", _deposits(2), expected_version=5)

    def test_no_stream_on_an_existing_stream_raises(self, store: EventStore) -> None:
        """NO_STREAM refuses a stream that already has events."""
        store.append("s", _deposits(1))
        with pytest.raises(ConcurrencyError) as info:
            store.append("s", _deposits(2), expected_version=NO_STREAM)
        assert info.value.expected_version is NO_STREAM

    def test_expected_version_zero_means_no_stream(self, store: EventStore) -> None:
        """expected_version=0 accepts a new stream and refuses an existing one."""
        store.append("s", _deposits(1), expected_version=0)
        with pytest.raises(ConcurrencyError):
            store.append("s", _deposits(2), expected_version=0)

    def test_stream_exists_on_a_missing_stream_raises(self, store: EventStore) -> None:
        """STREAM_EXISTS refuses a stream that has no events."""
        with pytest.raises(ConcurrencyError) as info:
            store.append("s", _deposits(1), expected_version=STREAM_EXISTS)
        assert info.value.actual_version == 0

    def test_stream_exists_on_an_existing_stream_appends(self, store: EventStore) -> None:
        """STREAM_EXISTS accepts a stream that has events, whatever its version."""
        store.append("s", _deposits(1, 2))
        store.append("s", _deposits(3), expected_version=STREAM_EXISTS)
        assert store.stream_version("s") == 3

    def test_any_skips_the_check(self, store: EventStore) -> None:
        """ANY appends to new and existing streams alike."""
        store.append("s", _deposits(1), expected_version=ANY)
        store.append("s", _deposits(2), expected_version=ANY)
        assert store.stream_version("s") == 2

    def test_a_failed_append_writes_nothing(self, store: EventStore) -> None:
        """After a ConcurrencyError the store is exactly as before."""
        store.append("s", _deposits(1))
        with pytest.raises(ConcurrencyError):
            store.append("s", _deposits(2, 3), expected_version=0)
        assert (store.head_position(), _amounts(store, "s")) == (1, [1])

    def test_invalid_expected_version_is_refused(self, store: EventStore) -> None:
        """An expected version that is not an int >= 0 or a sentinel raises at once."""
        with pytest.raises(TypeError, match="expected_version"):
            store.append("s", _deposits(1), expected_version="1")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="expected_version"):
            store.append("s", _deposits(1), expected_version=-1)
        assert store.head_position() == 0

    def test_only_one_of_many_concurrent_writers_wins(self, store: EventStore) -> None:
        """Writers racing with the same expected version: exactly one succeeds."""
        writers = 8
        barrier = threading.Barrier(writers)
        outcomes: list[str] = []

        def write(index: int) -> None:
            barrier.wait()
            try:
                store.append("contested", [Noted(str(index))], expected_version=NO_STREAM)
                outcomes.append("won")
            except ConcurrencyError:
                outcomes.append("lost")

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["lost"] * (writers - 1) + ["won"]
        assert store.stream_version("contested") == 1

    # -- idempotency ------------------------------------------------------------------------

    def test_reappending_same_event_ids_is_idempotent(self, store: EventStore) -> None:
        """Appending the same events again stores nothing and returns the first result."""
        events = [NewEvent(e) for e in _deposits(1, 2)]
        first = store.append("s", events, expected_version=NO_STREAM)
        again = store.append("s", events, expected_version=NO_STREAM)
        assert (again, _amounts(store, "s")) == (first, [1, 2])

    def test_a_retry_after_the_stream_moved_on_is_idempotent(self, store: EventStore) -> None:
        """A retry with its original expected version succeeds even after later appends."""
        events = [NewEvent(Deposited(Decimal(2)))]
        store.append("s", _deposits(1))
        first = store.append("s", events, expected_version=1)
        store.append("s", _deposits(3))
        assert store.append("s", events, expected_version=1) == first
        assert _amounts(store, "s") == [1, 2, 3]

    def test_same_ids_with_a_different_expected_version_conflict(self, store: EventStore) -> None:
        """Re-appending stored events with an expected version they did not have conflicts."""
        events = [NewEvent(Deposited(Decimal(2)))]
        store.append("s", _deposits(1))
        store.append("s", events, expected_version=1)
        with pytest.raises(ConcurrencyError):
            store.append("s", events, expected_version=NO_STREAM)

    def test_an_event_id_used_in_another_stream_raises(self, store: EventStore) -> None:
        """Event ids are unique in the store: reusing one elsewhere is refused."""
        new = NewEvent(Deposited(Decimal(1)))
        store.append("s", [new])
        with pytest.raises(DuplicateEventIdError) as info:
            store.append("t", [new])
        assert (info.value.event_id, info.value.stream_id, info.value.existing_stream_id) == (
            new.event_id,
            "t",
            "s",
        )
        assert store.stream_version("t") == 0

    def test_a_partly_stored_batch_raises(self, store: EventStore) -> None:
        """A batch mixing stored and new ids is not a retry: it is refused, nothing stored."""
        stored = NewEvent(Deposited(Decimal(1)))
        store.append("s", [stored])
        with pytest.raises(DuplicateEventIdError):
            store.append("s", [stored, NewEvent(Deposited(Decimal(2)))])
        assert _amounts(store, "s") == [1]

    def test_an_event_id_twice_in_one_append_raises(self, store: EventStore) -> None:
        """One append may not carry the same event id twice."""
        event_id = uuid.uuid4()
        events = [NewEvent(Deposited(Decimal(n)), event_id=event_id) for n in (1, 2)]
        with pytest.raises(DuplicateEventIdError):
            store.append("s", events)
        assert store.head_position() == 0

    # -- multi-stream appends ---------------------------------------------------------------

    def test_append_many_writes_every_stream(self, store: EventStore) -> None:
        """append_many stores each stream's events and reports each stream's result."""
        store.append("a", _deposits(1))
        results = store.append_many(
            [
                StreamAppend("a", _deposits(2), expected_version=1),
                StreamAppend("b", _deposits(3, 4), expected_version=NO_STREAM),
            ]
        )
        assert [(r.stream_id, r.version, len(r.positions)) for r in results] == [
            ("a", 2, 1),
            ("b", 2, 2),
        ]
        assert (_amounts(store, "a"), _amounts(store, "b")) == ([1, 2], [3, 4])

    def test_append_many_is_all_or_nothing(self, store: EventStore) -> None:
        """One stale expected version in append_many stores nothing in any stream."""
        store.append("b", _deposits(1))
        with pytest.raises(ConcurrencyError) as info:
            store.append_many(
                [
                    StreamAppend("a", _deposits(1), expected_version=NO_STREAM),
                    StreamAppend("b", _deposits(2), expected_version=NO_STREAM),
                ]
            )
        assert info.value.stream_id == "b"
        assert (store.stream_version("a"), store.head_position()) == (0, 1)

    def test_append_many_refuses_a_stream_twice(self, store: EventStore) -> None:
        """A stream may appear only once in one append_many."""
        with pytest.raises(ValueError, match="twice"):
            store.append_many([StreamAppend("a", _deposits(1)), StreamAppend("a", _deposits(2))])
        assert store.head_position() == 0

    # -- read_stream ranges -----------------------------------------------------------------

    def test_read_stream_range_is_inclusive(self, store: EventStore) -> None:
        """from_version and to_version are both inclusive."""
        store.append("s", _deposits(1, 2, 3, 4, 5))
        assert _amounts(store, "s", from_version=2, to_version=4) == [2, 3, 4]

    def test_read_stream_backwards_starts_at_the_newest(self, store: EventStore) -> None:
        """Backwards without from_version starts at the newest event."""
        store.append("s", _deposits(1, 2, 3))
        assert _amounts(store, "s", backwards=True) == [3, 2, 1]

    def test_read_stream_backwards_between_versions(self, store: EventStore) -> None:
        """Backwards reads from from_version down to to_version, both inclusive."""
        store.append("s", _deposits(1, 2, 3, 4, 5))
        assert _amounts(store, "s", from_version=4, to_version=2, backwards=True) == [4, 3, 2]

    def test_read_stream_limit(self, store: EventStore) -> None:
        """Limit caps the number of events, counted from the starting end."""
        store.append("s", _deposits(1, 2, 3, 4))
        assert _amounts(store, "s", limit=2) == [1, 2]
        assert _amounts(store, "s", limit=2, backwards=True) == [4, 3]
        assert _amounts(store, "s", limit=0) == []

    def test_read_stream_past_the_end_is_empty(self, store: EventStore) -> None:
        """A range that starts after the newest event is empty."""
        store.append("s", _deposits(1, 2))
        assert _amounts(store, "s", from_version=3) == []

    def test_read_stream_refuses_bad_ranges(self, store: EventStore) -> None:
        """Versions below 1 and negative limits raise ValueError naming the argument."""
        with pytest.raises(ValueError, match="from_version"):
            store.read_stream("s", from_version=0)
        with pytest.raises(ValueError, match="limit"):
            store.read_stream("s", limit=-1)
        with pytest.raises(ValueError, match="stream_id"):
            store.read_stream("")

    # -- read_all ---------------------------------------------------------------------------

    def test_read_all_after_position_and_limit(self, store: EventStore) -> None:
        """read_all starts after after_position and yields at most limit events."""
        positions = store.append("s", _deposits(1, 2, 3, 4, 5)).positions
        selected = store.read_all(after_position=positions[1], limit=2)
        assert [r.position for r in selected] == list(positions[2:4])

    def test_read_all_filters_by_event_type(self, store: EventStore) -> None:
        """event_types keeps only the named types; classes and names both work."""
        store.append("s", [Deposited(Decimal(1)), Noted("x"), Deposited(Decimal(2))])
        by_name = [r.event for r in store.read_all(event_types=["contract.Noted"])]
        by_class = [r.event for r in store.read_all(event_types=[Deposited], limit=1)]
        assert (by_name, by_class) == ([Noted("x")], [Deposited(Decimal(1))])
        assert list(store.read_all(event_types=[])) == []

    def test_read_all_crosses_page_boundaries(self, store: EventStore) -> None:
        """A long log is read completely and in order, across the backend's pages."""
        for start in range(0, 2500, 500):
            store.append(f"s{start}", _deposits(*range(start, start + 500)))
        amounts = [r.event.amount for r in store.read_all()]
        assert amounts == list(range(2500))

    def test_read_all_is_a_lazy_iterator(self, store: EventStore) -> None:
        """read_all returns an iterator that can be consumed a little at a time."""
        store.append("s", _deposits(1, 2, 3))
        iterator = store.read_all()
        assert next(iterator).event == Deposited(Decimal(1))
        assert [r.event.amount for r in iterator] == [2, 3]

    def test_read_all_refuses_bad_arguments_at_once(self, store: EventStore) -> None:
        """Bad arguments raise when read_all is called, not on the first next()."""
        with pytest.raises(ValueError, match="after_position"):
            store.read_all(after_position=-1)
        with pytest.raises(UnknownEventType):
            store.read_all(event_types=[int])

    def test_read_all_never_skips_a_late_commit(self, store: EventStore) -> None:
        """A reader tailing read_all while writers race sees every event, none skipped."""
        writers, appends = 4, 30
        stop = threading.Event()
        seen: list[int] = []

        def tail() -> None:
            after = 0
            while True:
                finished = stop.is_set()
                for recorded in store.read_all(after_position=after):
                    seen.append(recorded.position)
                    after = recorded.position
                if finished:
                    return

        def write(index: int) -> None:
            for n in range(appends):
                store.append(f"writer-{index}", [Noted(str(n)), Noted(str(n))])

        reader = threading.Thread(target=tail)
        reader.start()
        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stop.set()
        reader.join()
        everything = [r.position for r in store.read_all()]
        assert len(everything) == writers * appends * 2
        assert seen == everything

    # -- bad input --------------------------------------------------------------------------

    def test_appending_an_unregistered_class_raises(self, store: EventStore) -> None:
        """An event whose class is not registered raises UnknownEventType naming the class."""

        @attrs.frozen
        class Stray:
            x: int

        with pytest.raises(UnknownEventType, match="Stray"):
            store.append("s", [Deposited(Decimal(1)), Stray(1)])
        assert store.head_position() == 0

    def test_a_single_event_not_in_a_list_is_refused(self, store: EventStore) -> None:
        """Passing one event instead of a list raises TypeError saying so."""
        with pytest.raises(TypeError, match="list"):
            store.append("s", Deposited(Decimal(1)))  # type: ignore[arg-type]

    def test_an_unknown_stored_type_raises_naming_the_event(self, store: EventStore) -> None:
        """A stored type name that no class claims raises UnknownEventType with its place."""
        store.append_records([_raw("s", "contract.Vanished", "{}")])
        with pytest.raises(UnknownEventType) as info:
            store.read_stream("s")
        assert (info.value.event_type, info.value.stream_id, info.value.version) == (
            "contract.Vanished",
            "s",
            1,
        )

    def test_malformed_stored_json_raises_serialization_error(self, store: EventStore) -> None:
        """Stored data that is not JSON raises SerializationError; other events still read."""
        store.append("good", _deposits(1))
        store.append_records([_raw("bad", "contract.Deposited", "{not json")])
        with pytest.raises(SerializationError) as info:
            store.read_stream("bad")
        assert (info.value.stream_id, info.value.version, info.value.event_type) == (
            "bad",
            1,
            "contract.Deposited",
        )
        assert _amounts(store, "good") == [1]

    def test_stored_data_of_the_wrong_shape_names_the_field(self, store: EventStore) -> None:
        """Data that does not fit the class raises SerializationError naming the field."""
        store.append_records([_raw("bad", "contract.Deposited", '{"amount": "lots"}')])
        with pytest.raises(SerializationError, match=r"\$\.amount"):
            store.read_stream("bad")

    def test_raw_records_expose_the_stored_form(self, store: EventStore) -> None:
        """read_all_records returns undecoded records: type name, schema version, JSON."""
        store.append("s", _deposits(7))
        (record,) = store.read_all_records()
        assert (record.stream_id, record.event_type, record.schema_version, record.data) == (
            "s",
            "contract.Deposited",
            1,
            '{"amount":"7"}',
        )

    def test_close_is_idempotent(self, store: EventStore) -> None:
        """Closing a store twice is harmless."""
        store.close()
        store.close()

    # -- properties -------------------------------------------------------------------------

    def test_random_operations_agree_with_a_model(self, make_store: StoreFactory) -> None:
        """Random appends and reads never disagree with a plain-Python model of a store."""
        run_state_machine_as_test(
            EventStoreMachine.for_store(make_store),
            settings=settings(deadline=None, suppress_health_check=[HealthCheck.too_slow]),
        )


def _dep(amount: int) -> tuple[str, Deposited]:
    return "contract.Deposited", Deposited(Decimal(amount))


# -- the stateful test --------------------------------------------------------------------

_STREAMS = ("a", "b", "c")
_EXPECTATIONS = ("exact", "stale", "ahead", "any", "no_stream", "stream_exists")
_events = st.lists(
    st.one_of(
        st.integers(-(10**6), 10**6).map(lambda n: Deposited(Decimal(n) / 100)),
        st.text(max_size=8).map(Noted),
    ),
    max_size=4,
)


@attrs.frozen
class _ModelEvent:
    stream_id: str
    version: int
    position: int
    event_id: uuid.UUID
    event: Any


class EventStoreMachine(RuleBasedStateMachine):
    """
    A hypothesis state machine that checks a store against a plain-Python model.

    It appends random batches with every kind of expected version, retries earlier
    appends, and reads streams and the global log with random ranges, comparing each
    answer with a model made of lists (not another store). Use `for_store`:

    .. code-block:: python

        TestMyStoreMachine = EventStoreMachine.for_store(make_my_store).TestCase

    .. versionadded:: 0.1.0
    """

    make_store: ClassVar[StoreFactory]

    def __init__(self) -> None:
        super().__init__()
        self.store = type(self).make_store(contract_registry)
        self.streams: dict[str, list[_ModelEvent]] = {name: [] for name in _STREAMS}
        self.log: list[_ModelEvent] = []
        self.last_append: tuple[str, list[NewEvent], ExpectedVersion, AppendResult] | None = None

    @classmethod
    def for_store(cls, make_store: StoreFactory) -> type[EventStoreMachine]:
        """Return a subclass of this machine that tests stores made by *make_store*."""
        return type(f"{cls.__name__}ForStore", (cls,), {"make_store": staticmethod(make_store)})

    def teardown(self) -> None:
        """Close the store under test."""
        self.store.close()

    @rule(
        stream_id=st.sampled_from(_STREAMS),
        events=_events,
        expectation=st.sampled_from(_EXPECTATIONS),
    )
    def append(self, stream_id: str, events: list[Any], expectation: str) -> None:
        """Append a batch with some expected version; it must succeed exactly when valid."""
        actual = len(self.streams[stream_id])
        expected, valid = self._expectation(expectation, actual)
        batch = [NewEvent(e) for e in events]
        if not valid:
            with pytest.raises(ConcurrencyError) as info:
                self.store.append(stream_id, batch, expected_version=expected)
            assert info.value.actual_version == actual
            return
        result = self.store.append(stream_id, batch, expected_version=expected)
        assert result.version == actual + len(batch)
        assert len(result.positions) == len(batch)
        last = self.log[-1].position if self.log else 0
        assert all(a < b for a, b in itertools.pairwise((last, *result.positions)))
        for offset, (new, position) in enumerate(zip(batch, result.positions, strict=True)):
            stored = _ModelEvent(stream_id, actual + offset + 1, position, new.event_id, new.event)
            self.streams[stream_id].append(stored)
            self.log.append(stored)
        if batch:
            self.last_append = (stream_id, batch, expected, result)

    @staticmethod
    def _expectation(kind: str, actual: int) -> tuple[ExpectedVersion, bool]:
        choices: dict[str, tuple[ExpectedVersion, bool]] = {
            "exact": (actual, True),
            "stale": (actual - 1, False) if actual > 0 else (NO_STREAM, True),
            "ahead": (actual + 1, False),
            "any": (ANY, True),
            "no_stream": (NO_STREAM, actual == 0),
            "stream_exists": (STREAM_EXISTS, actual > 0),
        }
        return choices[kind]

    @precondition(lambda self: self.last_append is not None)
    @rule()
    def retry_last_append(self) -> None:
        """Re-appending the last successful batch stores nothing and returns its result."""
        assert self.last_append is not None
        stream_id, batch, expected, result = self.last_append
        assert self.store.append(stream_id, batch, expected_version=expected) == result

    @rule(
        stream_id=st.sampled_from(_STREAMS),
        from_version=st.none() | st.integers(1, 12),
        to_version=st.none() | st.integers(1, 12),
        backwards=st.booleans(),
        limit=st.none() | st.integers(0, 6),
    )
    def read_stream(
        self,
        stream_id: str,
        from_version: int | None,
        to_version: int | None,
        backwards: bool,  # noqa: FBT001 (a hypothesis-drawn argument)
        limit: int | None,
    ) -> None:
        """A stream read returns exactly the model's events for that range."""
        events = self.streams[stream_id]
        if backwards:
            high = len(events) if from_version is None else min(from_version, len(events))
            expected = [e for e in reversed(events) if (to_version or 1) <= e.version <= high]
        else:
            high = len(events) if to_version is None else to_version
            expected = [e for e in events if (from_version or 1) <= e.version <= high]
        expected = expected[:limit]
        actual = self.store.read_stream(
            stream_id,
            from_version=from_version,
            to_version=to_version,
            backwards=backwards,
            limit=limit,
        )
        assert [(r.version, r.position, r.event_id, r.event) for r in actual] == [
            (e.version, e.position, e.event_id, e.event) for e in expected
        ]

    @rule(
        skip=st.integers(0, 30),
        limit=st.none() | st.integers(0, 10),
        only=st.none() | st.sampled_from([("contract.Deposited",), ("contract.Noted",)]),
    )
    def read_all(self, skip: int, limit: int | None, only: tuple[str, ...] | None) -> None:
        """read_all after a position returns exactly the model's log from there."""
        after = self.log[skip - 1].position if 0 < skip <= len(self.log) else 0
        expected = [
            e
            for e in self.log
            if e.position > after
            and (only is None or contract_registry.by_class(type(e.event)).name in only)
        ][:limit]
        actual = self.store.read_all(after_position=after, limit=limit, event_types=only)
        assert [(r.stream_id, r.version, r.position, r.event) for r in actual] == [
            (e.stream_id, e.version, e.position, e.event) for e in expected
        ]

    @invariant()
    def versions_and_head_agree(self) -> None:
        """Every stream's version and the head position match the model."""
        for stream_id, events in self.streams.items():
            assert self.store.stream_version(stream_id) == len(events)
        assert self.store.head_position() == (self.log[-1].position if self.log else 0)


# -- aggregate scenarios ------------------------------------------------------------------


class AggregateScenario:
    """
    A given / when / then test of one aggregate, with no store involved.

    Build one with `given`. ``when`` runs a command; ``then`` checks the events it
    recorded; ``then_raises`` checks that it refused.

    Example:
        .. code-block:: python

            (given(Account("acc-1"), AccountOpened("ada"), MoneyDeposited(Decimal(10)))
                .when(lambda account: account.withdraw(Decimal(4)))
                .then(MoneyWithdrawn(Decimal(4))))

    .. versionadded:: 0.1.0
    """

    def __init__(self, aggregate: Aggregate) -> None:
        self.aggregate = aggregate
        self._error: Exception | None = None

    def when(self, command: Callable[[Any], object]) -> AggregateScenario:
        """Run *command* on the aggregate, remembering a refusal for `then_raises`."""
        try:
            command(self.aggregate)
        except Exception as exc:  # noqa: BLE001 (kept for then_raises, re-raised by then)
            self._error = exc
        return self

    def then(self, *expected: Any) -> Aggregate:
        """Assert that the command recorded exactly *expected*; return the aggregate."""
        if self._error is not None:
            raise AssertionError(f"the command raised {self._error!r}") from self._error
        assert list(self.aggregate.pending_events) == list(expected), (
            f"recorded {list(self.aggregate.pending_events)!r}, expected {list(expected)!r}"
        )
        return self.aggregate

    def then_raises(self, error: type[Exception], match: str | None = None) -> Exception:
        """Assert that the command raised *error* and recorded nothing; return the error."""
        assert isinstance(self._error, error), f"expected {error.__name__}, got {self._error!r}"
        if match is not None:
            assert match in str(self._error), f"{match!r} not in {str(self._error)!r}"
        assert not self.aggregate.pending_events, "a refused command recorded events"
        return self._error


def given(aggregate: Aggregate, *history: Any) -> AggregateScenario:
    """
    Start a scenario from *aggregate* after replaying *history* into it.

    .. versionadded:: 0.1.0
    """
    return AggregateScenario(aggregate.replay(history))
