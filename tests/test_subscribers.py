"""Subscribers and their runner: batches outside the transaction, checkpoint after, policies."""

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventkit import (
    AsyncInMemoryEventStore,
    AsyncSubscriber,
    AsyncSubscriberRunner,
    BrokerMessage,
    DeadLetter,
    InMemoryEventStore,
    ParkOnError,
    ProjectionError,
    Relay,
    RetryOnError,
    SerializationError,
    Subscriber,
    SubscriberRunner,
)
from eventkit._relay._message import subject_token, waves
from eventkit.backends import EventRecord
from tests.bank import MoneyDeposited, MoneyWithdrawn, registry
from tests.broker_support import first_occurrences_in_order


class Collector(AsyncSubscriber):
    """Keeps what it was handed; fails at the positions in *fail* (count of failures each)."""

    name = "collector"

    def __init__(self, fail=None, policy=None):
        self.batches = []
        self.fail = dict(fail or {})
        if policy is not None:
            self.error_policy = policy

    async def handle_batch(self, batch):
        for recorded in batch:
            left = self.fail.get(recorded.position, 0)
            if left:
                self.fail[recorded.position] = left - 1
                raise RuntimeError(f"cannot take {recorded.position}")
        self.batches.append([recorded.position for recorded in batch])


async def filled(count, streams=("a", "b", "c")):
    store = AsyncInMemoryEventStore(registry=registry)
    for n in range(count):
        await store.append(streams[n % len(streams)], [MoneyDeposited(Decimal(n))])
    return store


