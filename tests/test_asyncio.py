"""What only the async API has: a free event loop, safe cancellation, async iteration."""

import asyncio
import gc
import threading
import time
from decimal import Decimal

import pytest
import pytest_asyncio

from eventkit import (
    AsyncInMemoryEventStore,
    AsyncProjectionRunner,
    AsyncRepository,
    AsyncSQLiteEventStore,
    ConcurrencyError,
    Projection,
    SQLiteEventStore,
    StreamNotFound,
    migrate_async,
    verify_async,
)
from tests.bank import Account, MoneyDeposited, registry

# The most work the loop may do between two ticks of a ticker while the store works: a
# few slices of encoding or decoding. It is counted in the loop thread's CPU time, not
# in wall time, so that a busy machine pausing the thread does not count, and without
# the garbage collector's passes, whose length depends on everything else the process
# holds (a whole test session, under coverage), not on the store. The same work done on
# the loop (the sync store called from a coroutine) takes far longer, which the last
# test shows.
TICK_BOUND = 0.25
WAIT = 10.0


def deposits(count, start=0):
    return [MoneyDeposited(Decimal(n)) for n in range(start, start + count)]


@pytest_asyncio.fixture(name="store")
async def _store(tmp_path):
    store = AsyncSQLiteEventStore(tmp_path / "events.db", registry=registry)
    yield store
    await store.close()


class CollectorTime:
    """The CPU time the garbage collector has spent in one thread since this started."""

    def __init__(self):
        self.thread = threading.get_ident()
        self.total = 0.0
        self._started = None

    def __call__(self, phase, info):
        if threading.get_ident() != self.thread:
            return
        if phase == "start":
            self._started = time.thread_time()
        elif self._started is not None:
            self.total += time.thread_time() - self._started
            self._started = None


async def longest_gap(work):
    """Run *work* beside a ticker; return the most loop-thread CPU time between two ticks."""
    gaps = []
    done = asyncio.Event()
    collector = CollectorTime()

    def clock():
        return time.thread_time() - collector.total

    async def tick():
        last = clock()
        while not done.is_set():
            await asyncio.sleep(0.002)
            now = clock()
            gaps.append(now - last)
            last = now

    gc.callbacks.append(collector)
    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    try:
        await work()
    finally:
        done.set()
        await ticker
        gc.callbacks.remove(collector)
    return max(gaps)


class TestTheLoopStaysFree:
    @pytest.mark.asyncio
    async def test_a_large_append_does_not_block_the_loop(self, store):
        """While 50,000 events are encoded and stored, a ticker keeps ticking."""
        events = deposits(50_000)  # made before the ticker starts: the test's work, not the store's

        async def work():
            await store.append("big", events)

        assert await longest_gap(work) < TICK_BOUND
        assert await store.stream_version("big") == 50_000

    @pytest.mark.asyncio
    async def test_a_long_read_all_does_not_block_the_loop(self, store):
        """While 50,000 events are read and decoded, a ticker keeps ticking."""
        for start in range(0, 50_000, 10_000):
            await store.append(f"s{start}", deposits(10_000, start))
        seen = []

        async def work():
            seen.extend([recorded.version async for recorded in store.read_all()])

        assert await longest_gap(work) < TICK_BOUND
        assert len(seen) == 50_000

    @pytest.mark.asyncio
    async def test_the_same_work_on_the_loop_would_block_it(self, tmp_path):
        """The ticker's bound means something: the sync store, called here, breaks it."""
        sync_store = SQLiteEventStore(tmp_path / "sync.db", registry=registry)
        events = deposits(50_000)

        async def work():
            sync_store.append("big", events)

        try:
            assert await longest_gap(work) > TICK_BOUND
        finally:
            sync_store.close()


class SlowStatements:
    """A tracer that holds the writer thread on the first statement that matches."""

    def __init__(self, match):
        self.match = match
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, statement):
        if self.match in statement and not self.entered.is_set():
            self.entered.set()
            self.release.wait(WAIT)


