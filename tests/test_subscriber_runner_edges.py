"""Subscriber runners, sync and async, at their edges: refusals, failures, locks, leases."""

import asyncio
import threading
import time
from decimal import Decimal

import pytest

from eventkit import (
    AsyncInMemoryEventStore,
    AsyncPostgresEventStore,
    AsyncSubscriber,
    AsyncSubscriberRunner,
    InMemoryEventStore,
    ParkOnError,
    PostgresEventStore,
    ProjectionError,
    RetryOnError,
    Subscriber,
    SubscriberRunner,
)
from tests.backends.postgres_support import DSN, new_schema
from tests.bank import MoneyDeposited, registry

WAIT = 10.0


class Collector(AsyncSubscriber):
    """Keeps the positions handed over; fails at the positions in *fail* (times each)."""

    name = "collector"

    def __init__(self, name=None, fail=None, policy=None, hold=None):
        if name is not None:
            self.name = name
        self.seen = []
        self.fail = dict(fail or {})
        self.hold = hold  # an asyncio.Event the first batch waits for
        if policy is not None:
            self.error_policy = policy

    async def handle_batch(self, batch):
        if self.hold is not None:
            await self.hold.wait()
        for recorded in batch:
            left = self.fail.get(recorded.position, 0)
            if left:
                self.fail[recorded.position] = left - 1
                raise RuntimeError(f"cannot take {recorded.position}")
        self.seen.extend(recorded.position for recorded in batch)


class SyncCollector(Subscriber):
    """The sync form of Collector (*hold* is a threading.Event)."""

    name = "collector"

    def __init__(self, name=None, fail=None, policy=None, hold=None):
        if name is not None:
            self.name = name
        self.seen = []
        self.fail = dict(fail or {})
        self.hold = hold
        if policy is not None:
            self.error_policy = policy

    def handle_batch(self, batch):
        if self.hold is not None:
            self.hold.wait(WAIT)
        for recorded in batch:
            left = self.fail.get(recorded.position, 0)
            if left:
                self.fail[recorded.position] = left - 1
                raise RuntimeError(f"cannot take {recorded.position}")
        self.seen.extend(recorded.position for recorded in batch)


async def filled(count):
    store = AsyncInMemoryEventStore(registry=registry)
    for n in range(count):
        await store.append("abc"[n % 3], [MoneyDeposited(Decimal(n))])
    return store


def sync_filled(count):
    store = InMemoryEventStore(registry=registry)
    for n in range(count):
        store.append("abc"[n % 3], [MoneyDeposited(Decimal(n))])
    return store


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"poll_interval": 0}, "poll_interval"),
    ],
)
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_bad_numbers_are_refused_naming_the_option(flavour, options, message):
    """A batch size or poll interval out of range raises ValueError naming it."""
    if flavour == "sync":
        make = SubscriberRunner, InMemoryEventStore(registry=registry), SyncCollector()
    else:
        make = AsyncSubscriberRunner, AsyncInMemoryEventStore(registry=registry), Collector()
    cls, store, subscriber = make
    with pytest.raises(ValueError, match=message):
        cls(store, subscriber, **options)


def _named(cls, name):
    subscriber = cls()
    subscriber.name = name
    return subscriber


def _with_policy(cls, policy):
    subscriber = cls()
    subscriber.error_policy = policy
    return subscriber


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda cls: object(), TypeError, "expected an instance of"),
        (lambda cls: _named(cls, ""), ValueError, "name must be a non-empty string"),
        (lambda cls: _named(cls, " padded"), ValueError, "without surrounding whitespace"),
        (lambda cls: _named(cls, None), ValueError, "got None"),
        (lambda cls: _named(cls, "c__rebuild"), ValueError, "must not end with '__rebuild'"),
        (lambda cls: _with_policy(cls, "retry"), TypeError, "error_policy must be StopOnError"),
    ],
    ids=["stranger", "empty", "padded", "unnamed", "staging", "policy"],
)
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_subscriber_that_cannot_run_is_refused(flavour, make, error, message):
    """A stranger, a bad name, or an unknown error policy are refused naming the fault."""
    if flavour == "sync":
        cls, store, kind = SubscriberRunner, InMemoryEventStore(registry=registry), SyncCollector
    else:
        cls, store, kind = (
            AsyncSubscriberRunner,
            AsyncInMemoryEventStore(registry=registry),
            Collector,
        )
    with pytest.raises(error, match=message):
        cls(store, make(kind))


