"""Projection runners over the in-memory store: catch-up, policies, threads, rebuilds."""

import contextlib
import threading
import time
import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventkit import (
    EventRegistry,
    InMemoryEventStore,
    ParkOnError,
    Projection,
    ProjectionError,
    ProjectionRunner,
    ProjectionState,
    RetryOnError,
    StopOnError,
    UnknownEventType,
)
from eventkit.backends import Checkpoint, NewRecord, RecordWrite
from tests.bank import AccountOpened, MoneyDeposited, MoneyWithdrawn, registry
from tests.projection_helpers import WAIT, Crash, Ledger, deposit, fold, open_account


@pytest.fixture(name="store")
def _store():
    with InMemoryEventStore(registry=registry) as store:
        yield store


def checkpoint(store, name="ledger"):
    return store.projection_checkpoints()[name]


class TestProjection:
    def test_table_names_declared_tables(self):
        """table() returns a declared table's name unchanged."""

        class Report(Projection):
            name = "report"
            tables = ("totals",)

            def handle(self, recorded, tx):
                pass

        assert Report().table("totals") == "totals"

    def test_a_staged_copy_writes_other_tables(self):
        """The default staged copy names its tables with a rebuild suffix."""

        class Report(Projection):
            name = "report"
            tables = ("totals",)

            def handle(self, recorded, tx):
                pass

        assert Report().staged().table("totals") == "totals__rebuild"

    def test_sql_names_the_tables_in_braces(self):
        """sql() puts each declared table's name, or its rebuild copy's, in the statement."""

        class Report(Projection):
            name = "report"
            tables = ("totals",)

            def handle(self, recorded, tx):
                pass

        statement = "SELECT {{}}, n FROM {totals}"
        assert (Report().sql(statement), Report().staged().sql(statement)) == (
            "SELECT {}, n FROM totals",
            "SELECT {}, n FROM totals__rebuild",
        )

    def test_sql_refuses_undeclared_tables(self):
        """sql() names an undeclared table in braces as the fault."""

        class Report(Projection):
            name = "report"

            def handle(self, recorded, tx):
                pass

        with pytest.raises(ValueError, match=r"table 'totals' is not declared"):
            Report().sql("SELECT * FROM {totals}")

    def test_undeclared_tables_are_refused(self):
        """table() refuses a name the projection did not declare, naming both."""

        class Report(Projection):
            name = "report"

            def handle(self, recorded, tx):
                pass

        with pytest.raises(ValueError, match=r"projection 'report': table 'x' is not declared"):
            Report().table("x")


class TestConstruction:
    def test_a_store_without_checkpoints_is_refused(self):
        """A store that keeps no checkpoints is refused with a TypeError naming it."""

        class Bare:
            pass

        with pytest.raises(TypeError, match="Bare keeps no projection checkpoints"):
            ProjectionRunner(Bare(), Ledger())

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"name": ""}, "name must be a non-empty string"),
            ({"name": " x"}, "name must be a non-empty string"),
            ({"name": "x__rebuild"}, "must not end with '__rebuild'"),
            ({"version": 0}, "version must be an integer >= 1"),
            ({"version": "2"}, "version must be an integer >= 1"),
        ],
    )
    def test_bad_projection_attributes_are_refused(self, store, change, message):
        """A projection with a bad name or version is refused, naming the fault."""
        projection = Ledger()
        for key, value in change.items():
            setattr(projection, key, value)
        with pytest.raises(ValueError, match=message):
            ProjectionRunner(store, projection)

    def test_a_bad_error_policy_is_refused(self, store):
        """An error policy that is not one of the three is a TypeError."""
        projection = Ledger()
        projection.error_policy = "park"
        with pytest.raises(TypeError, match="error_policy must be"):
            ProjectionRunner(store, projection)

    def test_non_projections_are_refused(self, store):
        """Anything but a Projection instance is a TypeError."""
        with pytest.raises(TypeError, match="expected a Projection instance"):
            ProjectionRunner(store, Ledger)

    def test_two_projections_with_one_name_are_refused(self, store):
        """Projection names are unique in a runner."""
        with pytest.raises(ValueError, match="two projections are named 'ledger'"):
            ProjectionRunner(store, Ledger(), Ledger())

    def test_a_runner_needs_a_projection(self, store):
        """A runner with nothing to run is refused."""
        with pytest.raises(ValueError, match="at least one projection"):
            ProjectionRunner(store)

    @pytest.mark.parametrize(
        "arguments",
        [{"batch_size": 0}, {"batch_size": 2.0}, {"poll_interval": 0}, {"poll_interval": "1"}],
    )
    def test_bad_settings_are_refused(self, store, arguments):
        """batch_size and poll_interval must be positive numbers."""
        with pytest.raises(ValueError, match=next(iter(arguments))):
            ProjectionRunner(store, Ledger(), **arguments)

    def test_unregistered_event_types_are_refused(self, store):
        """An event_types class the store's registry does not know raises UnknownEventType."""
        projection = Ledger()
        projection.event_types = (int,)
        with pytest.raises(UnknownEventType):
            ProjectionRunner(store, projection)

    def test_repr_names_the_projections(self, store):
        """The repr lists the projections."""
        assert repr(ProjectionRunner(store, Ledger())) == "<ProjectionRunner of 'ledger'>"


