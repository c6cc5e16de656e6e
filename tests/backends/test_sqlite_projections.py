"""Projections on SQLite: exactly once, across crashes, processes, rebuilds and readers."""

import contextlib
import pathlib
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventkit import (
    ParkOnError,
    ProjectionError,
    ProjectionRunner,
    ProjectionState,
    RetryOnError,
    SQLiteEventStore,
    StreamAppend,
)
from eventkit._backends.sqlite import schema
from eventkit.backends import Checkpoint
from tests.bank import AccountOpened, MoneyDeposited, MoneyWithdrawn, registry
from tests.projection_helpers import (
    WAIT,
    Crash,
    SQLLedger,
    deposit,
    int_fold,
    money_positions,
    sql_read_model,
)

ROOT = pathlib.Path(__file__).parent.parent.parent


@pytest.fixture(name="path")
def _path(tmp_path):
    return tmp_path / "bank.db"


@pytest.fixture(name="store")
def _store(path):
    with SQLiteEventStore(path, registry=registry, synchronous="NORMAL") as store:
        yield store


def read_model(store):
    with store.transaction() as conn:
        return sql_read_model(conn)


def append_history(store, history):
    appends = []
    for stream_id, kind, amount in history:
        event = AccountOpened("x") if kind is AccountOpened else kind(Decimal(amount))
        appends.append(StreamAppend(stream_id, [event]))
    for start in range(0, len(appends), 3):
        # Several streams per call: a stream appears once in one atomic append.
        chunk, seen = [], set()
        for item in appends[start : start + 3]:
            if item.stream_id in seen:
                store.append_many(chunk)
                chunk, seen = [], set()
            chunk.append(item)
            seen.add(item.stream_id)
        if chunk:
            store.append_many(chunk)


def big_history(store, events):
    """Append *events* money events over 50 accounts, 1000 per atomic step."""
    kinds = [MoneyDeposited, MoneyDeposited, MoneyWithdrawn, AccountOpened]
    for start in range(0, events, 1000):
        by_stream = {}
        for n in range(start, start + 1000):
            kind = kinds[n % 4]
            event = AccountOpened("x") if kind is AccountOpened else kind(Decimal(n % 97 + 1))
            by_stream.setdefault(f"account-{n % 50}", []).append(event)
        store.append_many(StreamAppend(s, e) for s, e in by_stream.items())


def start_worker(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.backends.projection_worker", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def kill(worker):
    worker.send_signal(signal.SIGKILL)
    worker.wait(WAIT)
    worker.stdout.close()


# -- exactly once -------------------------------------------------------------------------

_histories = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from([MoneyDeposited, MoneyWithdrawn, AccountOpened]),
        st.integers(1, 1000),
    ),
    max_size=40,
)
_interruptions = st.lists(
    st.tuples(st.sampled_from(["crash", "error"]), st.integers(0, 40)), max_size=5
)


@contextlib.contextmanager
def fresh_store(where):
    """A new SQLite store in memory or in a file of its own (hypothesis runs many)."""
    if where == "memory":
        with SQLiteEventStore(":memory:", registry=registry) as store:
            yield store
        return
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "events.db"
        with SQLiteEventStore(path, registry=registry, synchronous="NORMAL") as store:
            yield store


@settings(deadline=None)
@given(
    where=st.sampled_from(["memory", "file"]),
    history=_histories,
    batch_size=st.integers(1, 12),
    interruptions=_interruptions,
)
def test_interrupted_runs_apply_every_event_exactly_once(where, history, batch_size, interruptions):
    """Crashes and handler errors mid-batch, then restarts: each event applied exactly once."""
    with fresh_store(where) as store:
        append_history(store, history)
        wanted = money_positions(store)
        for kind, at in interruptions:
            ledger = SQLLedger()
            if kind == "crash":
                ledger.crash_after = at
            elif wanted:
                ledger.fail = {wanted[at % len(wanted)]: 1}
            runner = ProjectionRunner(store, ledger, batch_size=batch_size)
            with contextlib.suppress(Crash, ProjectionError):
                runner.run_until_caught_up()
        ProjectionRunner(store, SQLLedger(), batch_size=batch_size).run_until_caught_up()
        balances, applied = read_model(store)
        assert balances == int_fold(store)
        assert applied == dict.fromkeys(wanted, 1)


