"""
Many processes on one PostgreSQL store: the feed, the read model and fencing hold.

The stress run is short in CI; run it longer or more often with the environment
variables ``EVENTKIT_STRESS_SECONDS`` (how long the writers write, 3 by default),
``EVENTKIT_STRESS_ROUNDS`` (how many separate runs, 1) and ``EVENTKIT_STRESS_WRITERS``
(writer processes, 8).
"""

import contextlib
import dataclasses
import itertools
import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal

import psycopg
import pytest

from eventkit import ParkOnError, PostgresEventStore, ProjectionRunner
from tests.backends.postgres_support import DSN, drop_schemas, new_schema, require_server
from tests.backends.postgres_workers import BETWEEN_BATCHES, LOST, PGLedger, read_model
from tests.bank import MoneyDeposited, registry

ROOT = pathlib.Path(__file__).parent.parent.parent
ROUNDS = int(os.environ.get("EVENTKIT_STRESS_ROUNDS", "1"))
SECONDS = float(os.environ.get("EVENTKIT_STRESS_SECONDS", "3"))
WRITERS = int(os.environ.get("EVENTKIT_STRESS_WRITERS", "8"))
STREAMS = 12
# The most a writer sleeps inside its transaction for each event it inserts.
JITTER = 0.003
# Bounded waits: generous, because the machine and the server are shared, and any
# transaction open elsewhere on the server holds every feed back until it ends.
WAIT = 60.0
LEASE = 2.0
IDLE = 0.5


