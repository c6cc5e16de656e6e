"""
Process managers: reactions appended exactly once, whatever fails and wherever.

The property test crashes a process manager at random points of its batches (before
its appends, between them, after them, after the checkpoint moved but before the
commit) and fails its handler now and then, on every backend; after each crash the
events it emitted must be exactly those of the events its checkpoint has passed, each
once. The kill loop does the same with SIGKILL on a real process.
"""

import asyncio
import os
import pathlib
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventkit import (
    AsyncInMemoryEventStore,
    AsyncProcessManagerRunner,
    AsyncSQLiteEventStore,
    InMemoryEventStore,
    NewEvent,
    PostgresEventStore,
    ProcessManager,
    ProcessManagerRunner,
    Projection,
    ProjectionRunner,
    Repository,
    RetryOnError,
    SQLiteEventStore,
    StopOnError,
    StreamAppend,
)
from eventkit._projections._process import emitted_event_id
from eventkit.backends import RecordWrite, RetryTransaction
from eventkit.exceptions import (
    ArgumentError,
    ArgumentTypeError,
    ProjectionError,
    StoreError,
    StreamNotFound,
)
from tests.backends.postgres_support import DSN, drop_schemas, new_schema, require_server
from tests.bank import Account, MoneyDeposited, MoneyWithdrawn, registry
from tests.process_support import Crash, Faults, Mirror

ROOT = pathlib.Path(__file__).resolve().parent.parent


def crash_before_commit(store, faults):
    """Make the store's projection transactions crash after their body, before committing."""
    original = store.run_projection_transaction

    def run(body, *args):
        def checked(tx):
            result = body(tx)
            if faults.crash_before_commit:
                faults.crash_before_commit = False
                raise Crash("commit")
            return result

        return original(checked, *args)

    store.run_projection_transaction = run


def emitted(store):
    """The causation id of every event the mirror appended, counted."""
    return Counter(
        recorded.metadata["causation_id"]
        for recorded in store.read_all()
        if recorded.stream_id == "audit" or recorded.stream_id.startswith("mirror-")
    )


def check_exactly_once(store, deposits):
    """The mirror reacted to the deposits up to its checkpoint, each twice, and to no other."""
    checkpoint = store.projection_checkpoints().get("mirror")
    position = checkpoint.position if checkpoint else 0
    handled = {str(d.event_id) for d in deposits if d.position <= position}
    counts = emitted(store)
    assert set(counts) == handled
    assert set(counts.values()) <= {2}
    audit = [r.version for r in store.read_stream("audit")]
    assert audit == list(range(1, len(audit) + 1))
    return position


def run_with_crashes(store, faults, batch_size):
    """Run the mirror until it has caught up, restarting it after each crash."""
    crash_before_commit(store, faults)
    deposits = [r for r in store.read_all() if isinstance(r.event, MoneyDeposited)]
    crashes = 0
    while True:
        runner = ProcessManagerRunner(store, Mirror(faults), batch_size=batch_size)
        try:
            runner.run_until_caught_up()
        except Crash:
            crashes += 1
            check_exactly_once(store, deposits)
            continue
        break
    position = check_exactly_once(store, deposits)
    assert position >= deposits[-1].position
    assert len(emitted(store)) == len(deposits)
    return crashes


histories = st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=25)
points = st.sampled_from(["before", "between", "after", "fail", "commit"])
plans = st.lists(st.tuples(st.integers(min_value=0, max_value=30), points), max_size=8)