class TestCatchingUp:
    def test_the_read_model_is_the_fold_of_the_events(self, store):
        """After catching up, the read model equals a fold over the store's events."""
        deposit(store, "a", 5, 7)
        store.append("b", [MoneyDeposited(Decimal(3)), MoneyWithdrawn(Decimal(1))])
        ledger = Ledger()
        ProjectionRunner(store, ledger, batch_size=2).run_until_caught_up()
        assert ledger.balances == fold((r.stream_id, r.event) for r in store.read_all())

    def test_it_returns_how_many_events_it_applied(self, store):
        """run_until_caught_up counts what it applied; a second call applies nothing."""
        deposit(store, "a", 1, 2, 3)
        runner = ProjectionRunner(store, Ledger())
        assert (runner.run_until_caught_up(), runner.run_until_caught_up()) == (3, 0)

    def test_only_wanted_types_reach_the_handler(self, store):
        """The handler sees only the projection's event types."""
        open_account(store, "a")
        deposit(store, "a", 1)
        ledger = Ledger()
        ProjectionRunner(store, ledger).run_until_caught_up()
        assert ledger.calls == [2]

    def test_the_checkpoint_passes_unwanted_events_at_the_end(self, store):
        """Events of other types after the last wanted one still move the checkpoint."""
        deposit(store, "a", 1)
        head = open_account(store, "b")
        ProjectionRunner(store, Ledger()).run_until_caught_up()
        assert checkpoint(store) == Checkpoint(head, 1)

    def test_event_types_may_be_names_or_a_single_type(self, store):
        """event_types accepts type names, and a lone class instead of a tuple."""
        open_account(store, "a")
        deposit(store, "a", 4)
        by_name, lone = Ledger(), Ledger()
        by_name.event_types = ("bank.MoneyDeposited",)
        lone.name, lone.event_types = "lone", MoneyDeposited
        ProjectionRunner(store, by_name, lone).run_until_caught_up()
        assert (by_name.calls, lone.calls) == ([2], [2])

    def test_no_event_types_means_every_event(self, store):
        """event_types None hands over every event."""
        open_account(store, "a")
        deposit(store, "a", 4)
        seen = []

        class Everything(Projection):
            name = "everything"

            def handle(self, recorded, tx):
                seen.append(recorded.event_type)

        ProjectionRunner(store, Everything()).run_until_caught_up()
        assert seen == ["bank.AccountOpened", "bank.MoneyDeposited"]

    def test_setup_runs_when_a_runner_takes_the_projection_on(self, store):
        """setup runs at every take-on, before the first event."""
        ledger = Ledger()
        runner = ProjectionRunner(store, ledger)
        runner.run_until_caught_up()
        runner.run_until_caught_up()
        assert ledger.setups == 2

    def test_a_failing_setup_is_a_projection_error(self, store):
        """An exception in setup raises ProjectionError naming the projection."""
        ledger = Ledger()
        ledger.setup = lambda tx: 1 / 0
        with pytest.raises(ProjectionError, match="'ledger' at position 0: setup failed") as info:
            ProjectionRunner(store, ledger).run_until_caught_up()
        assert isinstance(info.value.__cause__, ZeroDivisionError)

    def test_a_crash_mid_batch_moves_no_checkpoint(self, store):
        """An exception that is not an error (a dying process) leaves the checkpoint alone."""
        deposit(store, "a", 1, 2, 3)
        runner = ProjectionRunner(store, Ledger(crash_after=1), batch_size=10)
        with pytest.raises(Crash):
            runner.run_until_caught_up()
        assert checkpoint(store) == Checkpoint(0, 1)


