"""The async projection runner: what test_projections proves of the sync one, through asyncio."""

import asyncio
import logging
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import pytest_asyncio

from eventkit import (
    AsyncInMemoryEventStore,
    AsyncProcessManagerRunner,
    AsyncProjectionRunner,
    AsyncSQLiteEventStore,
    DeadLetter,
    ParkOnError,
    ProcessManager,
    Projection,
    ProjectionError,
    ProjectionState,
    RetryOnError,
    StopOnError,
)
from eventkit.backends import Checkpoint, ProjectionLockLostError, RetryTransaction
from tests.bank import MoneyDeposited, MoneyWithdrawn, registry
from tests.process_support import Faults, Mirror
from tests.projection_helpers import (
    WAIT,
    Crash,
    Ledger,
    SQLLedger,
    deposit_async,
    fold,
    open_account_async,
    sql_read_model,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture(name="store")
def _store():
    return AsyncInMemoryEventStore(registry=registry)


@pytest_asyncio.fixture(name="sqlite")
async def _sqlite(tmp_path):
    store = AsyncSQLiteEventStore(tmp_path / "bank.db", registry=registry)
    yield store
    await store.close()


async def checkpoint(store, name="ledger"):
    return (await store.projection_checkpoints())[name]


async def read_model(store):
    return await store.run_in_transaction(sql_read_model)


async def all_events(store):
    return [(recorded.stream_id, recorded.event) async for recorded in store.read_all()]


def reaching(position):
    """An event set when a handler is first handed the event at *position*, and a block for it."""
    reached = asyncio.Event()

    def block(recorded):
        if recorded.position == position:
            reached.set()

    return reached, block


class Bare:
    """Not a store that keeps projection checkpoints."""


class ExpiringLease(AsyncInMemoryEventStore):
    """
    Lets the first projection lease lapse once, as a lease-based backend's can.

    The runner learns of it at the lease's renewal (*found_at* "renewal"), or from the
    first batch's transaction, which is refused (*found_at* "commit"). Either way the
    lock is free again, for this runner to take back.
    """

    def __init__(self, *, found_at, **kwargs):
        super().__init__(**kwargs)
        self.found_at = found_at
        self.expired = 0
        self.transactions = 0
        self.leases = []

    async def lock_projection(self, projection):
        lock = await super().lock_projection(projection)
        if lock is None:
            return None
        self.leases.append(_Lease(self, lock))
        return self.leases[-1]

    async def expire(self):
        self.expired += 1
        for lease in self.leases:
            await lease.lock.release()

    async def run_projection_transaction(self, body):
        self.transactions += 1
        if self.found_at == "commit" and self.transactions == 2:
            await self.expire()
            raise ProjectionLockLostError("the lease expired")
        return await super().run_projection_transaction(body)


class _Lease:
    def __init__(self, store, lock):
        self.store, self.lock = store, lock

    async def release(self):
        await self.lock.release()

    async def renew(self):
        if self.store.found_at == "renewal" and not self.store.expired:
            await self.store.expire()
            return False
        return await self.lock.renew()


class MovedMeanwhile(AsyncInMemoryEventStore):
    """Moves the ledger's checkpoint to 2 once a runner loaded it, as another runner would."""

    moved = False

    async def head_position(self):
        checkpoints = await self.projection_checkpoints()
        if not self.moved and "ledger" in checkpoints:
            self.moved = True
            await self.run_projection_transaction(
                lambda tx: tx.save_checkpoint("ledger", Checkpoint(2, 1))
            )
        return await super().head_position()


class TestConstruction:
    @pytest.mark.parametrize(
        ("arguments", "error", "message"),
        [
            ((Bare(), Ledger()), TypeError, "Bare keeps no projection checkpoints"),
            ((None,), ValueError, "AsyncProjectionRunner needs at least one projection"),
            ((None, Ledger(), Ledger()), ValueError, "two projections are named 'ledger'"),
            ((None, Mirror()), TypeError, "is a process manager: run it with a ProcessManager"),
        ],
    )
    async def test_bad_arguments_are_refused(self, store, arguments, error, message):
        """A store without checkpoints, no projection, a duplicate name, a manager: refused."""
        first, *projections = arguments
        with pytest.raises(error, match=message):
            AsyncProjectionRunner(store if first is None else first, *projections)

    @pytest.mark.parametrize("arguments", [{"batch_size": 0}, {"poll_interval": 0}])
    async def test_bad_settings_are_refused(self, store, arguments):
        """batch_size and poll_interval must be positive numbers."""
        with pytest.raises(ValueError, match=next(iter(arguments))):
            AsyncProjectionRunner(store, Ledger(), **arguments)

    async def test_repr_and_projections_name_what_it_runs(self, store):
        """The repr lists the projections and says when the task runs."""
        ledger = Ledger()
        runner = AsyncProjectionRunner(store, ledger)
        idle = repr(runner)
        async with runner:
            running = repr(runner)
        assert (idle, running, runner.projections) == (
            "<AsyncProjectionRunner of 'ledger'>",
            "<AsyncProjectionRunner of 'ledger' (running)>",
            (ledger,),
        )


class TestProcessManagerRunner:
    class Plain(Projection):
        name = "plain"

        def handle(self, recorded, tx):
            pass

    class Versioned(Mirror):
        version = 2

    class Undecided(Mirror):
        from_beginning = "yes"

    @pytest.mark.parametrize(
        ("manager", "error", "message"),
        [
            (Plain(), TypeError, "expected a ProcessManager instance"),
            (Versioned(), ValueError, "version must stay 1"),
            (Undecided(), TypeError, "from_beginning must be True or False, got 'yes'"),
        ],
    )
    async def test_what_is_not_a_usable_manager_is_refused(self, store, manager, error, message):
        """A projection, a manager with versions or an unclear from_beginning: refused."""
        with pytest.raises(error, match=message):
            AsyncProcessManagerRunner(store, manager)

    async def test_a_manager_that_starts_now_ignores_the_past(self, store):
        """from_beginning = False: the manager reacts only to events stored after it started."""

        class Late(Mirror):
            from_beginning = False

        late = Late()
        await store.append("account-old", [MoneyDeposited(Decimal(1))])
        runner = AsyncProcessManagerRunner(store, late)
        assert (runner.managers, await runner.run_until_caught_up()) == ((late,), 0)
        await store.append("account-new", [MoneyDeposited(Decimal(2))])
        await runner.run_until_caught_up()
        mirrored = [stream for stream, _ in await all_events(store) if stream.startswith("mirror")]
        assert mirrored == ["mirror-account-new"]

    async def test_a_transaction_the_store_asks_to_run_again_is_run_again(self, store):
        """A reaction whose transaction must run again is appended once, after the retries."""

        class Contended(ProcessManager):
            name = "contended"
            event_types = (MoneyDeposited,)
            error_policy = StopOnError()

            def __init__(self):
                self.conflicts = 3

            def handle(self, recorded, process):
                process.append("reactions", [MoneyWithdrawn(recorded.event.amount)])
                if self.conflicts:
                    self.conflicts -= 1
                    raise RetryTransaction("a younger transaction wrote the stream first")

        await deposit_async(store, "a", 5)
        manager = Contended()
        await AsyncProcessManagerRunner(store, manager).run_until_caught_up()
        reactions = [event for stream, event in await all_events(store) if stream == "reactions"]
        assert (manager.conflicts, reactions) == (0, [MoneyWithdrawn(Decimal(5))])

    async def test_a_failing_reaction_appends_nothing(self, store):
        """A reaction that fails after appending leaves none of its events; it stops before."""
        manager = Mirror(Faults({0: "fail"}))
        manager.error_policy = StopOnError()
        position = await deposit_async(store, "account-a", 5)
        with pytest.raises(ProjectionError, match="RuntimeError: a handler failure") as info:
            await AsyncProcessManagerRunner(store, manager).run_until_caught_up()
        streams = {stream for stream, _ in await all_events(store)}
        assert (info.value.position, streams) == (position, {"account-a"})
        assert await checkpoint(store, "mirror") == Checkpoint(0, 1)

    async def test_a_stop_cuts_the_reruns_of_a_transaction_short(self, store):
        """Stopped while a transaction waits to run again, the task ends without running it."""
        calls, asked, stopping = [], asyncio.Event(), []

        class Contended(ProcessManager):
            name = "contended"
            event_types = (MoneyDeposited,)
            error_policy = StopOnError()

            def handle(self, recorded, process):
                calls.append(recorded.position)
                process.append("reactions", [MoneyWithdrawn(recorded.event.amount)])
                if not asked.is_set():
                    asked.set()
                    stopping.append(asyncio.ensure_future(runner.stop(timeout=WAIT)))
                raise RetryTransaction("a younger transaction wrote the stream first")

        await deposit_async(store, "a", 5)
        runner = AsyncProcessManagerRunner(store, Contended(), poll_interval=0.01)
        runner.start()
        await asyncio.wait_for(asked.wait(), WAIT)
        await stopping[0]
        streams = {stream for stream, _ in await all_events(store)}
        assert (calls, streams, await checkpoint(store, "contended")) == (
            [1],
            {"a"},
            Checkpoint(0, 1),
        )


class TestCatchingUp:
    async def test_the_read_model_is_the_fold_of_the_events(self, store):
        """Caught up in batches, the read model is the fold; a second run applies nothing."""
        await deposit_async(store, "a", 5, 7)
        await open_account_async(store, "b")
        await store.append("b", [MoneyDeposited(Decimal(3)), MoneyWithdrawn(Decimal(1))])
        ledger = Ledger()
        runner = AsyncProjectionRunner(store, ledger, batch_size=2)
        counts = (await runner.run_until_caught_up(), await runner.run_until_caught_up())
        assert (counts, ledger.balances) == ((4, 0), fold(await all_events(store)))
        assert await checkpoint(store) == Checkpoint(5, 1)

    async def test_a_failing_setup_is_a_projection_error(self, store):
        """An exception in setup raises ProjectionError naming the projection."""
        ledger = Ledger()
        ledger.setup = lambda tx: 1 / 0
        with pytest.raises(ProjectionError, match="'ledger' at position 0: setup failed") as info:
            await AsyncProjectionRunner(store, ledger).run_until_caught_up()
        assert isinstance(info.value.__cause__, ZeroDivisionError)

    async def test_a_crash_mid_batch_moves_no_checkpoint(self, store):
        """An exception that is not an error (a dying process) leaves the checkpoint alone."""
        await deposit_async(store, "a", 1, 2, 3)
        runner = AsyncProjectionRunner(store, Ledger(crash_after=1), batch_size=10)
        with pytest.raises(Crash):
            await runner.run_until_caught_up()
        assert await checkpoint(store) == Checkpoint(0, 1)

    async def test_a_checkpoint_moved_meanwhile_is_reloaded(self):
        """A checkpoint another runner moved after this one loaded it is reloaded, not lost."""
        store = MovedMeanwhile(registry=registry)
        await deposit_async(store, "a", 1, 2, 4)
        ledger = Ledger()
        assert await AsyncProjectionRunner(store, ledger).run_until_caught_up() == 1
        assert (ledger.calls, await checkpoint(store)) == ([3], Checkpoint(3, 1))

    async def test_a_lost_lock_stops_the_catch_up(self):
        """A store that reports the lock taken over ends the run with a ProjectionError."""
        store = ExpiringLease(found_at="commit", registry=registry)
        await deposit_async(store, "a", 1)
        with pytest.raises(ProjectionError, match="another runner took the projection over"):
            await AsyncProjectionRunner(store, Ledger()).run_until_caught_up()


class TestFailurePolicies:
    async def test_stop_names_the_event_and_keeps_what_came_before(self, store):
        """StopOnError: the error names the event; the checkpoint stops just before it."""
        await deposit_async(store, "a", 1)
        position = await deposit_async(store, "b", 2, 3)
        ledger = Ledger(fail={position: -1})
        with pytest.raises(ProjectionError) as info:
            await AsyncProjectionRunner(store, ledger, batch_size=10).run_until_caught_up()
        error = info.value
        assert (error.position, error.stream_id, error.version, error.event_type) == (
            3,
            "b",
            2,
            "bank.MoneyDeposited",
        )
        assert isinstance(error.__cause__, ValueError)
        assert ((await checkpoint(store)).position, ledger.balances) == (2, {"a": 1, "b": 2})

    async def test_other_projections_still_catch_up(self, store):
        """One projection stopping does not hold the others back."""
        await deposit_async(store, "a", 1, 2)
        broken, healthy = Ledger(fail={1: -1}), Ledger()
        healthy.name = "healthy"
        with pytest.raises(ProjectionError, match="'ledger' at position 1"):
            await AsyncProjectionRunner(store, broken, healthy).run_until_caught_up()
        assert healthy.balances == {"a": 3}

    async def test_a_transient_failure_is_retried_until_it_passes(self, store):
        """RetryOnError: an event that then succeeds is applied once, and the rest follows."""
        await deposit_async(store, "a", 1, 2, 4)
        ledger = Ledger(fail={2: 2})
        ledger.error_policy = RetryOnError(attempts=3, delay=0)
        await AsyncProjectionRunner(store, ledger).run_until_caught_up()
        assert (ledger.balances, ledger.calls) == ({"a": 7}, [1, 2, 2, 2, 3])

    async def test_a_lasting_failure_stops_after_the_retries(self, store):
        """When every retry fails, the projection stops before the event."""
        await deposit_async(store, "a", 1, 2)
        ledger = Ledger(fail={2: -1})
        ledger.error_policy = RetryOnError(attempts=2, delay=0)
        with pytest.raises(ProjectionError, match="position 2"):
            await AsyncProjectionRunner(store, ledger).run_until_caught_up()
        assert (ledger.calls, (await checkpoint(store)).position) == ([1, 2, 2, 2], 1)

    async def test_exhausted_retries_can_park_the_event(self, store):
        """RetryOnError(then=ParkOnError()) parks the event after the retries."""
        await deposit_async(store, "a", 1, 2)
        ledger = Ledger(fail={1: -1})
        ledger.error_policy = RetryOnError(attempts=1, delay=0, then=ParkOnError())
        runner = AsyncProjectionRunner(store, ledger)
        await runner.run_until_caught_up()
        letters = await runner.dead_letters("ledger")
        assert ([(d.position, d.attempts) for d in letters], ledger.balances) == (
            [(1, 2)],
            {"a": 2},
        )


class TestDeadLetters:
    @pytest_asyncio.fixture(name="parked")
    async def _parked(self, store):
        await deposit_async(store, "a", 1, 2, 4)
        ledger = Ledger(fail={2: -1})
        ledger.error_policy = ParkOnError()
        runner = AsyncProjectionRunner(store, ledger)
        await runner.run_until_caught_up()
        return runner, ledger

    async def test_the_event_is_parked_and_the_rest_applied(self, parked):
        """The failing event is parked with its error; later events are applied."""
        runner, ledger = parked
        (letter,) = await runner.dead_letters("ledger")
        assert (letter.position, letter.stream_id, letter.version, letter.attempts) == (
            2,
            "a",
            2,
            1,
        )
        assert (letter.error, ledger.balances) == ("ValueError: cannot handle position 2", {"a": 5})

    async def test_a_retried_letter_that_passes_is_unparked(self, parked):
        """Retrying after the cause is fixed applies the event and removes the letter."""
        runner, ledger = parked
        ledger.fail.clear()
        assert await runner.retry_dead_letters("ledger") == 1
        assert (ledger.balances, await runner.dead_letters("ledger")) == ({"a": 7}, [])

    async def test_a_retried_letter_that_fails_again_stays_parked(self, parked):
        """A letter that fails again stays, with one more attempt counted."""
        runner, _ = parked
        assert await runner.retry_dead_letters("ledger") == 0
        assert [d.attempts for d in await runner.dead_letters("ledger")] == [2]

    async def test_retries_can_pick_positions(self, parked):
        """Only the positions asked for are retried."""
        runner, ledger = parked
        ledger.fail.clear()
        assert await runner.retry_dead_letters("ledger", positions=[99]) == 0
        assert len(await runner.dead_letters("ledger")) == 1

    async def test_status_counts_dead_letters(self, parked):
        """status reports how many events are parked."""
        runner, _ = parked
        assert (await runner.status())["ledger"].dead_letters == 1

    async def test_unknown_projection_names_are_refused(self, parked):
        """Naming a projection the runner does not run raises ValueError naming it."""
        runner, _ = parked
        with pytest.raises(ValueError, match="no projection named 'nope'"):
            await runner.dead_letters("nope")

    async def test_a_letter_whose_event_is_gone_is_an_error(self, store, parked):
        """A parked position the store does not hold is reported, not silently dropped."""
        runner, _ = parked
        gone = DeadLetter("ledger", 99, "a", 9, "bank.MoneyDeposited", "x", 1, datetime.now(UTC))
        await store.run_projection_transaction(lambda tx: tx.park(gone))
        with pytest.raises(ProjectionError, match="position 99: the parked event is not stored"):
            await runner.retry_dead_letters("ledger", positions=[99])

    async def test_a_running_runner_retries_under_its_own_lock(self, store, parked):
        """While the task runs and holds the projection, retries go through it."""
        runner, ledger = parked
        ledger.fail.clear()
        async with runner:
            # Once the task has applied a new event, it holds the projection.
            await runner.wait_for(await deposit_async(store, "a", 8), timeout=WAIT)
            assert await runner.retry_dead_letters("ledger") == 1
            state = (await runner.status())["ledger"].state
        assert (state, ledger.balances) == (ProjectionState.ACTIVE, {"a": 15})

    async def test_retries_need_the_projections_lock(self, store, parked):
        """Retrying a projection another runner holds raises ProjectionError."""
        runner, _ = parked
        lock = await store.lock_projection("ledger")
        try:
            with pytest.raises(ProjectionError, match="another runner holds this projection"):
                await runner.retry_dead_letters("ledger")
        finally:
            await lock.release()


class TestExactlyOnceOnSQLite:
    async def test_a_failing_events_own_writes_are_rolled_back(self, sqlite):
        """Writes the handler made before raising are undone; the events before it stay."""
        await deposit_async(sqlite, "a", 1, 2, 4)
        ledger = SQLLedger(fail={2: -1})
        with pytest.raises(ProjectionError, match="position 2"):
            await AsyncProjectionRunner(sqlite, ledger, batch_size=10).run_until_caught_up()
        assert await read_model(sqlite) == ({"a": 1}, {1: 1})
        assert await checkpoint(sqlite, "sql_ledger") == Checkpoint(1, 1)

    async def test_a_dead_letter_retry_that_fails_writes_nothing(self, sqlite):
        """Retrying a parked event that fails again rolls its writes back and counts it."""
        await deposit_async(sqlite, "a", 1, 2)
        ledger = SQLLedger(fail={1: -1})
        ledger.error_policy = ParkOnError()
        runner = AsyncProjectionRunner(sqlite, ledger)
        await runner.run_until_caught_up()
        assert await runner.retry_dead_letters("sql_ledger") == 0
        assert await read_model(sqlite) == ({"a": 2}, {2: 1})
        assert [d.attempts for d in await runner.dead_letters("sql_ledger")] == [2]

    async def test_a_dead_letter_retry_that_passes_commits_with_the_unparking(self, sqlite):
        """A parked event retried successfully is applied once and leaves the dead letters."""
        await deposit_async(sqlite, "a", 1, 2)
        ledger = SQLLedger(fail={1: 1})
        ledger.error_policy = ParkOnError()
        runner = AsyncProjectionRunner(sqlite, ledger)
        await runner.run_until_caught_up()
        assert await runner.retry_dead_letters("sql_ledger") == 1
        assert (await read_model(sqlite), await runner.dead_letters("sql_ledger")) == (
            ({"a": 3}, {1: 1, 2: 1}),
            [],
        )

    async def test_a_bumped_version_rebuilds_the_tables(self, sqlite):
        """A new projection version rebuilds the tables from the first event by itself."""
        await sqlite.append("a", [MoneyDeposited(Decimal(5)), MoneyWithdrawn(Decimal(2))])
        await AsyncProjectionRunner(sqlite, SQLLedger(sign=-1)).run_until_caught_up()
        buggy = await read_model(sqlite)
        fixed = SQLLedger()
        fixed.version = 2
        await AsyncProjectionRunner(sqlite, fixed).run_until_caught_up()
        assert (buggy, await read_model(sqlite)) == (
            ({"a": 7}, {1: 1, 2: 1}),
            ({"a": 3}, {1: 1, 2: 1}),
        )
        assert await checkpoint(sqlite, "sql_ledger") == Checkpoint(2, 2)

    async def test_a_swap_leaves_live_tables_and_indexes_only(self, sqlite):
        """After a rebuild's swap the staged tables are gone and the indexes keep their names."""
        await deposit_async(sqlite, "a", 1)
        runner = AsyncProjectionRunner(sqlite, SQLLedger())
        await runner.run_until_caught_up()
        await runner.rebuild("sql_ledger", quiet=True)
        names = await sqlite.run_in_transaction(
            lambda conn: {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'ledger%'")
            }
        )
        assert names == {"ledger_balances", "ledger_balances_by_amount", "ledger_applied"}
        assert await read_model(sqlite) == ({"a": 1}, {1: 1})

    async def test_replay_drops_and_refills_the_tables(self, sqlite):
        """A replay starts from empty tables and applies each event once."""
        await deposit_async(sqlite, "a", 1, 2)
        runner = AsyncProjectionRunner(sqlite, SQLLedger())
        await runner.run_until_caught_up()
        await runner.replay("sql_ledger", quiet=True)
        assert await read_model(sqlite) == ({"a": 3}, {1: 1, 2: 1})


class TestBackground:
    async def test_appends_wake_the_runner_at_once(self, store):
        """An append through the same store object wakes a runner that polls rarely."""
        ledger = Ledger()
        async with AsyncProjectionRunner(store, ledger, poll_interval=60) as runner:
            await runner.wait_for(0, timeout=WAIT)
            position = await deposit_async(store, "a", 3)
            await runner.wait_for(position, timeout=WAIT)
        assert (ledger.balances, runner.running) == ({"a": 3}, False)

    async def test_starting_twice_is_refused(self, store):
        """A running runner cannot be started again."""
        async with AsyncProjectionRunner(store, Ledger()) as runner:
            with pytest.raises(RuntimeError, match="already running"):
                runner.start()

    async def test_stopping_a_stopped_runner_does_nothing(self, store):
        """stop on a runner that never started is harmless."""
        runner = AsyncProjectionRunner(store, Ledger())
        await runner.stop()
        assert not runner.running

    async def test_a_failed_projection_shows_in_status_and_wait_for(self, store):
        """In the background a stopped projection is failed; wait_for raises its error."""
        position = await deposit_async(store, "a", 1)
        async with AsyncProjectionRunner(store, Ledger(fail={position: -1})) as runner:
            with pytest.raises(ProjectionError, match="position 1"):
                await runner.wait_for(position, timeout=WAIT)
            status = (await runner.status())["ledger"]
        assert (status.state, status.position, status.lag_events) == (ProjectionState.FAILED, 0, 1)
        assert isinstance(status.error, ProjectionError)

    async def test_the_task_survives_a_failing_store(self, store, monkeypatch):
        """A store error is logged and retried after a pause, not fatal to the task."""
        real, failures = store.head_position, [1]

        async def flaky():
            if failures:
                failures.pop()
                raise OSError("disk hiccup")
            return await real()

        position = await deposit_async(store, "a", 2)
        monkeypatch.setattr(store, "head_position", flaky)
        ledger = Ledger()
        async with AsyncProjectionRunner(store, ledger, poll_interval=0.01) as runner:
            await runner.wait_for(position, timeout=WAIT)
        assert (failures, ledger.balances) == ([], {"a": 2})

    async def test_a_checkpoint_moved_behind_its_back_is_reloaded(self, store):
        """A runner whose stored checkpoint changed reloads it instead of overwriting it."""
        await deposit_async(store, "a", 1, 2)
        ledger = Ledger()
        async with AsyncProjectionRunner(store, ledger, poll_interval=0.01) as runner:
            await runner.wait_for(2, timeout=WAIT)
            await store.run_projection_transaction(
                lambda tx: tx.save_checkpoint("ledger", Checkpoint(0, 1))
            )
            await runner.wait_for(await deposit_async(store, "a", 4), timeout=WAIT)
        assert (ledger.calls, ledger.balances) == ([1, 2, 1, 2, 3], {"a": 7})

    async def test_stop_cuts_a_retry_pause_short(self, store):
        """Stopping during a long retry pause returns at once, checkpoint before the event."""
        await deposit_async(store, "a", 1, 2)
        reached, block = reaching(2)
        ledger = Ledger(fail={2: -1}, block=block)
        ledger.error_policy = RetryOnError(attempts=1, delay=60)
        runner = AsyncProjectionRunner(store, ledger, poll_interval=0.05)
        runner.start()
        await asyncio.wait_for(reached.wait(), WAIT)
        await runner.stop(timeout=WAIT)
        assert (ledger.calls, (await checkpoint(store)).position) == ([1, 2], 1)

    @pytest.mark.parametrize("found_at", ["renewal", "commit"])
    async def test_a_runner_that_lost_its_lock_stands_by_then_takes_it_again(
        self, found_at, caplog
    ):
        """A lock found lost is given up with a warning, then taken again; nothing is doubled."""
        store = ExpiringLease(found_at=found_at, registry=registry)
        ledger = Ledger()
        caplog.set_level(logging.WARNING, logger="eventkit.projections")
        async with AsyncProjectionRunner(store, ledger, poll_interval=0.01) as runner:
            await runner.wait_for(await deposit_async(store, "a", 1), timeout=WAIT)
            await runner.wait_for(await deposit_async(store, "a", 2), timeout=WAIT)
            await runner.wait_for(await deposit_async(store, "a", 4), timeout=WAIT)
        assert (store.expired, ledger.calls, ledger.balances) == (1, [1, 2, 3], {"a": 7})
        assert "another runner took it over; standing by" in caplog.text

    async def test_a_failed_projection_is_left_alone_while_the_others_follow(self, store):
        """After one projection stopped at an event, the task still feeds the others."""
        broken, healthy = Ledger(fail={1: -1}), Ledger()
        healthy.name = "healthy"
        first = await deposit_async(store, "a", 1)
        async with AsyncProjectionRunner(store, broken, healthy, poll_interval=0.01) as runner:
            with pytest.raises(ProjectionError, match="'ledger' at position 1"):
                await runner.wait_for(first, timeout=WAIT)
            later = await deposit_async(store, "a", 2)
            await runner.wait_for(later, timeout=WAIT, projections="healthy")
        assert (broken.calls, healthy.balances) == ([1], {"a": 3})

    async def test_stop_waits_for_the_batch_in_flight(self, sqlite):
        """A stop mid-batch times out while the batch runs, then finds it whole, never half done."""
        await deposit_async(sqlite, "a", *range(1, 11))
        inside, release = threading.Event(), threading.Event()

        def block(recorded):
            if recorded.position == 3:
                inside.set()
                release.wait(WAIT)

        ledger = SQLLedger(block=block)
        runner = AsyncProjectionRunner(sqlite, ledger, batch_size=5)
        runner.start()
        try:
            assert await asyncio.to_thread(inside.wait, WAIT)
            with pytest.raises(TimeoutError, match=r"did not stop within 0\.05 seconds"):
                await runner.stop(timeout=0.05)
        finally:
            release.set()
        await runner.stop(timeout=WAIT)
        assert await checkpoint(sqlite, "sql_ledger") == Checkpoint(5, 1)
        assert await read_model(sqlite) == ({"a": 15}, dict.fromkeys(range(1, 6), 1))

    async def test_a_stop_during_an_automatic_rebuild_keeps_the_old_read_model(self, store):
        """Stopped while it rebuilds an outdated read model, the task leaves the old one."""
        await deposit_async(store, "a", 1, 2, 4)
        old = Ledger()
        await AsyncProjectionRunner(store, old).run_until_caught_up()
        newer = Ledger()
        newer.version = 2
        runner = AsyncProjectionRunner(store, newer, batch_size=1)
        asked, stopping = asyncio.Event(), []

        def stop_after_the_first_event(recorded):
            if not asked.is_set():
                asked.set()
                stopping.append(asyncio.ensure_future(runner.stop(timeout=WAIT)))

        newer.staged = lambda: Ledger(block=stop_after_the_first_event)
        runner.start()
        await asyncio.wait_for(asked.wait(), WAIT)
        await stopping[0]
        assert (await checkpoint(store), newer.balances) == (Checkpoint(3, 1), {})
        await runner.run_until_caught_up()
        assert (await checkpoint(store), newer.balances) == (Checkpoint(3, 2), {"a": 7})

    async def test_run_until_caught_up_waits_for_the_running_task(self, store):
        """While the task runs, run_until_caught_up waits for it instead of competing."""
        await deposit_async(store, "a", 1, 2)
        ledger = Ledger()
        async with AsyncProjectionRunner(store, ledger) as runner:
            assert await runner.run_until_caught_up(timeout=WAIT) == 0
            assert ledger.balances == {"a": 3}


class TestWaitFor:
    async def test_it_returns_once_the_position_is_reached(self, store):
        """wait_for returns at once when every projection has the position."""
        position = await deposit_async(store, "a", 1)
        runner = AsyncProjectionRunner(store, Ledger())
        await runner.run_until_caught_up()
        await runner.wait_for(position, timeout=0)
        assert (await checkpoint(store)).position == position

    async def test_it_times_out_naming_the_laggards(self, store):
        """With nobody running, wait_for raises TimeoutError naming who is behind."""
        position = await deposit_async(store, "a", 1)
        runner = AsyncProjectionRunner(store, Ledger(), poll_interval=0.01)
        with pytest.raises(TimeoutError, match=r"position 1 within 0.05 seconds: 'ledger' at 0"):
            await runner.wait_for(position, timeout=0.05)

    async def test_without_a_timeout_it_waits_as_long_as_it_takes(self, store):
        """timeout=None waits for the worker however long it takes."""
        ledger = Ledger()
        async with AsyncProjectionRunner(store, ledger, poll_interval=0.01) as runner:
            await runner.wait_for(await deposit_async(store, "a", 1, 2), timeout=None)
            assert ledger.balances == {"a": 3}

    async def test_it_waits_only_for_the_projection_named(self, store):
        """projections= limits the wait; a single name may be given as a string."""
        position = await deposit_async(store, "a", 1)
        fast, slow = Ledger(), Ledger()
        slow.name = "slow"
        await AsyncProjectionRunner(store, fast).run_until_caught_up()
        runner = AsyncProjectionRunner(store, fast, slow)
        await runner.wait_for(position, timeout=0, projections="ledger")
        with pytest.raises(TimeoutError, match="'slow' at 0"):
            await runner.wait_for(position, timeout=0)

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({"position": -1}, "position must be an integer >= 0"),
            ({"position": 0, "projections": ["nope"]}, "no projection named 'nope'"),
        ],
    )
    async def test_bad_arguments_are_refused(self, store, arguments, message):
        """The position must be an integer >= 0, and the names the runner's."""
        with pytest.raises(ValueError, match=message):
            await AsyncProjectionRunner(store, Ledger()).wait_for(**arguments)