def fill(store, streams):
    for index, stream in enumerate(streams, start=1):
        store.append(f"account-{stream}", [MoneyDeposited(Decimal(index))])


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
@settings(max_examples=25)
@given(streams=histories, plan=plans, batch_size=st.integers(min_value=1, max_value=6))
def test_reactions_are_appended_exactly_once_despite_crashes(backend, streams, plan, batch_size):
    """Crashes anywhere in a batch never lose or repeat a reaction, on every backend."""
    if backend == "memory":
        store = InMemoryEventStore(registry=registry)
        cleanup = store.close
    elif backend == "sqlite":
        store = SQLiteEventStore(":memory:", registry=registry)
        cleanup = store.close
    else:
        require_server()
        schema = new_schema()
        store = PostgresEventStore(DSN, registry=registry, schema=schema, pool_size=2)

        def cleanup():
            store.close()
            drop_schemas([schema])

    try:
        fill(store, streams)
        faults = Faults(plan)
        run_with_crashes(store, faults, batch_size)
    finally:
        cleanup()


def test_a_crash_after_the_appends_before_the_commit_loses_nothing():
    """The case the property test must hit: appended, checkpoint moved, not committed."""
    store = InMemoryEventStore(registry=registry)
    fill(store, [0, 1, 2])
    faults = Faults([(1, "commit"), (2, "between")])
    assert run_with_crashes(store, faults, batch_size=3) == 2
    assert faults.plan == {}


def test_sqlite_file_reactions_survive_reopening(tmp_path):
    """On an SQLite file, a crash leaves the file consistent for the next process."""
    path = str(tmp_path / "pm.db")
    with SQLiteEventStore(path, registry=registry) as store:
        fill(store, [0, 1, 0, 2])
        faults = Faults([(1, "after")])
        crash_before_commit(store, faults)
        with pytest.raises(Crash):
            ProcessManagerRunner(store, Mirror(faults), batch_size=10).run_until_caught_up()
    with SQLiteEventStore(path, registry=registry) as store:
        deposits = [r for r in store.read_all() if isinstance(r.event, MoneyDeposited)]
        assert check_exactly_once(store, deposits) == 0
        ProcessManagerRunner(store, Mirror()).run_until_caught_up()
        assert check_exactly_once(store, deposits) >= deposits[-1].position


# -- the in-memory store's transactions --------------------------------------------------


def test_in_memory_appends_in_a_failed_transaction_are_rolled_back():
    """An append inside a projection transaction that fails is undone with it."""
    store = InMemoryEventStore(registry=registry)
    store.append("account-a", [MoneyDeposited(Decimal(1))])
    write, other = (store.codec.encode(MoneyDeposited(Decimal(n))) for n in (2, 3))

    def body(tx):
        tx.append([RecordWrite("account-a", (other,), 1), RecordWrite("new", (write,), 0)])
        raise KeyError("fails after appending")

    with pytest.raises(KeyError):
        store.run_projection_transaction(body)
    assert [r.version for r in store.read_stream("account-a")] == [1]
    assert store.read_stream("new") == []
    assert list(store.stream_ids()) == ["account-a"]
    assert store.head_position() == 1
    # The undone event's id was freed: it can be stored now.
    assert store.append_records([RecordWrite("new", (write,), 0)])[0].positions == (2,)


def test_in_memory_readers_never_see_an_uncommitted_append():
    """Another thread reading during the transaction sees the events only once committed."""

    store = InMemoryEventStore(registry=registry)
    write = store.codec.encode(MoneyDeposited(Decimal(2)))

    seen = []
    reader = threading.Thread(target=lambda: seen.append(store.read_stream("new")))

    def body(tx):
        tx.append([RecordWrite("new", (write,), 0)])
        reader.start()
        reader.join(0.2)  # the reader waits for the transaction to end
        assert seen == []
        raise KeyError("rolled back")

    with pytest.raises(KeyError):
        store.run_projection_transaction(body)
    reader.join(5)
    assert seen == [[]]


# -- the runner and the context ----------------------------------------------------------


class Opener(ProcessManager):
    """Opens an account for each deposit into a stream that has none, using the repository."""

    name = "opener"
    event_types = (MoneyDeposited,)

    def __init__(self, accounts):
        self.accounts = accounts

    def handle(self, recorded, process):
        if not recorded.stream_id.startswith("deposit-"):
            return  # its own deposits, into the accounts
        owner = recorded.stream_id.removeprefix("deposit-")
        try:
            account = process.load(self.accounts, owner)
        except StreamNotFound:
            account = Account(id=owner)
            account.open(owner)
        account.deposit(recorded.event.amount)
        process.save(self.accounts, account, metadata={"note": "mirrored"})