class TestStopPolicy:
    def test_the_error_names_projection_position_stream_version_and_type(self, store):
        """ProjectionError names everything needed to find the failing event."""
        deposit(store, "a", 1)
        position = deposit(store, "b", 2, 3)
        with pytest.raises(ProjectionError) as info:
            ProjectionRunner(store, Ledger(fail={position: -1})).run_until_caught_up()
        error = info.value
        assert (error.projection, error.position, error.stream_id, error.version) == (
            "ledger",
            position,
            "b",
            2,
        )
        assert error.event_type == "bank.MoneyDeposited"
        assert "ValueError: cannot handle position 3" in str(error)

    def test_the_handlers_exception_is_the_cause(self, store):
        """The handler's own exception is chained as __cause__."""
        position = deposit(store, "a", 1)
        with pytest.raises(ProjectionError) as info:
            ProjectionRunner(store, Ledger(fail={position: -1})).run_until_caught_up()
        assert isinstance(info.value.__cause__, ValueError)

    def test_events_before_the_failure_are_kept_once(self, store):
        """The checkpoint stops just before the failing event; earlier ones are applied once."""
        deposit(store, "a", 1, 2)
        failing = deposit(store, "a", 4, 8)
        ledger = Ledger(fail={failing - 1: -1})
        with pytest.raises(ProjectionError):
            ProjectionRunner(store, ledger, batch_size=10).run_until_caught_up()
        assert (checkpoint(store).position, ledger.balances, ledger.calls) == (
            2,
            {"a": 3},
            [1, 2, 3],
        )

    def test_running_again_after_a_fix_goes_on_from_the_failing_event(self, store):
        """Once the cause is gone, the next run starts at the event that failed."""
        deposit(store, "a", 1, 2, 4)
        ledger = Ledger(fail={2: 1})
        runner = ProjectionRunner(store, ledger)
        with pytest.raises(ProjectionError):
            runner.run_until_caught_up()
        runner.run_until_caught_up()
        assert (ledger.balances, ledger.calls) == ({"a": 7}, [1, 2, 2, 3])

    def test_other_projections_still_catch_up(self, store):
        """One projection stopping does not hold the others back."""
        deposit(store, "a", 1, 2)
        broken, healthy = Ledger(fail={1: -1}), Ledger()
        healthy.name = "healthy"
        with pytest.raises(ProjectionError):
            ProjectionRunner(store, broken, healthy).run_until_caught_up()
        assert healthy.balances == {"a": 3}

    def test_an_undecodable_event_goes_to_the_policy(self, store):
        """A stored event that cannot be decoded fails like a handler, naming the event."""
        deposit(store, "a", 1)
        record = NewRecord(uuid.uuid4(), "bank.Vanished", 1, "{}", "{}")
        store.append_records([RecordWrite("b", (record,), 0)])
        ledger = Ledger()
        ledger.event_types = ("bank.MoneyDeposited", "bank.Vanished")
        with pytest.raises(ProjectionError) as info:
            ProjectionRunner(store, ledger).run_until_caught_up()
        assert (info.value.position, info.value.event_type) == (2, "bank.Vanished")
        assert isinstance(info.value.__cause__, UnknownEventType)