class Worker:
    """A process of ``postgres_workers``; a thread queues the lines it prints."""

    def __init__(self, *args):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.backends.postgres_workers", *map(str, args)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, start, timeout=WAIT):
        """Return the first line that begins with *start*; fail if none comes in time."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line {start!r} within {timeout}s; printed: {self.seen}")
            if line is None:
                pytest.fail(f"the worker ended before printing {start!r}; printed: {self.seen}")
            self.seen.append(line)
            if line.startswith(start):
                return line

    def send(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def signal(self, number):
        self.process.send_signal(number)

    def finish(self, timeout=WAIT):
        """Wait for the process to end; return its exit status."""
        return self.process.wait(timeout)

    def kill(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(WAIT)
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()


@contextlib.contextmanager
def workers():
    """Start workers with the yielded function; every one is ended afterwards."""
    started = []

    def start(*args):
        started.append(Worker(*args))
        return started[-1]

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


def raw(sql, params=()):
    with psycopg.connect(DSN, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


def wait_until(condition, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout}s")
        time.sleep(0.02)


def stored_events(schema):
    """Every row of the events table, in position order, read around the store."""
    return raw(
        "SELECT position, stream_id, version, event_id::text, event_type, data "
        f'FROM "{schema}".eventkit_events ORDER BY position'
    )


def fold(rows):
    """The balances the ledger must hold: the money events of *rows*, summed per stream."""
    balances = {}
    for _, stream_id, _, _, event_type, data in rows:
        amount = int(Decimal(json.loads(data)["amount"]))
        sign = -1 if event_type == "bank.MoneyWithdrawn" else 1
        balances[stream_id] = balances.get(stream_id, 0) + sign * amount
    return balances


# -- the stress run ---------------------------------------------------------------------------


@dataclasses.dataclass
class StressRun:
    """What one stress run saw: the reader's feed, the stored events, the writers' reports."""

    feed: list  # (position, stream_id, version, event_id) in the order the reader got them
    stored: list  # rows of stored_events
    written: list  # [stream_id, version, position, when told] from every writer
    appends: int
    multi_stream_appends: int
    read_model: tuple


def start_reader(store, feed, target, errors):
    """Tail read_all from 0 until *target* holds a position and the feed has reached it."""

    def tail():
        after = 0
        try:
            while True:
                got = False
                for recorded in store.read_all(after_position=after):
                    feed.append(
                        (
                            recorded.position,
                            recorded.stream_id,
                            recorded.version,
                            str(recorded.event_id),
                        )
                    )
                    after, got = recorded.position, True
                if target and after >= target[0]:
                    return
                if not got:
                    time.sleep(0.005)
        except Exception as exc:  # noqa: BLE001 (reported to the test, which fails)
            errors.append(exc)

    thread = threading.Thread(target=tail, daemon=True)
    thread.start()
    return thread


def run_stress(schema):
    store = PostgresEventStore(DSN, registry=registry, schema=schema)
    reader = PostgresEventStore(DSN, registry=registry, schema=schema)
    ledger = PGLedger("stress")
    runner = ProjectionRunner(store, ledger, batch_size=50, poll_interval=0.05)
    feed, target, errors = [], [], []
    try:
        store.open()
        # Test-only: every inserted row sleeps a little, inside the writer's transaction,
        # after it took its transaction id: commits land out of position order.
        raw(
            f'CREATE FUNCTION "{schema}".jitter() RETURNS trigger LANGUAGE plpgsql AS '
            f"$$ BEGIN PERFORM pg_sleep(random() * {JITTER}); RETURN NEW; END $$"
        )
        raw(
            f'CREATE TRIGGER jitter BEFORE INSERT ON "{schema}".eventkit_events '
            f'FOR EACH ROW EXECUTE FUNCTION "{schema}".jitter()'
        )
        with workers() as start:
            writers = [start("write", schema, n, SECONDS, STREAMS) for n in range(WRITERS)]
            for writer in writers:
                writer.expect("ready")
            runner.start()
            thread = start_reader(reader, feed, target, errors)
            for writer in writers:
                writer.send("go")
            reports = [json.loads(writer.expect("{", SECONDS + WAIT)) for writer in writers]
            assert [writer.finish() for writer in writers] == [0] * WRITERS
        stored = stored_events(schema)
        target.append(stored[-1][0])
        thread.join(WAIT)
        assert not thread.is_alive(), f"the reader is held back: {reader.feed_delay()}"
        assert errors == []
        runner.wait_for(target[0], timeout=WAIT)
    finally:
        runner.stop(timeout=WAIT)
        reader.close()
        store.close()
    with psycopg.connect(DSN) as conn:
        model = read_model(conn, schema)
    return StressRun(
        feed=feed,
        stored=stored,
        written=[event for report in reports for event in report["written"]],
        appends=sum(report["appends"] for report in reports),
        multi_stream_appends=sum(report["multi"] for report in reports),
        read_model=model,
    )


@pytest.fixture(name="stress", scope="module", params=range(ROUNDS), ids=lambda n: f"round{n}")
def _stress():
    require_server()
    schema = new_schema()
    try:
        yield run_stress(schema)
    finally:
        drop_schemas([schema])


class TestStress:
    """Writer processes, a tailing reader and a projection runner, all at once."""

    def test_the_writers_raced(self, stress):
        """Some appends were acknowledged after others that hold higher positions."""
        told_by_position = sorted((position, told) for _, _, position, told in stress.written)
        overtaken, earliest_above = 0, float("inf")
        for _, told in reversed(told_by_position):
            overtaken += told > earliest_above
            earliest_above = min(earliest_above, told)
        assert stress.multi_stream_appends > 0
        assert overtaken > 0

    def test_every_acknowledged_event_is_stored_as_told(self, stress):
        """Each event a writer was told was stored sits at its stream, version and position."""
        stored = {row[0]: (row[1], row[2]) for row in stress.stored}
        told = {
            position: (stream_id, version) for stream_id, version, position, _ in stress.written
        }
        assert told == stored

    def test_the_reader_misses_no_event(self, stress):
        """Every stored event reached the tailing reader."""
        read = {position for position, *_ in stress.feed}
        assert [row[0] for row in stress.stored if row[0] not in read] == []

    def test_the_reader_gets_no_event_twice(self, stress):
        """No event id reached the tailing reader twice."""
        ids = [event_id for *_, event_id in stress.feed]
        assert len(ids) == len(set(ids))

    def test_positions_strictly_increase_in_the_feed(self, stress):
        """The reader got positions in strictly increasing order."""
        positions = [position for position, *_ in stress.feed]
        assert all(a < b for a, b in itertools.pairwise(positions))

    def test_each_streams_versions_arrive_in_order(self, stress):
        """In the reader's feed every stream's versions run 1, 2, 3, ... without a gap."""
        versions = {}
        for _, stream_id, version, _ in stress.feed:
            versions.setdefault(stream_id, []).append(version)
        assert versions == {s: list(range(1, len(v) + 1)) for s, v in versions.items()}

    def test_the_read_model_is_the_fold_of_the_events_table(self, stress):
        """The runner's balances equal a fold of the final events table."""
        assert stress.read_model[0] == fold(stress.stored)

    def test_each_event_is_applied_exactly_once(self, stress):
        """The runner applied every stored event once, and nothing else."""
        applied = {position: times for position, (times, _) in stress.read_model[1].items()}
        assert applied == {row[0]: 1 for row in stress.stored}


# -- fencing ----------------------------------------------------------------------------------


def deposits(store, stream_id, count):
    """Append *count* deposits of 1..count to a stream; return their positions."""
    events = [MoneyDeposited(Decimal(n)) for n in range(1, count + 1)]
    return list(store.append(stream_id, events).positions)


def checkpoint(store):
    found = store.projection_checkpoints().get(PGLedger.name)
    return found.position if found else 0


@pytest.fixture(name="store")
def _store(schemas):
    schemas.append(new_schema())
    store = PostgresEventStore(DSN, registry=registry, schema=schemas[-1])
    yield store
    store.close()