def test_context_loads_and_saves_aggregates_in_the_transaction():
    """load and save go through the transaction: a batch sees its own earlier saves."""
    store = InMemoryEventStore(registry=registry)
    accounts = Repository(store, Account, stream_prefix="account-")
    for amount in (5, 7, 11):
        store.append("deposit-ada", [MoneyDeposited(Decimal(amount))])
    ProcessManagerRunner(store, Opener(accounts), batch_size=10).run_until_caught_up()
    assert accounts.load("ada").balance == Decimal(23)
    saved = store.read_stream("account-ada")
    assert [r.version for r in saved] == [1, 2, 3, 4]
    assert {r.metadata["note"] for r in saved} == {"mirrored"}
    first_cause = store.read_stream("deposit-ada")[0]
    assert saved[0].metadata["causation_id"] == str(first_cause.event_id)


def test_emitted_ids_are_derived_from_the_cause():
    """Handling the same event again emits the same ids: a retry is recognised."""
    first, second = InMemoryEventStore(registry=registry), InMemoryEventStore(registry=registry)
    for store in (first, second):
        store.append("account-a", [MoneyDeposited(Decimal(3))])
    cause = first.read_stream("account-a")[0]
    second_store_cause = second.read_stream("account-a")[0]
    for store in (first, second):
        ProcessManagerRunner(store, Mirror()).run_until_caught_up()
    ids = [r.event_id for r in first.read_stream("mirror-account-a")]
    other = [r.event_id for r in second.read_stream("mirror-account-a")]
    # Another cause (another id), another emitted id; the same cause, the same id.
    assert cause.event_id != second_store_cause.event_id
    assert ids != other

    assert ids == [emitted_event_id("mirror", cause.event_id, 0)]


def test_correlation_is_carried_along_a_chain():
    """A reaction to a reaction keeps the first event's correlation id."""

    class Chain(ProcessManager):
        name = "chain"
        event_types = (MoneyDeposited,)

        def handle(self, recorded, process):
            amount = recorded.event.amount
            if amount < 3:
                process.append("chain", [MoneyDeposited(amount + 1)])

    store = InMemoryEventStore(registry=registry)
    store.append("start", [MoneyDeposited(Decimal(0))], expected_version=0)
    runner = ProcessManagerRunner(store, Chain())
    while runner.run_until_caught_up():
        pass
    start = store.read_stream("start")[0]
    chain = store.read_stream("chain")
    assert [r.event.amount for r in chain] == [1, 2, 3]
    assert {r.metadata["correlation_id"] for r in chain} == {str(start.event_id)}
    causes = [r.metadata["causation_id"] for r in chain]
    assert causes == [str(start.event_id), str(chain[0].event_id), str(chain[1].event_id)]


class Conflicted(ProcessManager):
    """Appends with an expected version that a concurrent writer breaks, the first time."""

    name = "conflicted"
    event_types = (MoneyDeposited,)
    error_policy = RetryOnError(attempts=2, delay=0)

    def __init__(self, store):
        self.store = store
        self.attempts = 0

    def handle(self, recorded, process):
        self.attempts += 1
        version = len(process.read_stream("target"))
        process.append("other", [MoneyWithdrawn(Decimal(1))])
        if self.attempts == 1:
            # A command elsewhere wins the race for the stream, after it was read.
            process.append("target", [MoneyDeposited(Decimal(9))], expected_version=version + 1)
        process.append("target", [MoneyWithdrawn(Decimal(1))], expected_version=version)