class TestExactlyOnce:
    def test_a_failing_events_own_writes_are_rolled_back(self, store):
        """Writes the handler made before raising are undone; the events before it stay."""
        deposit(store, "a", 1, 2, 4)
        with pytest.raises(ProjectionError, match="position 2"):
            ProjectionRunner(store, SQLLedger(fail={2: -1}), batch_size=10).run_until_caught_up()
        assert read_model(store) == ({"a": 1}, {1: 1})
        assert store.projection_checkpoints()["sql_ledger"] == Checkpoint(1, 1)

    def test_a_failed_retry_leaves_nothing_behind(self, store):
        """Each retry runs in a fresh transaction: failed attempts write nothing."""
        deposit(store, "a", 1, 2)
        ledger = SQLLedger(fail={2: 2})
        ledger.error_policy = RetryOnError(attempts=3, delay=0)
        ProjectionRunner(store, ledger).run_until_caught_up()
        assert read_model(store) == ({"a": 3}, {1: 1, 2: 1})

    def test_a_dead_letter_retry_that_fails_writes_nothing(self, store):
        """Retrying a parked event that fails again rolls its writes back and counts it."""
        deposit(store, "a", 1, 2)
        ledger = SQLLedger(fail={1: -1})
        ledger.error_policy = ParkOnError()
        runner = ProjectionRunner(store, ledger)
        runner.run_until_caught_up()
        assert runner.retry_dead_letters("sql_ledger") == 0
        assert read_model(store) == ({"a": 2}, {2: 1})
        assert [d.attempts for d in runner.dead_letters("sql_ledger")] == [2]

    def test_a_dead_letter_retry_that_passes_commits_with_the_unparking(self, store):
        """A parked event retried successfully is applied once and leaves the dead letters."""
        deposit(store, "a", 1, 2)
        ledger = SQLLedger(fail={1: 1})
        ledger.error_policy = ParkOnError()
        runner = ProjectionRunner(store, ledger)
        runner.run_until_caught_up()
        assert runner.retry_dead_letters("sql_ledger") == 1
        assert (read_model(store), runner.dead_letters("sql_ledger")) == (
            ({"a": 3}, {1: 1, 2: 1}),
            [],
        )

    def test_a_runner_killed_mid_batch_resumes_exactly_once(self, store, path):
        """SIGKILL in the middle of catching up on 20,000 events; the restart ends in the fold."""
        big_history(store, 20_000)
        worker = start_worker("catch-up", path, 12_345)
        try:
            assert worker.stdout.readline() == "blocked\n"
            reached = store.projection_checkpoints()["sql_ledger"].position
        finally:
            kill(worker)
        assert 0 < reached < 12_345
        ledger = SQLLedger()
        ProjectionRunner(store, ledger, batch_size=500).run_until_caught_up(timeout=WAIT)
        balances, applied = read_model(store)
        assert (balances, applied) == (int_fold(store), dict.fromkeys(money_positions(store), 1))
        assert ledger.calls[0] == min(p for p in money_positions(store) if p > reached)


# -- processes, readers and rebuilds ------------------------------------------------------


class TestCompetingProcesses:
    def test_a_standby_takes_over_when_the_active_process_dies(self, store, path):
        """Only the process holding the lock applies events; killed, the standby takes over."""
        worker = start_worker("follow", path)
        mine = SQLLedger()
        runner = ProjectionRunner(store, mine, poll_interval=0.05)
        try:
            assert worker.stdout.readline() == "active\n"
            runner.start()
            runner.wait_for(deposit(store, "a", 1, 2), timeout=WAIT)
            assert (runner.status()["sql_ledger"].state, mine.calls) == (
                ProjectionState.STANDBY,
                [],
            )
        finally:
            kill(worker)
        try:
            runner.wait_for(deposit(store, "a", 4), timeout=WAIT)
        finally:
            runner.stop(timeout=WAIT)
        assert (mine.calls, read_model(store)) == ([3], ({"a": 7}, {1: 1, 2: 1, 3: 1}))

    def test_appends_by_another_store_object_are_seen_by_polling(self, store, path):
        """Appends the runner's store did not make reach it within its poll interval."""
        with SQLiteEventStore(path, registry=registry) as other:
            with ProjectionRunner(store, SQLLedger(), poll_interval=0.05) as runner:
                runner.wait_for(0, timeout=WAIT)
                runner.wait_for(deposit(other, "a", 5), timeout=WAIT)
            assert read_model(store) == ({"a": 5}, {1: 1})