@pytest.mark.asyncio
class TestAsyncSubscriberRunner:
    async def test_batches_arrive_in_feed_order(self):
        """Every event is handed over once, in position order, in batches of batch_size."""
        collector = Collector()
        await AsyncSubscriberRunner(await filled(7), collector, batch_size=3).run_until_caught_up()
        assert collector.batches == [[1, 2, 3], [4, 5, 6], [7]]

    async def test_the_checkpoint_stays_before_a_batch_that_failed(self):
        """A batch that keeps failing leaves the checkpoint before its failing event."""
        store = await filled(6)
        runner = AsyncSubscriberRunner(store, Collector(fail={5: 99}), batch_size=4)
        with pytest.raises(ProjectionError, match="position 5"):
            await runner.run_until_caught_up()
        assert (await store.projection_checkpoints())["collector"].position == 4

    async def test_a_failed_batch_is_handed_over_one_event_at_a_time(self):
        """After a batch fails, its events go alone until the failing one, then retried."""
        collector = Collector(fail={3: 2}, policy=RetryOnError(attempts=None, delay=0.001))
        await AsyncSubscriberRunner(await filled(5), collector, batch_size=5).run_until_caught_up()
        assert collector.batches == [[1], [2], [3], [4, 5]]

    async def test_a_policy_without_a_limit_retries_until_it_succeeds(self):
        """RetryOnError(attempts=None) goes on retrying past any count."""
        collector = Collector(fail={1: 30}, policy=RetryOnError(attempts=None, delay=0.0))
        await AsyncSubscriberRunner(await filled(1), collector).run_until_caught_up()
        assert collector.batches == [[1]]

    async def test_a_stop_ends_a_retry_without_end(self):
        """Stopping a runner that retries for ever returns, and the checkpoint stays before."""
        store = await filled(2)
        collector = Collector(fail={2: 10**9}, policy=RetryOnError(attempts=None, delay=0.01))
        runner = AsyncSubscriberRunner(store, collector, poll_interval=0.01)
        runner.start()
        await asyncio.sleep(0.2)
        await runner.stop(timeout=5)
        assert (await store.projection_checkpoints())["collector"].position == 1

    async def test_a_parked_event_is_passed_over_and_listed(self):
        """ParkOnError parks the failing event and hands over the rest."""
        store = await filled(3)
        collector = Collector(fail={2: 99}, policy=ParkOnError())
        runner = AsyncSubscriberRunner(store, collector)
        await runner.run_until_caught_up()
        letters = await runner.dead_letters("collector")
        assert (collector.batches, [d.position for d in letters]) == ([[1], [3]], [2])

    async def test_status_counts_the_lag_in_events(self):
        """Lag counts the wanted events after the checkpoint; positions are never subtracted."""
        store = await filled(4)
        status = (await AsyncSubscriberRunner(store, Collector()).status())["collector"]
        assert (status.lag_events, status.position, status.head) == (4, 0, 4)

    async def test_two_runners_of_one_subscriber_never_both_run(self):
        """A second runner stands by while the first holds the subscriber's lock."""
        store = await filled(3)
        first, second = Collector(), Collector()
        one, two = AsyncSubscriberRunner(store, first), AsyncSubscriberRunner(store, second)
        async with one, two:
            await one.wait_for(3)
            states = {(await r.status())["collector"].state.value for r in (one, two)}
        assert (states, second.batches) == ({"active", "standby"}, [])

    async def test_a_runner_names_and_lists_its_subscribers(self):
        """The repr names the subscribers, and the property returns them in order."""
        collector = Collector()
        runner = AsyncSubscriberRunner(AsyncInMemoryEventStore(registry=registry), collector)
        assert (repr(runner), runner.subscribers) == (
            "<AsyncSubscriberRunner of 'collector'>",
            (collector,),
        )

    async def test_catching_up_while_running_waits_for_the_worker(self):
        """run_until_caught_up on a running runner waits for the background worker."""
        store = await filled(3)
        collector = Collector()
        async with AsyncSubscriberRunner(store, collector, poll_interval=0.01) as runner:
            assert await runner.run_until_caught_up(timeout=10) == 0
            with pytest.raises(RuntimeError, match="already running"):
                runner.start()
        assert [p for batch in collector.batches for p in batch] == [1, 2, 3]

    async def test_catching_up_waits_for_the_runner_that_holds_the_lock(self):
        """A foreground catch-up finds the lock taken and returns once the holder caught up."""
        store = await filled(3)
        holder = AsyncSubscriberRunner(store, Collector(), poll_interval=0.01)
        other = Collector()
        async with holder:
            await holder.wait_for(3)
            waited = await AsyncSubscriberRunner(
                store, other, poll_interval=0.01
            ).run_until_caught_up(timeout=10)
        assert (waited, other.batches) == (0, [])

    async def test_parked_events_are_retried_and_unparked(self):
        """retry_dead_letters hands a parked event over again and unparks it on success."""
        store = await filled(2)
        runner = AsyncSubscriberRunner(store, Collector(fail={2: 2}, policy=ParkOnError()))
        await runner.run_until_caught_up()
        assert (
            await runner.retry_dead_letters("collector"),
            await runner.dead_letters("collector"),
        ) == (
            1,
            [],
        )

    async def test_an_unknown_subscriber_name_is_refused(self):
        """wait_for with a name the runner does not run raises ValueError."""
        runner = AsyncSubscriberRunner(await filled(1), Collector())
        with pytest.raises(ValueError, match="no subscriber named 'nope'"):
            await runner.wait_for(1, subscribers="nope")

    async def test_a_subscriber_without_a_handler_is_refused(self):
        """A subclass that implements neither handler is refused with a TypeError."""

        class Empty(AsyncSubscriber):
            name = "empty"

        with pytest.raises(TypeError, match="must implement handle_batch"):
            AsyncSubscriberRunner(AsyncInMemoryEventStore(registry=registry), Empty())

    async def test_a_parked_event_that_fails_again_counts_an_attempt(self):
        """An event that fails again when retried stays parked, with one more attempt."""
        store = await filled(1)
        runner = AsyncSubscriberRunner(store, Collector(fail={1: 9}, policy=ParkOnError()))
        await runner.run_until_caught_up()
        assert await runner.retry_dead_letters("collector", positions=[1]) == 0
        (letter,) = await runner.dead_letters("collector")
        assert (letter.attempts, letter.error) == (2, "RuntimeError: cannot take 1")

    async def test_a_parked_event_the_store_no_longer_holds_is_an_error(self):
        """Retrying a letter whose event is not stored raises instead of dropping it."""
        store = await filled(1)
        runner = AsyncSubscriberRunner(store, Collector())
        letter = DeadLetter(
            "collector", 7, "a", 3, "bank.MoneyDeposited", "x", 1, datetime.now(UTC)
        )
        await store.run_projection_transaction(lambda tx: tx.park(letter))
        with pytest.raises(ProjectionError, match="position 7: the parked event is not stored"):
            await runner.retry_dead_letters("collector")

    async def test_events_of_other_types_move_the_checkpoint_without_a_hand_over(self):
        """A subscriber wanting other types hands nothing over, and still catches up."""
        collector = Collector()
        collector.event_types = (MoneyWithdrawn,)
        store = await filled(3)
        await AsyncSubscriberRunner(store, collector).run_until_caught_up()
        checkpoint = (await store.projection_checkpoints())["collector"]
        assert (collector.batches, checkpoint.position) == ([], 3)

    @pytest.mark.parametrize(
        ("change", "error", "message"),
        [
            ({"name": ""}, ValueError, "name must be a non-empty string"),
            ({"name": "x__rebuild"}, ValueError, "must not end with '__rebuild'"),
            ({"error_policy": "park"}, TypeError, "error_policy must be"),
        ],
    )
    async def test_bad_subscriber_attributes_are_refused(self, change, error, message):
        """A bad name or error policy is refused, naming the fault."""
        collector = Collector()
        for key, value in change.items():
            setattr(collector, key, value)
        with pytest.raises(error, match=message):
            AsyncSubscriberRunner(AsyncInMemoryEventStore(registry=registry), collector)

    async def test_a_stranger_is_refused(self):
        """Anything but an AsyncSubscriber (a sync Subscriber too) is a TypeError."""
        store = AsyncInMemoryEventStore(registry=registry)
        with pytest.raises(TypeError, match="expected an instance of AsyncSubscriber"):
            AsyncSubscriberRunner(store, SyncCollector())