def test_a_conflict_rolls_the_event_back_and_the_policy_retries_it():
    """A conflicting append undoes every append of the event; the retry succeeds."""
    store = InMemoryEventStore(registry=registry)
    store.append("source", [MoneyDeposited(Decimal(1))])
    manager = Conflicted(store)
    ProcessManagerRunner(store, manager).run_until_caught_up()
    assert manager.attempts == 2
    assert [type(r.event) for r in store.read_stream("target")] == [MoneyWithdrawn]
    assert len(store.read_stream("other")) == 1


def test_stop_on_error_names_the_event_and_appends_nothing_of_it():
    """With StopOnError, a conflict stops the manager before the event."""
    store = InMemoryEventStore(registry=registry)
    store.append("source", [MoneyDeposited(Decimal(1))])
    manager = Conflicted(store)
    manager.error_policy = StopOnError()
    with pytest.raises(ProjectionError, match="ConcurrencyError") as info:
        ProcessManagerRunner(store, manager).run_until_caught_up()
    assert (info.value.projection, info.value.stream_id) == ("conflicted", "source")
    assert (store.read_stream("target"), store.read_stream("other")) == ([], [])


class AlwaysRetried(ProcessManager):
    """Asks for its transaction to run again every time, as a store stuck in conflict would."""

    name = "always_retried"

    def __init__(self):
        self.attempts = 0

    def handle(self, recorded, process):
        self.attempts += 1
        process.append("target", [MoneyWithdrawn(Decimal(1))])
        raise RetryTransaction("the stream moved on")


def test_a_transaction_refused_again_and_again_fails_as_the_store_not_the_event():
    """After ten refused attempts the batch fails with a StoreError; nothing is stored."""
    store = InMemoryEventStore(registry=registry)
    store.append("source", [MoneyDeposited(Decimal(1))])
    manager = AlwaysRetried()
    with pytest.raises(StoreError, match="10 times") as info:
        ProcessManagerRunner(store, manager).run_until_caught_up()
    assert isinstance(info.value.__cause__, RetryTransaction)
    assert manager.attempts == 10
    assert store.stream_version("target") == 0
    assert store.projection_checkpoints()["always_retried"].position == 0


def test_a_manager_that_starts_now_ignores_the_past():
    """from_beginning = False: a new manager reacts only to events stored after it started."""

    class Late(Mirror):
        name = "mirror"
        from_beginning = False

    store = InMemoryEventStore(registry=registry)
    store.append("account-old", [MoneyDeposited(Decimal(1))])
    runner = ProcessManagerRunner(store, Late())
    assert runner.run_until_caught_up() == 0
    store.append("account-new", [MoneyDeposited(Decimal(2))])
    runner.run_until_caught_up()
    assert store.read_stream("mirror-account-old") == []
    assert len(store.read_stream("mirror-account-new")) == 1


def test_wait_for_and_status_work_for_managers():
    """The runner's machinery: background run, wait_for, status with lag."""
    store = InMemoryEventStore(registry=registry)
    with ProcessManagerRunner(store, Mirror(), poll_interval=0.05) as runner:
        result = store.append("account-a", [MoneyDeposited(Decimal(1))])
        runner.wait_for(result.positions[-1], timeout=10)
        assert len(store.read_stream("mirror-account-a")) == 1
        status = runner.status()["mirror"]
        assert status.position >= result.positions[-1]
    assert repr(runner) == "<ProcessManagerRunner of 'mirror'>"
    assert runner.managers[0].name == "mirror"


def test_runners_refuse_the_other_kind():
    """Projections and process managers each have their own runner; bad managers are named."""

    class Plain(Projection):
        name = "plain"

        def handle(self, recorded, tx):
            pass

    store = InMemoryEventStore(registry=registry)
    with pytest.raises(ArgumentTypeError, match="ProcessManagerRunner"):
        ProjectionRunner(store, Mirror())
    with pytest.raises(ArgumentTypeError, match="ProjectionRunner"):
        ProcessManagerRunner(store, Plain())

    class Versioned(Mirror):
        version = 2

    with pytest.raises(ArgumentError, match="version must stay 1"):
        ProcessManagerRunner(store, Versioned())
    with pytest.raises(ArgumentError, match="two process managers are named 'mirror'"):
        ProcessManagerRunner(store, Mirror(), Mirror())
    with pytest.raises(ArgumentError, match="no process manager named 'x'"):
        ProcessManagerRunner(store, Mirror()).dead_letters("x")