class TestStatus:
    async def test_a_lagging_projection_reports_its_lag(self, store):
        """status reports position, head and lag in events and seconds."""
        await deposit_async(store, "a", 1)
        runner = AsyncProjectionRunner(store, Ledger())
        await runner.run_until_caught_up()
        await deposit_async(store, "a", 2, 3)
        status = (await runner.status())["ledger"]
        assert (status.position, status.head, status.lag_events, status.version) == (1, 3, 2, 1)
        assert (status.lag_seconds >= 0, status.state) == (True, ProjectionState.STOPPED)

    async def test_a_caught_up_projection_has_no_lag(self, store):
        """Caught up, both lags are zero and the rate reflects the work done."""
        await deposit_async(store, "a", 1, 2)
        runner = AsyncProjectionRunner(store, Ledger())
        await runner.run_until_caught_up()
        status = (await runner.status())["ledger"]
        assert (status.lag_events, status.lag_seconds) == (0, 0.0)
        assert status.events_per_second > 0

    async def test_running_and_standby_states(self, store):
        """The lock holder reports active; a second runner of the projection, standby."""
        active = AsyncProjectionRunner(store, Ledger(), poll_interval=0.01)
        standby = AsyncProjectionRunner(store, Ledger(), poll_interval=0.01)
        async with active:
            await active.wait_for(0, timeout=WAIT)
            async with standby:
                states = (
                    (await active.status())["ledger"].state,
                    (await standby.status())["ledger"].state,
                )
        assert states == (ProjectionState.ACTIVE, ProjectionState.STANDBY)