class TestRebuildOnSQLite:
    def test_readers_see_the_old_or_the_new_read_model_never_a_mix(self, store, path):
        """While a rebuild runs and swaps, readers see one whole read model or the other."""
        big_history(store, 2_000)
        ProjectionRunner(store, SQLLedger(sign=-1), batch_size=50).run_until_caught_up()
        old = read_model(store)[0]
        seen, reading, done = set(), threading.Event(), threading.Event()

        def read():
            conn = sqlite3.connect(path)
            try:
                while not done.is_set():
                    seen.add(tuple(sorted(conn.execute("SELECT * FROM ledger_balances"))))
                    reading.set()
            finally:
                conn.close()

        reader = threading.Thread(target=read)
        reader.start()
        try:
            assert reading.wait(WAIT)
            runner = ProjectionRunner(store, SQLLedger(), batch_size=50)
            runner.rebuild("sql_ledger", quiet=True)
        finally:
            done.set()
            reader.join(WAIT)
        new = int_fold(store)
        assert seen <= {tuple(sorted(old.items())), tuple(sorted(new.items()))}
        assert tuple(sorted(old.items())) in seen
        assert read_model(store)[0] == new != old

    def test_a_swap_leaves_live_tables_and_indexes_only(self, store):
        """After the swap the staged tables are gone and the indexes have their usual names."""
        deposit(store, "a", 1)
        runner = ProjectionRunner(store, SQLLedger())
        runner.run_until_caught_up()
        runner.rebuild("sql_ledger", quiet=True)
        with store.transaction() as conn:
            names = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'ledger%'")
            }
        assert names == {"ledger_balances", "ledger_balances_by_amount", "ledger_applied"}

    def test_a_bumped_version_rebuilds_the_tables(self, store):
        """A new projection version rebuilds the tables from the first event by itself."""
        store.append("a", [MoneyDeposited(Decimal(5)), MoneyWithdrawn(Decimal(2))])
        ProjectionRunner(store, SQLLedger(sign=-1)).run_until_caught_up()
        fixed = SQLLedger()
        fixed.version = 2
        ProjectionRunner(store, fixed).run_until_caught_up()
        assert (read_model(store), store.projection_checkpoints()["sql_ledger"]) == (
            ({"a": 3}, {1: 1, 2: 1}),
            Checkpoint(2, 2),
        )

    def test_replay_drops_and_refills_the_tables(self, store):
        """A replay starts from empty tables and applies each event once."""
        deposit(store, "a", 1, 2)
        runner = ProjectionRunner(store, SQLLedger())
        runner.run_until_caught_up()
        runner.replay("sql_ledger", quiet=True)
        assert read_model(store) == ({"a": 3}, {1: 1, 2: 1})


class TestSQLiteProjectionStorage:
    def test_the_stores_own_tables_cannot_be_dropped(self, store):
        """A projection naming the event table as its own is refused; nothing is lost."""
        deposit(store, "a", 1)
        with pytest.raises(ValueError, match="one of the store's own tables"):
            store.run_projection_transaction(lambda tx: tx.drop_tables(["eventkit_events"]))
        assert store.head_position() == 1

    def test_lock_files_sit_in_one_folder_beside_the_database(self, store, path):
        """A projection's lock is a file in .eventkit-locks next to the database, named after it."""
        store.lock_projection("balances").release()
        store.lock_projection("odd name/with slash").release()
        names = {p.name for p in (path.parent / ".eventkit-locks").glob("*.lock")}
        assert "bank.db-eventkit_projection-balances.lock" in names
        assert len(names) == 2
        sqlites = {"bank.db", "bank.db-wal", "bank.db-shm"}
        assert {p.name for p in path.parent.iterdir()} - sqlites == {".eventkit-locks"}

    def test_the_lock_folder_ignores_itself_in_git(self, store, path, tmp_path):
        """git status does not show the lock folder: its .gitignore ignores everything."""
        subprocess.run(["git", "init", "-q", str(path.parent)], check=True)
        store.lock_projection("balances").release()
        status = subprocess.run(
            ["git", "-C", str(path.parent), "status", "--porcelain", "--untracked-files=all"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert [line for line in status.splitlines() if "eventkit-locks" in line] == []
        assert "?? bank.db" in status.splitlines()

    def test_processes_agree_on_the_lock_whatever_their_folder_or_symlink(self, store, path):
        """A store opened through a relative path or a symlink takes the same lock."""
        lock = store.lock_projection("balances")
        link = path.parent / "elsewhere" / "link.db"
        link.parent.mkdir()
        link.symlink_to(path)
        script = (
            "import os, sys\n"
            "from eventkit import SQLiteEventStore\n"
            "os.chdir(sys.argv[1])\n"
            "store = SQLiteEventStore(sys.argv[2])\n"
            "print(store.lock_projection('balances') is None)\n"
        )
        taken = subprocess.run(
            [sys.executable, "-c", script, str(link.parent), "link.db"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        lock.release()
        assert taken == "True\n"

    def test_a_file_from_before_projections_gains_their_tables(self, path):
        """Opening a file written before projections existed adds their tables."""
        added = next(m.version for m in schema.MIGRATIONS if "projection" in m.description)
        SQLiteEventStore(path, registry=registry).close()
        conn = sqlite3.connect(path)
        conn.execute("DROP TABLE eventkit_projection_checkpoints")
        conn.execute("DROP TABLE eventkit_projection_dead_letters")
        conn.execute("UPDATE eventkit_meta SET value = ?", (str(added - 1),))
        conn.commit()
        conn.close()
        with SQLiteEventStore(path, registry=registry) as store:
            assert store.projection_checkpoints() == {}

    def test_handlers_get_the_transactions_connection(self, store):
        """The handler's tx is the store's sqlite3 connection inside the transaction."""
        conn = store.run_projection_transaction(
            lambda tx: (tx.connection.in_transaction, tx.connection)
        )
        assert conn[0] is True
        assert isinstance(conn[1], sqlite3.Connection)