class TestFencing:
    """A runner paused past its lease never commits after a standby took over."""

    def test_paused_between_batches_the_fenced_checkpoint_update_refuses(self, store, schemas):
        """
        Between batches no transaction is open: the fenced checkpoint update refuses.

        A catches up in the foreground and is stopped (SIGSTOP) between two batches.
        Its lease expires; B takes the projection over, applies the rest and stops.
        A wakes, finds the checkpoint moved, reloads it, and handles the events appended
        meanwhile; moving the checkpoint renews A's lease in the same transaction, only
        where the lease row still holds A's generation: it does not, so the update
        refuses, the transaction rolls back with A's writes, and A reports the loss.
        """
        schema = schemas[-1]
        first = deposits(store, "a", 12) + deposits(store, "b", 8)
        with workers() as start:
            a = start("catch-up", schema, "A", LEASE)
            a.expect(BETWEEN_BATCHES)
            a.signal(signal.SIGSTOP)
            a.send("go")  # read once it runs again
            b = start("follow", schema, "B", LEASE, IDLE)
            b.expect("active")
            wait_until(lambda: checkpoint(store) == first[-1], "B applies the backlog")
            b.send("stop")
            assert b.finish() == 0
            late = deposits(store, "a", 3)
            # Readable once no older transaction on the server is open, which on a
            # shared server may take a while: A must not wake before it could read them.
            wait_until(lambda: store.head_position() == late[-1], "the late events readable")
            a.signal(signal.SIGCONT)
            report = json.loads(a.expect("{"))
            assert a.finish() == LOST
        with psycopg.connect(DSN) as conn:
            applied = read_model(conn, schema)[1]
        assert report["cause"].startswith("ProjectionLockLostError: ")
        assert "taken over by another runner" in report["cause"]
        assert report["calls"] == first[:5] + late  # A handled the late events...
        assert (
            applied
            == {  # ...but only its first batch is stored, and nothing twice
                position: (1, "A" if position in first[:5] else "B") for position in first
            }
        )

    def test_paused_inside_a_batch_the_server_ends_the_session(self, store, schemas):
        """
        Inside a batch the transaction is open: the server ends the idle session.

        A stops (SIGSTOP) while its handler blocks in the middle of a batch, its writes
        for the earlier events uncommitted. After ``idle_in_transaction_timeout`` the
        server ends A's session: its transaction rolls back and its locks go, so that
        the feed moves again and B, once A's lease expired, applies every event while A
        is still stopped. A wakes to a connection that is gone: its commit cannot
        happen, its runner reports the failure and stands by.
        """
        schema = schemas[-1]
        first = deposits(store, "a", 10)
        with workers() as start:
            a = start("follow", schema, "A", LEASE, IDLE, first[6])
            a.expect("blocked")
            a.signal(signal.SIGSTOP)
            a.send("go")  # read once it runs again
            b = start("follow", schema, "B", LEASE, IDLE)
            b.expect("active")
            late = deposits(store, "b", 5)
            wait_until(lambda: checkpoint(store) == late[-1], "B applies while A is stopped")
            a.signal(signal.SIGCONT)
            a.expect("log: WARNING projection 'pg_ledger': another runner took it over")
            a.send("stop")
            report = json.loads(a.expect("{"))
            b.send("stop")
            assert (a.finish(), b.finish()) == (0, 0)
        with psycopg.connect(DSN) as conn:
            applied = read_model(conn, schema)[1]
        assert [line for line in a.seen if "idle-in-transaction timeout" in line] != []
        assert report["calls"] == first[:7]
        assert report["state"] == "standby"
        assert applied == dict.fromkeys(first + late, (1, "B"))

    def test_a_session_ended_within_the_lease_fails_the_store_not_the_event(self, store, schemas):
        """A batch whose session the server ended is applied again later: no event is parked."""
        positions = deposits(store, "a", 4)
        paused = []

        def pause(recorded):
            if not paused:  # once: longer than the idle timeout, far within the lease
                paused.append(recorded.position)
                time.sleep(IDLE * 3)

        ledger = PGLedger("A", block=pause)
        ledger.error_policy = ParkOnError()
        patient = PostgresEventStore(
            DSN,
            registry=registry,
            schema=schemas[-1],
            lease_seconds=30,
            idle_in_transaction_timeout=IDLE,
        )
        try:
            with ProjectionRunner(patient, ledger, poll_interval=0.05) as runner:
                runner.wait_for(positions[-1], timeout=WAIT)
        finally:
            patient.close()
        with psycopg.connect(DSN) as conn:
            applied = read_model(conn, schemas[-1])[1]
        assert store.dead_letters(PGLedger.name) == []
        assert applied == dict.fromkeys(positions, (1, "A"))