class TestRetryPolicy:
    def test_a_transient_failure_is_retried_until_it_passes(self, store):
        """A retried event that then succeeds is applied once, and the rest follows."""
        deposit(store, "a", 1, 2, 4)
        ledger = Ledger(fail={2: 2})
        ledger.error_policy = RetryOnError(attempts=3, delay=0)
        ProjectionRunner(store, ledger).run_until_caught_up()
        assert (ledger.balances, ledger.calls) == ({"a": 7}, [1, 2, 2, 2, 3])

    def test_a_lasting_failure_stops_after_the_retries(self, store):
        """When every retry fails, the projection stops before the event."""
        deposit(store, "a", 1, 2)
        ledger = Ledger(fail={2: -1})
        ledger.error_policy = RetryOnError(attempts=2, delay=0)
        with pytest.raises(ProjectionError, match="position 2"):
            ProjectionRunner(store, ledger).run_until_caught_up()
        assert (ledger.calls, checkpoint(store).position) == ([1, 2, 2, 2], 1)

    def test_exhausted_retries_can_park_the_event(self, store):
        """RetryOnError(then=ParkOnError()) parks the event after the retries."""
        deposit(store, "a", 1, 2)
        ledger = Ledger(fail={1: -1})
        ledger.error_policy = RetryOnError(attempts=1, delay=0, then=ParkOnError())
        runner = ProjectionRunner(store, ledger)
        runner.run_until_caught_up()
        assert [(d.position, d.attempts) for d in runner.dead_letters("ledger")] == [(1, 2)]

    def test_stop_cuts_a_retry_pause_short(self, store):
        """Stopping during a long retry pause returns promptly, checkpoint before the event."""
        deposit(store, "a", 1, 2)
        ledger = Ledger(fail={2: -1})
        ledger.error_policy = RetryOnError(attempts=1, delay=60)
        runner = ProjectionRunner(store, ledger, poll_interval=0.05)
        runner.start()
        deadline = time.monotonic() + WAIT
        while ledger.calls != [1, 2] and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        runner.stop(timeout=WAIT)
        assert (time.monotonic() - started < WAIT, checkpoint(store).position) == (True, 1)


class TestParkPolicy:
    @pytest.fixture(name="parked")
    def _parked(self, store):
        deposit(store, "a", 1, 2, 4)
        ledger = Ledger(fail={2: -1})
        ledger.error_policy = ParkOnError()
        runner = ProjectionRunner(store, ledger)
        runner.run_until_caught_up()
        return runner, ledger

    def test_the_event_is_parked_and_the_rest_applied(self, parked):
        """The failing event is parked with its error; later events are applied."""
        runner, ledger = parked
        (letter,) = runner.dead_letters("ledger")
        assert (letter.position, letter.stream_id, letter.version, letter.attempts) == (
            2,
            "a",
            2,
            1,
        )
        assert (letter.error, ledger.balances) == ("ValueError: cannot handle position 2", {"a": 5})

    def test_a_retried_letter_that_passes_is_unparked(self, parked):
        """Retrying after the cause is fixed applies the event and removes the letter."""
        runner, ledger = parked
        ledger.fail.clear()
        assert runner.retry_dead_letters("ledger") == 1
        assert (ledger.balances, runner.dead_letters("ledger")) == ({"a": 7}, [])

    def test_a_retried_letter_that_fails_again_stays_parked(self, parked):
        """A letter that fails again stays, with one more attempt counted."""
        runner, _ = parked
        assert runner.retry_dead_letters("ledger") == 0
        assert [d.attempts for d in runner.dead_letters("ledger")] == [2]

    def test_retries_can_pick_positions(self, parked):
        """Only the positions asked for are retried."""
        runner, ledger = parked
        ledger.fail.clear()
        assert runner.retry_dead_letters("ledger", positions=[99]) == 0
        assert len(runner.dead_letters("ledger")) == 1

    def test_status_counts_dead_letters(self, parked):
        """status reports how many events are parked."""
        runner, _ = parked
        assert runner.status()["ledger"].dead_letters == 1

    def test_unknown_projection_names_are_refused(self, parked):
        """Naming a projection the runner does not run raises ValueError naming it."""
        runner, _ = parked
        with pytest.raises(ValueError, match="no projection named 'nope'"):
            runner.dead_letters("nope")