class SyncCollector(Subscriber):
    """The sync form of Collector."""

    name = "collector"

    def __init__(self, fail=None, policy=None):
        self.batches = []
        self.fail = dict(fail or {})
        if policy is not None:
            self.error_policy = policy

    def handle_batch(self, batch):
        for recorded in batch:
            left = self.fail.get(recorded.position, 0)
            if left:
                self.fail[recorded.position] = left - 1
                raise RuntimeError(f"cannot take {recorded.position}")
        self.batches.append([recorded.position for recorded in batch])


def sync_filled(count):
    store = InMemoryEventStore(registry=registry)
    for n in range(count):
        store.append("abc"[n % 3], [MoneyDeposited(Decimal(n))])
    return store


class TestSubscriberRunner:
    def test_a_background_runner_follows_new_events(self):
        """Started in a thread, the sync runner hands over events appended later."""
        store = sync_filled(2)
        collector = SyncCollector()
        with SubscriberRunner(store, collector, poll_interval=0.01) as runner:
            position = store.append("d", [MoneyDeposited(Decimal(1))]).positions[-1]
            runner.wait_for(position)
            status = runner.status()["collector"]
        handed = [position for batch in collector.batches for position in batch]
        assert (handed, status.lag_events) == ([1, 2, 3], 0)

    def test_parked_events_are_retried_and_unparked(self):
        """retry_dead_letters hands a parked event over again and unparks it on success."""
        store = sync_filled(3)
        # It fails in its batch, then alone (and is parked), then succeeds when retried.
        collector = SyncCollector(fail={2: 2}, policy=ParkOnError())
        runner = SubscriberRunner(store, collector)
        runner.run_until_caught_up()
        parked = [letter.position for letter in runner.dead_letters("collector")]
        assert (
            parked,
            runner.retry_dead_letters("collector"),
            runner.dead_letters("collector"),
        ) == (
            [2],
            1,
            [],
        )

    def test_a_parked_event_that_fails_again_counts_an_attempt(self):
        """An event that fails again stays parked, with one more attempt."""
        store = sync_filled(1)
        runner = SubscriberRunner(store, SyncCollector(fail={1: 9}, policy=ParkOnError()))
        runner.run_until_caught_up()
        assert runner.retry_dead_letters("collector", positions=[1]) == 0
        assert [d.attempts for d in runner.dead_letters("collector")] == [2]

    def test_wait_for_times_out_naming_the_subscriber(self):
        """wait_for raises TimeoutError when the subscriber stays behind."""
        runner = SubscriberRunner(sync_filled(1), SyncCollector())
        with pytest.raises(TimeoutError, match="'collector' at 0"):
            runner.wait_for(1, timeout=0.05)

    @pytest.mark.parametrize(
        ("subscribers", "error", "message"),
        [
            ((), ValueError, "at least one subscriber"),
            ((object(),), TypeError, "expected an instance of Subscriber"),
            ((SyncCollector(), SyncCollector()), ValueError, "two subscribers are named"),
        ],
    )
    def test_bad_subscribers_are_refused(self, subscribers, error, message):
        """No subscriber, a stranger, or two of one name are refused, naming the fault."""
        with pytest.raises(error, match=message):
            SubscriberRunner(InMemoryEventStore(registry=registry), *subscribers)

    def test_a_store_without_checkpoints_is_refused(self):
        """A store that keeps no checkpoints is refused with a TypeError naming it."""
        with pytest.raises(TypeError, match="object keeps no checkpoints"):
            SubscriberRunner(object(), SyncCollector())

    def test_a_subscriber_of_an_unknown_name_is_refused(self):
        """Asking about a subscriber the runner does not run raises ValueError."""
        runner = SubscriberRunner(sync_filled(1), SyncCollector())
        with pytest.raises(ValueError, match="no subscriber named 'other'"):
            runner.dead_letters("other")

    def test_the_sync_runner_hands_batches_to_a_sync_subscriber(self):
        """The generated sync twin feeds a Subscriber whose handle_batch is plain code."""

        class Sync(Subscriber):
            name = "sync"

            def __init__(self):
                self.seen = []

            def handle_batch(self, batch):
                self.seen.extend(r.position for r in batch)

        store = InMemoryEventStore(registry=registry)
        store.append("a", [MoneyDeposited(Decimal(1))] * 3)
        sync = Sync()
        SubscriberRunner(store, sync, batch_size=2).run_until_caught_up()
        assert sync.seen == [1, 2, 3]