class TestCancellation:
    @pytest.mark.asyncio
    async def test_a_cancelled_append_stores_nothing(self, tmp_path):
        """Cancelled while its rows are inserted, an append rolls back; the store goes on."""
        slow = SlowStatements("INSERT INTO eventkit_events")
        store = AsyncSQLiteEventStore(tmp_path / "events.db", registry=registry, tracer=slow)
        try:
            task = asyncio.create_task(store.append("s", deposits(10)))
            await asyncio.to_thread(slow.entered.wait, WAIT)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            slow.release.set()  # the insert goes on, and the commit is given up
            assert (await store.head_position(), await store.stream_version("s")) == (0, 0)
            result = await store.append("s", deposits(2), expected_version=0)
            assert result.positions == (1, 2)
        finally:
            await store.close()

    @pytest.mark.asyncio
    async def test_a_cancelled_projection_batch_moves_no_checkpoint(self, tmp_path):
        """Cancelled inside a batch, a runner rolls back its writes and its checkpoint."""
        store = AsyncSQLiteEventStore(tmp_path / "events.db", registry=registry)
        inside, release = threading.Event(), threading.Event()

        class Slow(Projection):
            name = "slow"
            tables = ("seen",)

            def setup(self, tx):
                tx.execute(self.sql("CREATE TABLE IF NOT EXISTS {seen} (position INTEGER)"))

            def handle(self, recorded, tx):
                tx.execute(self.sql("INSERT INTO {seen} VALUES (?)"), (recorded.position,))
                if not inside.is_set():
                    inside.set()
                    release.wait(WAIT)

        try:
            await store.append("s", deposits(3))
            runner = AsyncProjectionRunner(store, Slow())
            task = asyncio.create_task(runner.run_until_caught_up())
            await asyncio.to_thread(inside.wait, WAIT)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            release.set()  # the handler goes on, and the commit is given up
            checkpoints = await store.projection_checkpoints()
            rows = await store.run_in_transaction(
                lambda conn: conn.execute("SELECT count(*) FROM seen").fetchone()[0]
            )
            assert (checkpoints["slow"].position, rows) == (0, 0)
            assert await runner.run_until_caught_up() == 3
        finally:
            await store.close()

    @pytest.mark.asyncio
    async def test_a_cancelled_runner_leaves_a_consistent_read_model(self):
        """Cancelled between batches, the in-memory runner's checkpoint matches its model."""
        store = AsyncInMemoryEventStore(registry=registry)
        for n in range(20):
            await store.append(f"s{n}", deposits(5))

        class Count(Projection):
            name = "count"
            handled = 0

            def handle(self, recorded, tx):
                self.handled += 1

        count = Count()
        runner = AsyncProjectionRunner(store, count, batch_size=10)
        task = asyncio.create_task(runner.run_until_caught_up())
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        checkpoint = (await store.projection_checkpoints())["count"]
        assert checkpoint.position == count.handled
        await runner.run_until_caught_up()
        assert count.handled == 100


class TestAsyncRepository:
    @pytest.mark.asyncio
    async def test_save_load_and_conflict(self, store):
        """Saved aggregates load back; a stale save raises ConcurrencyError."""
        accounts = AsyncRepository(store, Account, stream_prefix="account-")
        account = Account("1")
        account.open("ada")
        account.deposit(Decimal(5))
        await accounts.save(account)
        first, second = await accounts.load("1"), await accounts.load("1")
        first.deposit(Decimal(1))
        await accounts.save(first)
        second.deposit(Decimal(2))
        with pytest.raises(ConcurrencyError):
            await accounts.save(second)
        loaded = await accounts.load("1")
        assert (loaded.balance, loaded.version, await accounts.exists("2")) == (
            Decimal(6),
            3,
            False,
        )
        with pytest.raises(StreamNotFound):
            await accounts.load("2")

    @pytest.mark.asyncio
    async def test_snapshots_load_equal_to_a_replay(self, store):
        """With snapshots, a load equals a full replay; rebuild_snapshots writes them."""
        plain = AsyncRepository(store, Account, stream_prefix="account-")
        snapped = AsyncRepository(store, Account, stream_prefix="account-", snapshot_every=3)
        account = Account("1")
        account.open("ada")
        for amount in range(1, 8):
            account.deposit(Decimal(amount))
            await snapped.save(account)
        snapshot = await store.load_snapshot("account-1")
        assert snapshot is not None
        assert snapshot.version == 6
        assert await snapped.load("1") == await plain.load("1")
        assert await snapped.load("1", at_version=4) == await plain.load("1", at_version=4)
        progress = await snapped.rebuild_snapshots()
        assert (progress.done, progress.written) == (1, 1)


class TestAsyncTools:
    @pytest.mark.asyncio
    async def test_verify_and_migrate(self, store, tmp_path):
        """verify_async counts what loads; migrate_async copies events exactly, in order."""
        await store.append("a", deposits(3))
        await store.append("b", deposits(2))
        report = await verify_async(store)
        target = AsyncSQLiteEventStore(tmp_path / "copy.db", registry=registry)
        try:
            migrated = await migrate_async(store, target, batch_size=2)
            copied = [(r.stream_id, r.version, r.event_id) async for r in target.read_all()]
            original = [(r.stream_id, r.version, r.event_id) async for r in store.read_all()]
        finally:
            await target.close()
        assert (report.ok, report.loaded, migrated.copied, copied) == (True, 5, 5, original)

    @pytest.mark.asyncio
    async def test_read_all_is_an_async_iterator_that_pages(self, store):
        """read_all yields lazily, across pages, and can stop early."""
        await store.append("s", deposits(2500))
        iterator = store.read_all(after_position=1000)
        first = await anext(iterator)
        rest = [recorded.position async for recorded in iterator]
        assert (first.position, rest[0], rest[-1], len(rest)) == (1001, 1002, 2500, 1499)