class TestBackground:
    def test_appends_wake_the_runner_at_once(self, store):
        """An append through the same store object wakes a runner that polls rarely."""
        ledger = Ledger()
        with ProjectionRunner(store, ledger, poll_interval=60) as runner:
            runner.wait_for(0, timeout=WAIT)
            position = deposit(store, "a", 3)
            runner.wait_for(position, timeout=WAIT)
        assert ledger.balances == {"a": 3}

    def test_starting_twice_is_refused(self, store):
        """A running runner cannot be started again."""
        with ProjectionRunner(store, Ledger()) as runner, pytest.raises(RuntimeError):
            runner.start()

    def test_stopping_a_stopped_runner_does_nothing(self, store):
        """stop on a runner that never started is harmless."""
        runner = ProjectionRunner(store, Ledger())
        runner.stop()
        assert not runner.running

    def test_stop_lets_the_batch_in_flight_finish(self, store):
        """A stop requested mid-batch waits for the batch: it is never half applied."""
        deposit(store, "a", *range(1, 11))
        inside, release = threading.Event(), threading.Event()

        def block(recorded):
            if recorded.position == 3:
                inside.set()
                release.wait(WAIT)

        ledger = Ledger(block=block)
        runner = ProjectionRunner(store, ledger, batch_size=5)
        runner.start()
        assert inside.wait(WAIT)
        stopper = threading.Thread(target=runner.stop, kwargs={"timeout": WAIT})
        stopper.start()
        release.set()
        stopper.join(WAIT)
        assert (checkpoint(store).position, len(ledger.calls)) == (5, 5)

    def test_a_failed_projection_shows_in_status_and_wait_for(self, store):
        """In the background a stopped projection is failed; wait_for raises its error."""
        position = deposit(store, "a", 1)
        with ProjectionRunner(store, Ledger(fail={position: -1})) as runner:
            with pytest.raises(ProjectionError, match="position 1"):
                runner.wait_for(position, timeout=WAIT)
            assert runner.status()["ledger"].state is ProjectionState.FAILED

    def test_the_thread_survives_a_failing_store(self, store, monkeypatch):
        """A store error is logged and retried after a pause, not fatal to the thread."""
        real, failures = store.head_position, [1]

        def flaky():
            if failures:
                failures.pop()
                raise OSError("disk hiccup")
            return real()

        monkeypatch.setattr(store, "head_position", flaky)
        position = deposit(store, "a", 2)
        with ProjectionRunner(store, Ledger(), poll_interval=0.01) as runner:
            runner.wait_for(position, timeout=WAIT)
        assert failures == []

    def test_a_checkpoint_moved_behind_its_back_is_reloaded(self, store):
        """A runner whose stored checkpoint changed reloads it instead of overwriting it."""
        deposit(store, "a", 1, 2)
        ledger = Ledger()
        with ProjectionRunner(store, ledger, poll_interval=0.01) as runner:
            runner.wait_for(2, timeout=WAIT)
            store.run_projection_transaction(
                lambda tx: tx.save_checkpoint("ledger", Checkpoint(0, 1))
            )
            runner.wait_for(deposit(store, "a", 4), timeout=WAIT)
        assert ledger.calls == [1, 2, 1, 2, 3]


class TestWaitFor:
    def test_it_returns_once_the_position_is_reached(self, store):
        """wait_for returns when every projection has the position."""
        position = deposit(store, "a", 1)
        runner = ProjectionRunner(store, Ledger())
        runner.run_until_caught_up()
        runner.wait_for(position, timeout=0)

    def test_it_times_out_naming_the_laggards(self, store):
        """With nobody running, wait_for raises TimeoutError naming who is behind."""
        position = deposit(store, "a", 1)
        runner = ProjectionRunner(store, Ledger(), poll_interval=0.01)
        with pytest.raises(TimeoutError, match=r"position 1 within 0.05 seconds: 'ledger' at 0"):
            runner.wait_for(position, timeout=0.05)

    def test_it_waits_only_for_the_projections_named(self, store):
        """projections= limits the wait to some projections."""
        position = deposit(store, "a", 1)
        fast, slow = Ledger(), Ledger()
        slow.name = "slow"
        ProjectionRunner(store, fast).run_until_caught_up()
        ProjectionRunner(store, fast, slow).wait_for(position, timeout=0, projections=["ledger"])

    def test_a_negative_position_is_refused(self, store):
        """The position must be an integer >= 0."""
        with pytest.raises(ValueError, match="position must be an integer >= 0"):
            ProjectionRunner(store, Ledger()).wait_for(-1)

    def test_run_until_caught_up_waits_for_the_running_thread(self, store):
        """While the thread runs, run_until_caught_up waits for it instead of competing."""
        deposit(store, "a", 1, 2)
        ledger = Ledger()
        with ProjectionRunner(store, ledger) as runner:
            assert runner.run_until_caught_up(timeout=WAIT) == 0
            assert ledger.balances == {"a": 3}