class TestCompetingRunners:
    async def test_run_until_caught_up_counts_the_lock_holders_progress(self, store):
        """A foreground run finds the holder has caught up and returns without applying."""
        position = await deposit_async(store, "a", 1)
        mine = Ledger()
        async with AsyncProjectionRunner(store, Ledger()) as other:
            await other.wait_for(position, timeout=WAIT)
            runner = AsyncProjectionRunner(store, mine, poll_interval=0.01)
            applied = await runner.run_until_caught_up(timeout=WAIT)
        assert (applied, mine.calls) == (0, [])

    async def test_run_until_caught_up_gives_up_after_its_timeout(self, store):
        """Blocked by a lock holder that makes no progress, the run times out."""
        lock = await store.lock_projection("ledger")
        await deposit_async(store, "a", 1)
        runner = AsyncProjectionRunner(store, Ledger(), poll_interval=0.01)
        try:
            with pytest.raises(TimeoutError, match="'ledger' is locked by another runner"):
                await runner.run_until_caught_up(timeout=0.05)
        finally:
            await lock.release()

    async def test_maintenance_needs_the_lock(self, store):
        """Rebuilding or replaying a projection another runner holds raises ProjectionError."""
        lock = await store.lock_projection("ledger")
        runner = AsyncProjectionRunner(store, Ledger())
        try:
            with pytest.raises(ProjectionError, match="another runner holds this projection"):
                await runner.rebuild("ledger", quiet=True)
            with pytest.raises(ProjectionError, match="another runner holds this projection"):
                await runner.replay("ledger", quiet=True)
        finally:
            await lock.release()