@pytest.mark.asyncio
class TestAsyncRefusals:
    @pytest.mark.parametrize(
        ("subscribers", "error", "message"),
        [
            ((), ValueError, "at least one subscriber"),
            ((Collector(), Collector()), ValueError, "two subscribers are named 'collector'"),
        ],
    )
    async def test_bad_subscribers_are_refused(self, subscribers, error, message):
        """No subscriber, or two of one name, are refused naming the fault."""
        with pytest.raises(error, match=message):
            AsyncSubscriberRunner(AsyncInMemoryEventStore(registry=registry), *subscribers)

    async def test_a_store_without_checkpoints_is_refused(self):
        """A store that keeps no checkpoints raises TypeError naming its type."""
        with pytest.raises(TypeError, match="object keeps no checkpoints"):
            AsyncSubscriberRunner(object(), Collector())

    async def test_a_negative_position_is_refused(self):
        """wait_for a negative position raises ValueError."""
        runner = AsyncSubscriberRunner(await filled(1), Collector())
        with pytest.raises(ValueError, match="position"):
            await runner.wait_for(-1)


@pytest.mark.asyncio
class TestAsyncRunner:
    async def test_a_failing_subscriber_does_not_hold_the_others_back(self):
        """The others catch up; the failure is raised, shown in status and by wait_for."""
        store = await filled(3)
        bad, good = Collector("bad", fail={2: 99}), Collector("good")
        runner = AsyncSubscriberRunner(store, bad, good)
        with pytest.raises(ProjectionError, match="position 2") as info:
            await runner.run_until_caught_up()
        assert (bad.seen, good.seen) == ([1], [1, 2, 3])
        status = await runner.status()
        assert (status["bad"].state.value, status["bad"].position) == ("failed", 1)
        assert status["bad"].error is info.value
        assert (status["good"].state.value, status["good"].lag_events) == ("stopped", 0)
        with pytest.raises(ProjectionError, match="position 2"):
            await runner.wait_for(3, timeout=None)
        await runner.wait_for(3, subscribers="good")

    async def test_wait_for_times_out_naming_the_subscriber(self):
        """wait_for raises TimeoutError naming the subscriber behind and its position."""
        runner = AsyncSubscriberRunner(await filled(1), Collector())
        expected = r"position 1 within 0\.05 seconds: 'collector' at 0"
        with pytest.raises(TimeoutError, match=expected):
            await runner.wait_for(1, timeout=0.05)

    async def test_wait_for_without_a_timeout_waits_for_the_worker(self):
        """wait_for(timeout=None) returns once the background worker caught up."""
        store = await filled(2)
        collector = Collector()
        async with AsyncSubscriberRunner(store, collector, poll_interval=0.01) as runner:
            position = (await store.append("d", [MoneyDeposited(Decimal(1))])).positions[-1]
            await runner.wait_for(position, timeout=None)
        assert collector.seen == [1, 2, 3]

    async def test_a_catch_up_waits_while_another_runner_holds_the_lock(self):
        """Locked by a runner that is behind: TimeoutError, then success once it caught up."""
        store = await filled(3)
        hold = asyncio.Event()
        holder = AsyncSubscriberRunner(store, Collector(hold=hold), poll_interval=0.01)
        waiting = AsyncSubscriberRunner(store, Collector(), poll_interval=0.01)
        async with holder:
            await _until(lambda: _is_active(holder))
            with pytest.raises(TimeoutError, match="'collector' is locked by another runner"):
                await waiting.run_until_caught_up(timeout=0.1)
            assert (await waiting.status())["collector"].state.value == "stopped"
            hold.set()
            assert await waiting.run_until_caught_up(timeout=WAIT) == 0
        assert (await store.projection_checkpoints())["collector"].position == 3

    async def test_parked_events_are_retried_by_position_only(self):
        """retry_dead_letters with positions hands over those parked events only."""
        store = await filled(3)
        runner = AsyncSubscriberRunner(store, Collector(fail={1: 2, 3: 2}, policy=ParkOnError()))
        await runner.run_until_caught_up()
        assert [d.position for d in await runner.dead_letters("collector")] == [1, 3]
        assert await runner.retry_dead_letters("collector", positions=[3]) == 1
        assert [d.position for d in await runner.dead_letters("collector")] == [1]

    async def test_a_running_runner_retries_under_its_own_lock(self):
        """While it runs, a runner retries parked events; a runner standing by refuses."""
        store = await filled(2)
        collector = Collector(fail={2: 2}, policy=ParkOnError())
        other = AsyncSubscriberRunner(store, Collector())
        async with AsyncSubscriberRunner(store, collector, poll_interval=0.01) as runner:
            await runner.wait_for(2)
            with pytest.raises(ProjectionError, match="another runner holds this subscriber"):
                await other.retry_dead_letters("collector")
            assert await runner.retry_dead_letters("collector") == 1
            assert await runner.dead_letters("collector") == []
        assert collector.seen == [1, 2]