class TestStatus:
    def test_a_lagging_projection_reports_its_lag(self, store):
        """status reports position, head and lag in events and seconds."""
        deposit(store, "a", 1)
        runner = ProjectionRunner(store, Ledger())
        runner.run_until_caught_up()
        deposit(store, "a", 2, 3)
        status = runner.status()["ledger"]
        assert (status.position, status.head, status.lag_events, status.version) == (1, 3, 2, 1)
        assert status.lag_seconds >= 0
        assert status.state is ProjectionState.STOPPED

    def test_a_caught_up_projection_has_no_lag(self, store):
        """Caught up, both lags are zero and the rate reflects the work done."""
        deposit(store, "a", 1, 2)
        runner = ProjectionRunner(store, Ledger())
        runner.run_until_caught_up()
        status = runner.status()["ledger"]
        assert (status.lag_events, status.lag_seconds) == (0, 0.0)
        assert status.events_per_second > 0

    def test_running_and_standby_states(self, store):
        """The lock holder reports active; a second runner of the projection, standby."""
        active = ProjectionRunner(store, Ledger(), poll_interval=0.01)
        standby = ProjectionRunner(store, Ledger(), poll_interval=0.01)
        with active:
            active.wait_for(0, timeout=WAIT)
            with standby:
                states = (active.status()["ledger"].state, standby.status()["ledger"].state)
        assert states == (ProjectionState.ACTIVE, ProjectionState.STANDBY)


class TestCompetingRunners:
    def test_run_until_caught_up_counts_the_lock_holders_progress(self, store):
        """A foreground run finds the holder has caught up and returns without applying."""
        position = deposit(store, "a", 1)
        mine = Ledger()
        with ProjectionRunner(store, Ledger()) as other:
            other.wait_for(position, timeout=WAIT)
            applied = ProjectionRunner(store, mine, poll_interval=0.01).run_until_caught_up(
                timeout=WAIT
            )
        assert (applied, mine.calls) == (0, [])

    def test_run_until_caught_up_gives_up_after_its_timeout(self, store):
        """Blocked by a lock holder that makes no progress, the run times out."""
        lock = store.lock_projection("ledger")
        deposit(store, "a", 1)
        runner = ProjectionRunner(store, Ledger(), poll_interval=0.01)
        with pytest.raises(TimeoutError, match="'ledger' is locked by another runner"):
            runner.run_until_caught_up(timeout=0.05)
        lock.release()

    def test_maintenance_needs_the_lock(self, store):
        """Rebuilding a projection another runner holds raises ProjectionError."""
        lock = store.lock_projection("ledger")
        with pytest.raises(ProjectionError, match="another runner holds this projection"):
            ProjectionRunner(store, Ledger()).rebuild("ledger", quiet=True)
        lock.release()