def test_context_refuses_new_event_wrappers_and_empty_appends():
    """Emitted ids are the context's to choose; an append of nothing is a mistake."""

    class Bad(ProcessManager):
        name = "bad"
        event_types = (MoneyDeposited,)
        error_policy = StopOnError()

        def __init__(self, events):
            self.events = events

        def handle(self, recorded, process):
            process.append("x", self.events)

    for events, expected in (
        ([NewEvent(MoneyDeposited(Decimal(1)))], "ArgumentTypeError: process manager 'bad'"),
        ([], "ArgumentError: process manager 'bad': nothing to append"),
    ):
        store = InMemoryEventStore(registry=registry)
        store.append("s", [MoneyDeposited(Decimal(1))])
        with pytest.raises(ProjectionError, match=expected):
            ProcessManagerRunner(store, Bad(events)).run_until_caught_up()
        assert store.read_stream("x") == []


def test_async_runner_reacts_on_sqlite_and_in_memory(tmp_path):
    """The async runner: the same handler, reacting once per event, on both async stores."""

    async def run(store):
        async with store:
            for n in range(3):
                await store.append(f"account-{n}", [MoneyDeposited(Decimal(n + 1))])
            async with AsyncProcessManagerRunner(store, Mirror(), poll_interval=0.05) as runner:
                result = await store.append("account-9", [MoneyDeposited(Decimal(9))])
                await runner.wait_for(result.positions[-1], timeout=10)
            return Counter(
                [
                    r.metadata["causation_id"]
                    async for r in store.read_all()
                    if r.stream_id == "audit" or r.stream_id.startswith("mirror-")
                ]
            )

    for store in (
        AsyncInMemoryEventStore(registry=registry),
        AsyncSQLiteEventStore(str(tmp_path / "async.db"), registry=registry),
    ):
        counts = asyncio.run(run(store))
        assert sorted(counts.values()) == [2, 2, 2, 2]


# -- PostgreSQL: transaction ids and stream order ----------------------------------------


def test_postgres_retries_an_append_that_would_sort_before_a_younger_transaction(schemas):
    """A reaction whose transaction got its id before a concurrent append runs again."""
    schemas.append(new_schema())
    store = PostgresEventStore(DSN, registry=registry, schema=schemas[-1])
    other = PostgresEventStore(DSN, registry=registry, schema=schemas[-1])

    class Racing(ProcessManager):
        name = "racing"
        event_types = (MoneyDeposited,)
        error_policy = StopOnError()
        tables = ("racing_seen",)

        def __init__(self):
            self.attempts = 0

        def setup(self, tx):
            tx.execute("CREATE TABLE IF NOT EXISTS racing_seen (position bigint)")

        def handle(self, recorded, process):
            self.attempts += 1
            # A write of its own first: the transaction takes its id now.
            process.connection.execute("INSERT INTO racing_seen VALUES (%s)", (recorded.position,))
            if self.attempts == 1:
                # Meanwhile another process appends to the stream and commits.
                other.append("shared", [MoneyWithdrawn(Decimal(1))])
            process.append("shared", [MoneyDeposited(Decimal(2))])

    try:
        store.append("source", [MoneyDeposited(Decimal(1))])
        manager = Racing()
        ProcessManagerRunner(store, manager).run_until_caught_up()
        shared = store.read_stream("shared")
        assert manager.attempts == 2
        assert [type(r.event) for r in shared] == [MoneyWithdrawn, MoneyDeposited]
        assert shared[0].position < shared[1].position
        feed = [r.version for r in store.read_all() if r.stream_id == "shared"]
        assert feed == [1, 2]
    finally:
        other.close()
        store.close()