class TestRetryWithoutEnd:
    def test_the_listed_delays_stop_where_they_stop_growing(self):
        """With no limit on attempts, delays lists the pauses up to the longest one."""
        assert RetryOnError(attempts=None, delay=1, factor=2, max_delay=5).delays == (1, 2, 4, 5)

    def test_a_pause_past_any_float_is_the_longest_pause(self):
        """A retry far enough along waits max_delay, where the power would overflow."""
        assert RetryOnError(attempts=None, factor=1e9).delay_before(10**6) == 30.0

    def test_attempts_must_be_none_or_positive(self):
        """Zero attempts is refused, naming None as allowed."""
        with pytest.raises(ValueError, match="or None"):
            RetryOnError(attempts=0)


def record(stream_id="a", version=1, position=1, data='{"amount":"1.50"}', metadata="{}"):
    return EventRecord(
        stream_id,
        version,
        position,
        uuid.uuid4(),
        "bank.MoneyDeposited",
        2,
        data,
        metadata,
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    )


class TestBrokerMessage:
    def test_a_message_carries_the_record_back_exactly(self):
        """to_record of a message's body returns the stored record, field for field."""
        original = record(position=2**60 + 3, metadata='{"correlation_id":"c-1","x":"y"}')
        message = BrokerMessage.from_record(original, source="/bank")
        assert BrokerMessage.to_record(message.body) == original

    def test_the_body_is_a_cloudevent_with_the_stored_data_verbatim(self):
        """The body names CloudEvents attributes, a string position, and data byte for byte."""
        body = BrokerMessage.from_record(record(data='{"amount":"1.50"}'), source="/bank").body
        assert b'"specversion":"1.0"' in body
        assert b'"position":"1"' in body
        assert body.endswith(b',"data":{"amount":"1.50"}}')

    def test_headers_repeat_the_id_stream_version_and_position(self):
        """The headers carry what consumers deduplicate and route by."""
        original = record(stream_id="s", version=4, position=9)
        headers = BrokerMessage.from_record(original, source="x").headers
        assert (
            headers["eventkit-event-id"],
            headers["eventkit-stream-id"],
            headers["eventkit-stream-version"],
            headers["eventkit-position"],
        ) == (str(original.event_id), "s", "4", "9")

    def test_a_body_of_another_format_is_refused(self):
        """A body that is not an eventkit message raises SerializationError."""
        with pytest.raises(SerializationError, match="not an eventkit event message"):
            BrokerMessage.to_record(b'{"specversion":"0.3"}')

    def test_subject_tokens_escape_what_nats_reserves(self):
        """Dots, wildcards, spaces and percent signs become %XX in a subject token."""
        assert subject_token("flight.LX 318*>%é") == "flight%2ELX%20318%2A%3E%25%C3%A9"

    @given(st.lists(st.sampled_from("abcd"), max_size=40))
    def test_waves_keep_each_streams_order_and_never_hold_a_stream_twice(self, streams):
        """Runs cover the records in order, each holding a stream at most once."""
        versions = {}
        records = []
        for position, stream in enumerate(streams, start=1):
            versions[stream] = versions.get(stream, 0) + 1
            records.append(record(stream, versions[stream], position))
        runs = list(waves(records))
        assert [r for run in runs for r in run] == records
        assert all(len({r.stream_id for r in run}) == len(run) for run in runs)