class TestRebuild:
    def test_a_rebuild_swaps_in_a_fresh_read_model(self, store):
        """rebuild builds a new read model from the first event and swaps it in."""
        deposit(store, "a", 1, 2)
        ledger = Ledger()
        runner = ProjectionRunner(store, ledger)
        runner.run_until_caught_up()
        ledger.balances["a"] = Decimal(999)  # a bug left a wrong value behind
        runner.rebuild("ledger", quiet=True)
        assert (ledger.balances, checkpoint(store)) == ({"a": 3}, Checkpoint(2, 1))

    def test_a_newer_version_rebuilds_by_itself(self, store):
        """A runner that finds a read model of an older version rebuilds it first."""
        deposit(store, "a", 1, 2)
        ProjectionRunner(store, Ledger()).run_until_caught_up()
        newer = Ledger()
        newer.version = 2
        ProjectionRunner(store, newer).run_until_caught_up()
        assert (newer.balances, checkpoint(store)) == ({"a": 3}, Checkpoint(2, 2))

    def test_an_older_version_refuses_a_newer_read_model(self, store):
        """Code older than the read model stops with a ProjectionError saying so."""
        newer = Ledger()
        newer.version = 3
        ProjectionRunner(store, newer).run_until_caught_up()
        with pytest.raises(ProjectionError, match=r"built by version 3 .* version 1"):
            ProjectionRunner(store, Ledger()).run_until_caught_up()

    def test_a_failed_rebuild_keeps_the_old_read_model(self, store):
        """An event failing during a rebuild leaves the live read model and checkpoint alone."""
        deposit(store, "a", 1, 2)
        ledger = Ledger()
        runner = ProjectionRunner(store, ledger)
        runner.run_until_caught_up()
        ledger.staged = lambda: Ledger(fail={2: -1})
        with pytest.raises(ProjectionError, match="position 2"):
            runner.rebuild("ledger", quiet=True)
        assert (ledger.balances, checkpoint(store)) == ({"a": 3}, Checkpoint(2, 1))

    def test_a_rebuild_shows_progress_unless_quiet(self, store, capsys):
        """rebuild draws a progress bar on standard error; quiet=True draws none."""
        deposit(store, "a", 1, 2)
        runner = ProjectionRunner(store, Ledger())
        runner.rebuild("ledger")
        drawn = capsys.readouterr().err
        runner.rebuild("ledger", quiet=True)
        assert ("ledger (rebuild) [" in drawn, capsys.readouterr().err) == (True, "")

    def test_a_second_rebuild_at_once_is_refused(self, store):
        """Only one rebuild of a projection runs at a time."""
        lock = store.lock_projection("ledger__rebuild")
        with pytest.raises(ProjectionError, match="another runner is rebuilding"):
            ProjectionRunner(store, Ledger()).rebuild("ledger", quiet=True)
        lock.release()


class TestReplay:
    def test_replay_empties_and_refills_the_read_model(self, store):
        """replay tears the read model down and applies every event again."""
        deposit(store, "a", 1, 2)
        ledger = Ledger()
        runner = ProjectionRunner(store, ledger)
        runner.run_until_caught_up()
        runner.replay("ledger", quiet=True)
        assert (ledger.teardowns, ledger.balances, ledger.calls) == (1, {"a": 3}, [1, 2, 1, 2])

    def test_replay_forgets_dead_letters(self, store):
        """A replay starts over: the old dead letters go, as the events are handled again."""
        deposit(store, "a", 1)
        ledger = Ledger(fail={1: 1})
        ledger.error_policy = ParkOnError()
        runner = ProjectionRunner(store, ledger)
        runner.run_until_caught_up()
        runner.replay("ledger", quiet=True)
        assert (runner.dead_letters("ledger"), ledger.balances) == ([], {"a": 1})


# -- properties ---------------------------------------------------------------------------

_histories = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from([MoneyDeposited, MoneyWithdrawn, AccountOpened]),
        st.integers(1, 1000),
    ),
    max_size=40,
)


def _append_history(store, history):
    for stream_id, kind, amount in history:
        event = AccountOpened("x") if kind is AccountOpened else kind(Decimal(amount))
        store.append(stream_id, [event])


@settings(deadline=None)
@given(history=_histories, batch_size=st.integers(1, 12), crashes=st.lists(st.integers(0, 40)))
def test_crashes_and_restarts_end_in_the_fold(history, batch_size, crashes):
    """Random histories, batch sizes and crash points: after restarts the read model is the fold."""
    store = InMemoryEventStore(registry=registry)
    _append_history(store, history)
    ledger = Ledger()
    for crash_after in crashes:
        ledger.crash_after, ledger.calls = crash_after, []
        with contextlib.suppress(Crash):
            ProjectionRunner(store, ledger, batch_size=batch_size).run_until_caught_up()
    ledger.crash_after = None
    ProjectionRunner(store, ledger, batch_size=batch_size).run_until_caught_up()
    assert ledger.balances == fold((r.stream_id, r.event) for r in store.read_all())
    assert checkpoint(store).position == store.head_position()


def test_registries_of_other_stores_are_used(store):
    """Event types are resolved in the store's own registry."""
    other = EventRegistry()
    with pytest.raises(UnknownEventType):
        ProjectionRunner(InMemoryEventStore(registry=other), Ledger())


def test_stop_policy_is_the_default():
    """A projection stops on errors unless it says otherwise."""
    assert Ledger().error_policy == StopOnError()
