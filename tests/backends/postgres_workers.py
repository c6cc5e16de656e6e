"""Separate processes working on one PostgreSQL event store, for the concurrency tests.

``python -m tests.backends.postgres_workers write SCHEMA WORKER SECONDS STREAMS`` prints
``ready``, waits for a line on stdin, then for SECONDS appends money events to random
streams among STREAMS: single-stream appends and atomic appends to two or three streams,
one to three events each, some with the expected version just read. It prints a JSON
report of every event it was told was stored, with the time it was told.

``python -m tests.backends.postgres_workers catch-up SCHEMA RUNNER LEASE`` catches the
ledger up in the foreground, in batches of 5. After its first batch it prints ``between
batches`` and waits for a line on stdin (the test stops it there). It exits with a JSON
report: status 0 once caught up, 3 when its projection was taken from it.

``python -m tests.backends.postgres_workers follow SCHEMA RUNNER LEASE IDLE [BLOCK_AT]``
runs the ledger in the background and prints ``active`` once it holds the projection.
Its handler prints ``blocked`` on reaching position BLOCK_AT and waits for the line
``go`` on stdin; the line ``stop`` stops the runner and ends with a JSON report.

Both runners print the log records of eventkit as ``log:`` lines.
"""

import json
import logging
import random
import sys
import threading
import time
from decimal import Decimal

from eventkit import (
    ANY,
    ConcurrencyError,
    PostgresEventStore,
    Projection,
    ProjectionError,
    ProjectionRunner,
    ProjectionState,
    StreamAppend,
)
from tests.backends.postgres_support import DSN
from tests.bank import MoneyDeposited, MoneyWithdrawn, registry

BETWEEN_BATCHES = "between batches"
LOST = 3


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class PGLedger(Projection):
    """
    Balances per stream in PostgreSQL tables written through the transaction it is given.

    ``pg_applied`` counts how often each position was applied and names the runner
    that applied it first, so a test can prove that none was applied twice, and by whom.
    """

    name = "pg_ledger"
    event_types = (MoneyDeposited, MoneyWithdrawn)
    tables = ("pg_balances", "pg_applied")

    def __init__(self, runner, *, block=None):
        self.runner = runner
        self.block = block
        self.calls = []

    def setup(self, tx):
        tx.execute(
            self.sql(
                "CREATE TABLE IF NOT EXISTS {pg_balances} "
                "(stream_id text PRIMARY KEY, amount bigint NOT NULL)"
            )
        )
        tx.execute(
            self.sql(
                "CREATE TABLE IF NOT EXISTS {pg_applied} "
                "(position bigint PRIMARY KEY, times integer NOT NULL, runner text NOT NULL)"
            )
        )

    def handle(self, recorded, tx):
        self.calls.append(recorded.position)
        if self.block is not None:
            self.block(recorded)
        amount = int(recorded.event.amount)
        if isinstance(recorded.event, MoneyWithdrawn):
            amount = -amount
        tx.execute(
            self.sql(
                "INSERT INTO {pg_balances} AS b (stream_id, amount) VALUES (%s, %s) "
                "ON CONFLICT (stream_id) DO UPDATE SET amount = b.amount + excluded.amount"
            ),
            (recorded.stream_id, amount),
        )
        tx.execute(
            self.sql(
                "INSERT INTO {pg_applied} AS a (position, times, runner) VALUES (%s, 1, %s) "
                "ON CONFLICT (position) DO UPDATE SET times = a.times + 1"
            ),
            (recorded.position, self.runner),
        )


def read_model(conn, schema):
    """Return the ledger's balances, and (times, runner) by position, read through *conn*."""
    balances = dict(conn.execute(f'SELECT stream_id, amount FROM "{schema}".pg_balances'))
    applied = {
        position: (times, runner)
        for position, times, runner in conn.execute(
            f'SELECT position, times, runner FROM "{schema}".pg_applied'
        )
    }
    return balances, applied


def money(rng, count):
    """Return *count* random deposits and withdrawals of whole amounts."""
    kinds = (MoneyDeposited, MoneyDeposited, MoneyWithdrawn)
    return [rng.choice(kinds)(Decimal(rng.randint(1, 100))) for _ in range(count)]


# -- writers --------------------------------------------------------------------------------