class FlakyPublisher:
    """Stores what it is given, but fails each run whose turn is in *failing*."""

    def __init__(self, failing):
        self.failing = set(failing)
        self.calls = 0
        self.stored = []

    async def open(self):
        pass

    async def publish(self, messages):
        self.calls += 1
        if self.calls in self.failing:
            self.stored.extend(messages[: len(messages) // 2])  # some got through
            raise RuntimeError("no acknowledgement")
        self.stored.extend(messages)

    async def close(self):
        pass


@pytest.mark.asyncio
class TestRelay:
    async def test_failed_publishes_are_retried_without_loss_or_reordering(self):
        """Whatever publishes fail, every event is stored, each stream's first copies in order."""
        store = await filled(40, streams=("a", "b", "c", "d", "e"))
        publisher = FlakyPublisher(failing={2, 3, 5, 8, 9, 13})
        relay = Relay(publisher, error_policy=RetryOnError(attempts=None, delay=0.0))
        await AsyncSubscriberRunner(store, relay, batch_size=9).run_until_caught_up()
        stored = [BrokerMessage.to_record(m.body) for m in publisher.stored]
        assert {r.position for r in stored} == set(range(1, 41))
        assert first_occurrences_in_order(stored) == set()

    async def test_a_relay_refuses_to_park(self):
        """A policy that parks is refused: a parked event would be overtaken by its stream."""
        with pytest.raises(TypeError, match="never parks"):
            Relay(FlakyPublisher(()), error_policy=RetryOnError(then=ParkOnError()))


def test_importing_eventkit_imports_no_broker_client():
    """import eventkit loads neither nats-py nor confluent-kafka (they are extras)."""
    code = (
        "import sys, eventkit; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('nats', 'confluent_kafka')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