class TestSyncRunner:
    def test_a_runner_names_and_lists_its_subscribers(self):
        """The repr names the subscribers (and says when it runs); the property lists them."""
        one, two = SyncCollector("one"), SyncCollector("two")
        runner = SubscriberRunner(sync_filled(1), one, two, poll_interval=0.01)
        assert (repr(runner), runner.subscribers) == (
            "<SubscriberRunner of 'one', 'two'>",
            (one, two),
        )
        with runner:
            assert repr(runner) == "<SubscriberRunner of 'one', 'two' (running)>"
            with pytest.raises(RuntimeError, match="already running"):
                runner.start()
            assert runner.run_until_caught_up(timeout=WAIT) == 0
        assert (one.seen, two.seen) == ([1], [1])

    def test_a_failing_subscriber_does_not_hold_the_others_back(self):
        """The others catch up; the failure is raised, shown in status and by wait_for."""
        store = sync_filled(3)
        bad, good = SyncCollector("bad", fail={2: 99}), SyncCollector("good")
        runner = SubscriberRunner(store, bad, good)
        with pytest.raises(ProjectionError, match="position 2") as info:
            runner.run_until_caught_up()
        assert (bad.seen, good.seen) == ([1], [1, 2, 3])
        status = runner.status()
        assert (status["bad"].state.value, status["bad"].lag_events) == ("failed", 2)
        assert status["bad"].error is info.value
        assert status["bad"].lag_seconds > 0
        assert (status["good"].state.value, status["good"].lag_seconds) == ("stopped", 0.0)
        with pytest.raises(ProjectionError, match="position 2"):
            runner.wait_for(3, timeout=None)
        runner.wait_for(3, subscribers="good")

    def test_a_catch_up_waits_while_another_runner_holds_the_lock(self):
        """Locked by a runner that is behind: TimeoutError, then success once it caught up."""
        store = sync_filled(3)
        hold = threading.Event()
        holder = SubscriberRunner(store, SyncCollector(hold=hold), poll_interval=0.01)
        waiting = SubscriberRunner(store, SyncCollector(), poll_interval=0.01)
        try:
            with holder:
                _sync_until(lambda: holder.status()["collector"].state.value == "active")
                with pytest.raises(TimeoutError, match="'collector' is locked by another runner"):
                    waiting.run_until_caught_up(timeout=0.1)
                hold.set()
                assert waiting.run_until_caught_up(timeout=WAIT) == 0
        finally:
            hold.set()
        assert store.projection_checkpoints()["collector"].position == 3

    def test_a_background_runner_retries_a_failing_batch_after_a_pause(self):
        """RetryOnError pauses the worker, then hands the batch over again until it succeeds."""
        store = sync_filled(2)
        collector = SyncCollector(fail={2: 2}, policy=RetryOnError(attempts=5, delay=0.01))
        with SubscriberRunner(store, collector, poll_interval=0.01) as runner:
            runner.wait_for(2, timeout=None)
        assert collector.seen == [1, 2]

    def test_retrying_parked_events_takes_the_lock_or_refuses(self):
        """A running runner retries under its own lock, a standby refuses; positions filter."""
        store = sync_filled(3)
        collector = SyncCollector(fail={1: 2, 3: 2}, policy=ParkOnError())
        other = SubscriberRunner(store, SyncCollector())
        with SubscriberRunner(store, collector, poll_interval=0.01) as runner:
            runner.wait_for(3)
            with pytest.raises(ProjectionError, match="another runner holds this subscriber"):
                other.retry_dead_letters("collector")
            assert runner.retry_dead_letters("collector", positions=[3]) == 1
            assert [d.position for d in runner.dead_letters("collector")] == [1]
        assert collector.seen == [2, 3]