def write(schema, worker, seconds, streams):
    store = PostgresEventStore(DSN, registry=registry, schema=schema, pool_size=2)
    store.open()
    rng = random.Random(f"{schema} {worker}")
    written, appends, multi, lost = [], 0, 0, 0
    say("ready")
    sys.stdin.readline()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        chosen = rng.sample(range(streams), rng.choice((1, 1, 2, 3)))
        parts = []
        for n in chosen:
            stream_id = f"account-{n}"
            # Now and then an exact expected version, which a racing writer may outdate.
            expected = store.stream_version(stream_id) if rng.random() < 0.25 else ANY
            parts.append(StreamAppend(stream_id, money(rng, rng.randint(1, 3)), expected))
        try:
            if len(parts) == 1:
                part = parts[0]
                results = [
                    store.append(
                        part.stream_id, part.events, expected_version=part.expected_version
                    )
                ]
            else:
                results = store.append_many(parts)
        except ConcurrencyError:
            lost += 1
            continue
        told = time.time()
        appends += 1
        multi += len(parts) > 1
        for result in results:
            first = result.version - len(result.positions) + 1
            for n, position in enumerate(result.positions):
                written.append([result.stream_id, first + n, position, told])
    store.close()
    say(json.dumps({"written": written, "appends": appends, "multi": multi, "lost": lost}))


# -- projection runners ---------------------------------------------------------------------


class Say(logging.Handler):
    """Prints eventkit's log records, with the first line of any exception."""

    def emit(self, record):
        line = f"log: {record.levelname} {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line += f" | {type(exc).__name__}: {str(exc).splitlines()[0]}"
        say(line)


def listen_to_the_log():
    logger = logging.getLogger("eventkit")
    logger.addHandler(Say())
    logger.setLevel(logging.INFO)


class PausingStore(PostgresEventStore):
    """A store whose runner, asking for the head before a batch, may be paused first."""

    pause_before_batch = None

    def head_position(self):
        if self.pause_before_batch is not None and self.pause_before_batch():
            self.pause_before_batch = None
            say(BETWEEN_BATCHES)
            sys.stdin.readline()
        return super().head_position()


def catch_up(schema, runner, lease):
    listen_to_the_log()
    store = PausingStore(DSN, registry=registry, schema=schema, lease_seconds=lease)
    ledger = PGLedger(runner)
    # After the first batch of five committed, before the next one is read.
    store.pause_before_batch = lambda: len(ledger.calls) >= 5
    status, report = 0, {"calls": ledger.calls}
    try:
        ProjectionRunner(store, ledger, batch_size=5).run_until_caught_up(timeout=60)
    except ProjectionError as error:
        status = LOST
        cause = error.__cause__
        report |= {"error": str(error), "cause": f"{type(cause).__name__}: {cause}"}
    finally:
        store.close()
    say(json.dumps(report))
    sys.exit(status)


def follow(schema, runner, lease, idle, block_at=None):
    listen_to_the_log()
    store = PostgresEventStore(
        DSN,
        registry=registry,
        schema=schema,
        lease_seconds=lease,
        idle_in_transaction_timeout=idle,
    )
    go = threading.Event()

    def block(recorded):
        if recorded.position == block_at and not go.is_set():
            say("blocked")
            go.wait()

    ledger = PGLedger(runner, block=block)
    projection = ProjectionRunner(store, ledger, poll_interval=0.05)
    projection.start()
    threading.Thread(target=say_when_active, args=(projection,), daemon=True).start()
    for line in sys.stdin:
        if line.strip() == "go":
            go.set()
        elif line.strip() == "stop":
            break
    state = projection.status()[ledger.name].state
    projection.stop(timeout=30)
    store.close()
    say(json.dumps({"calls": ledger.calls, "state": state.value}))


def say_when_active(projection):
    while projection.status()[PGLedger.name].state is not ProjectionState.ACTIVE:
        time.sleep(0.05)
    say("active")


if __name__ == "__main__":
    command, schema, *args = sys.argv[1:]
    if command == "write":
        write(schema, int(args[0]), float(args[1]), int(args[2]))
    elif command == "catch-up":
        catch_up(schema, args[0], float(args[1]))
    else:
        block_at = int(args[3]) if len(args) > 3 else None
        follow(schema, args[0], float(args[1]), float(args[2]), block_at)