# -- a real process, killed again and again --------------------------------------------


def test_sigkill_loop_on_sqlite_loses_and_repeats_nothing(tmp_path):
    """A manager process killed at random moments mid catch-up, then run to the end."""
    path = str(tmp_path / "killed.db")
    deposits = 900
    with SQLiteEventStore(path, registry=registry) as store:
        for start in range(0, deposits, 30):
            store.append_many(
                StreamAppend(f"account-{n % 30}", [MoneyDeposited(Decimal(n + 1))])
                for n in range(start, start + 30)
            )
    rng = random.Random(int(os.environ.get("EVENTKIT_KILL_SEED", "17")))
    kills = int(os.environ.get("EVENTKIT_PM_KILLS", "8"))
    command = [sys.executable, "-m", "tests.process_worker", path]
    killed = 0
    for _ in range(kills):
        with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
            assert process.stdout.readline().strip() == "started"
            time.sleep(rng.uniform(0.05, 0.4))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed += 1
            process.wait(30)
    final = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert final.returncode == 0, final.stderr
    assert killed >= kills // 2  # most runs were cut short, mid catch-up
    with SQLiteEventStore(path, registry=registry) as store:
        causes = [r for r in store.read_all() if isinstance(r.event, MoneyDeposited)]
        causes = [r for r in causes if r.stream_id.startswith("account-")]
        assert len(causes) == deposits
        assert check_exactly_once(store, causes) >= causes[-1].position
        assert len(store.read_stream("audit")) == deposits


def test_ids_are_stable_across_processes():
    """The emitted id of (manager, cause, index) never changes: stored ids depend on it."""

    cause = uuid.UUID("00000000-0000-4000-8000-000000000001")
    assert emitted_event_id("transfers", cause, 0) == uuid.UUID(
        "8b4f0de4-b316-53d6-ba6e-19953b461db4"
    )


# -- a backend whose transactions cannot hold the appends ---------------------------------


class NonAtomicStore(InMemoryEventStore):
    """A store whose projection transactions append at once, outside the transaction."""

    def run_projection_transaction(self, body):
        store = self

        class Outside:
            def __init__(self, tx):
                self._tx = tx

            def __getattr__(self, name):
                return getattr(self._tx, name)

            def append(self, writes):
                return store.append_records(writes)  # committed now, whatever follows

        return super().run_projection_transaction(lambda tx: body(Outside(tx)))


class Receipts(ProcessManager):
    """Decides from the causing event alone: a receipt stream per deposit, and a tally."""

    name = "receipts"
    event_types = (MoneyDeposited,)

    def __init__(self, faults):
        self.faults = faults

    def handle(self, recorded, process):
        process.append(
            f"receipt-{recorded.position}", [MoneyWithdrawn(Decimal(1))], expected_version=0
        )
        self.faults.at("between")
        process.append(f"tally-{recorded.stream_id}", [MoneyWithdrawn(recorded.event.amount)])
        self.faults.at("commit")
        self.faults.calls += 1


def test_where_appends_cannot_join_the_transaction_derived_ids_absorb_redelivery():
    """Appends committed before a crash are recognised when the event is handled again."""
    store = NonAtomicStore(registry=registry)
    fill(store, [0, 1, 0, 2, 1])
    faults = Faults([(1, "between"), (4, "commit")])
    crash_before_commit(store, faults)
    crashes = 0
    while True:
        try:
            ProcessManagerRunner(store, Receipts(faults), batch_size=2).run_until_caught_up()
            break
        except Crash:
            crashes += 1
    assert (crashes, faults.plan) == (2, {})
    deposits = [r for r in store.read_all() if r.stream_id.startswith("account-")]
    counts = Counter(
        r.metadata["causation_id"]
        for r in store.read_all()
        if r.stream_id.startswith(("receipt-", "tally-"))
    )
    # Handled again after each crash, yet every deposit has one receipt and one tally line.
    assert counts == {str(d.event_id): 2 for d in deposits}