@pytest.mark.asyncio
@pytest.mark.parametrize("flavour", ["sync", "async"])
class TestLeases:
    async def test_a_runner_paused_past_its_lease_cannot_move_the_checkpoint(
        self, flavour, schemas
    ):
        """Another store took the lease meanwhile: ProjectionError, the checkpoint stays."""
        schemas.append(new_schema())
        paused, other = _stores(flavour, schemas[-1], lease_seconds=0.2)
        try:
            await _call(paused.append("s", [MoneyDeposited(Decimal(1))]))
            taken = []

            async def take_over():
                await _until_async(lambda: _take(other, taken))

            runner = _runner(flavour, paused, take_over)
            with pytest.raises(ProjectionError, match="another runner took the subscriber over"):
                await _catch_up(runner)
            assert (await _call(paused.projection_checkpoints()))["collector"].position == 0
            assert taken[-1].generation == 2
            assert await _call(paused.lock_projection("collector")) is None  # still held
        finally:
            for store in (paused, other):
                await _call(store.close())

    async def test_a_runner_whose_checkpoint_moved_meanwhile_starts_again_from_it(
        self, flavour, schemas
    ):
        """Another runner caught up during the pause: the paused one adopts its checkpoint."""
        schemas.append(new_schema())
        paused, other = _stores(flavour, schemas[-1], lease_seconds=0.2)
        try:
            await _call(paused.append("s", [MoneyDeposited(Decimal(1))]))
            head = await _call(paused.head_position())
            standby = []

            async def catch_up_elsewhere():
                standby.append(_runner(flavour, other, None))
                await _until_async(lambda: _caught_up(standby[-1], head))

            runner = _runner(flavour, paused, catch_up_elsewhere)
            await _catch_up(runner)
            checkpoints = await _call(paused.projection_checkpoints())
            assert checkpoints["collector"].position == head
            assert runner.subscribers[0].seen == standby[-1].subscribers[0].seen == [head]
        finally:
            for store in (paused, other):
                await _call(store.close())


def _stores(flavour, schema, *, lease_seconds):
    cls = PostgresEventStore if flavour == "sync" else AsyncPostgresEventStore
    paused = cls(DSN, registry=registry, schema=schema, lease_seconds=lease_seconds)
    return paused, cls(DSN, registry=registry, schema=schema)


def _runner(flavour, store, during_first_batch):
    """A runner whose subscriber runs *during_first_batch* before taking its first batch."""
    if flavour == "sync":

        class Pausing(SyncCollector):
            def handle_batch(self, batch):
                if during_first_batch is not None and not self.seen:
                    asyncio.run(during_first_batch())
                super().handle_batch(batch)

        return SubscriberRunner(store, Pausing(), poll_interval=0.01)

    class AsyncPausing(Collector):
        async def handle_batch(self, batch):
            if during_first_batch is not None and not self.seen:
                await during_first_batch()
            await super().handle_batch(batch)

    return AsyncSubscriberRunner(store, AsyncPausing(), poll_interval=0.01)


async def _catch_up(runner):
    # The sync runner in a thread of its own: its subscriber runs an event loop there.
    if isinstance(runner, SubscriberRunner):
        return await asyncio.to_thread(runner.run_until_caught_up)
    return await runner.run_until_caught_up()


async def _call(value):
    return await value if asyncio.iscoroutine(value) else value


async def _take(store, taken):
    lease = await _call(store.lock_projection("collector"))
    if lease is not None:
        taken.append(lease)
    return lease is not None


async def _caught_up(runner, head):
    try:
        await _call(runner.run_until_caught_up(timeout=0.05))
    except TimeoutError:
        return False
    return (await _call(runner.store.projection_checkpoints()))["collector"].position == head


async def _until_async(check):
    deadline = time.monotonic() + WAIT
    while not await check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.02)


async def _is_active(runner):
    return (await runner.status())["collector"].state.value == "active"


async def _until(check):
    await _until_async(check)


def _sync_until(check):
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.01)