class TestRebuild:
    async def test_a_rebuild_swaps_in_a_fresh_read_model(self, store):
        """rebuild builds a new read model from the first event and swaps it in."""
        await deposit_async(store, "a", 1, 2)
        ledger = Ledger()
        runner = AsyncProjectionRunner(store, ledger)
        await runner.run_until_caught_up()
        ledger.balances["a"] = Decimal(999)  # a bug left a wrong value behind
        await runner.rebuild("ledger", quiet=True)
        assert (ledger.balances, await checkpoint(store)) == ({"a": 3}, Checkpoint(2, 1))

    async def test_a_newer_version_rebuilds_by_itself(self, store):
        """A runner that finds a read model of an older version rebuilds it first."""
        await deposit_async(store, "a", 1, 2)
        await AsyncProjectionRunner(store, Ledger()).run_until_caught_up()
        newer = Ledger()
        newer.version = 2
        await AsyncProjectionRunner(store, newer).run_until_caught_up()
        assert (newer.balances, await checkpoint(store)) == ({"a": 3}, Checkpoint(2, 2))

    async def test_an_older_version_refuses_a_newer_read_model(self, store):
        """Code older than the read model stops with a ProjectionError saying so."""
        newer = Ledger()
        newer.version = 3
        await AsyncProjectionRunner(store, newer).run_until_caught_up()
        with pytest.raises(ProjectionError, match=r"built by version 3 .* version 1"):
            await AsyncProjectionRunner(store, Ledger()).run_until_caught_up()

    async def test_a_failed_rebuild_keeps_the_old_read_model(self, store):
        """An event failing during a rebuild leaves the live read model and checkpoint alone."""
        await deposit_async(store, "a", 1, 2)
        ledger = Ledger()
        runner = AsyncProjectionRunner(store, ledger)
        await runner.run_until_caught_up()
        ledger.staged = lambda: Ledger(fail={2: -1})
        with pytest.raises(ProjectionError, match="position 2"):
            await runner.rebuild("ledger", quiet=True)
        assert (ledger.balances, await checkpoint(store)) == ({"a": 3}, Checkpoint(2, 1))

    async def test_a_rebuild_shows_progress_unless_quiet(self, store, capsys):
        """rebuild draws a progress bar on standard error; quiet=True draws none."""
        await deposit_async(store, "a", 1, 2)
        runner = AsyncProjectionRunner(store, Ledger())
        await runner.rebuild("ledger")
        drawn = capsys.readouterr().err
        await runner.rebuild("ledger", quiet=True)
        assert ("ledger (rebuild) [" in drawn, capsys.readouterr().err) == (True, "")

    async def test_a_second_rebuild_at_once_is_refused(self, store):
        """Only one rebuild of a projection runs at a time."""
        lock = await store.lock_projection("ledger__rebuild")
        try:
            with pytest.raises(ProjectionError, match="another runner is rebuilding"):
                await AsyncProjectionRunner(store, Ledger()).rebuild("ledger", quiet=True)
        finally:
            await lock.release()

    async def test_a_running_runner_rebuilds_and_goes_on(self, store):
        """A rebuild while the task runs swaps in the fresh model; later events reach it."""
        await deposit_async(store, "a", 1, 2)
        ledger = Ledger()
        async with AsyncProjectionRunner(store, ledger, poll_interval=0.01) as runner:
            await runner.wait_for(2, timeout=WAIT)
            ledger.balances["a"] = Decimal(999)
            await runner.rebuild("ledger", quiet=True)
            await runner.wait_for(await deposit_async(store, "a", 4), timeout=WAIT)
        assert ledger.balances == {"a": 7}


class TestReplay:
    async def test_replay_empties_and_refills_the_read_model(self, store):
        """replay tears the read model down and applies every event again."""
        await deposit_async(store, "a", 1, 2)
        ledger = Ledger()
        runner = AsyncProjectionRunner(store, ledger)
        await runner.run_until_caught_up()
        await runner.replay("ledger", quiet=True)
        assert (ledger.teardowns, ledger.balances, ledger.calls) == (1, {"a": 3}, [1, 2, 1, 2])

    async def test_replay_forgets_dead_letters(self, store):
        """A replay starts over: the old dead letters go, as the events are handled again."""
        await deposit_async(store, "a", 1)
        ledger = Ledger(fail={1: 1})
        ledger.error_policy = ParkOnError()
        runner = AsyncProjectionRunner(store, ledger)
        await runner.run_until_caught_up()
        parked = len(await runner.dead_letters("ledger"))
        await runner.replay("ledger", quiet=True)
        assert (parked, await runner.dead_letters("ledger"), ledger.balances) == (1, [], {"a": 1})
