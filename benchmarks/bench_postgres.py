"""
PostgresEventStore: the SQLite benchmarks on PostgreSQL, and appends by writer processes.

The four single-process cases of ``bench_sqlite`` run against a PostgreSQL server, each
beside bare psycopg code doing the same work on the same table (one INSERT per event,
or ``executemany`` per batch, with positions counted in Python; SELECTs of whole rows
with the JSON decoded). What the bare code leaves out is what eventkit adds: the
stream locks, the version check, idempotency, positions that never let a reader skip
a late commit, the NOTIFY that wakes runners, and decoding into event classes.

``pg-writers`` measures appends by 1, 4 and 8 writer processes, each appending one
event at a time to 50 streams of its own, with the expected version: eventkit's design
(each append locks only its streams) beside the same store with one change, an append
that locks the whole events table ``IN EXCLUSIVE MODE`` instead, as the eventsourcing
library's PostgreSQL recorder does. Each repetition starts the processes and lets them
connect untimed; the time is from "go" to the last one done. ``pg-writers-1ms`` is the
same with 1 ms more inside every append's transaction, locks held (a test-only trigger
sleeps): the round trips to a server on another machine, or a slower disk. On a local
server with few cores the CPU, not the lock, bounds ``pg-writers``; the longer the
locks are held, the more it matters which ones an append takes.

Every trial works in a schema of its own, dropped afterwards. The server is the one at
``EVENTKIT_BENCH_POSTGRES_DSN`` (a local one by default), at its own durability
settings: ``--synchronous`` does not apply. When psycopg is missing or no server
answers, these benchmarks are left out with a note.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from harness import Contender, Context, benchmark
from workload import Account, as_json_dict, deposits, registry

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

DSN = os.environ.get("EVENTKIT_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BARE = "bare psycopg"
BATCH = 100
WRITERS = (1, 4, 8)
STREAMS_PER_WRITER = 50
COLUMNS = (
    "stream_id, version, position, event_id, event_type, schema_version, metadata, "
    "recorded_at, data"
)
INSERT = (
    "INSERT INTO eventkit_events (position, stream_id, version, event_id, event_type, "
    "schema_version, data, metadata, recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _problem() -> str | None:
    """Say why PostgreSQL cannot be benchmarked here, or return None."""
    try:
        import psycopg  # noqa: PLC0415 (an optional dependency)
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        with psycopg.connect(DSN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        # Not the DSN itself: it may hold a password.
        return f"no PostgreSQL server answers: {str(exc).strip().splitlines()[0]}"


# -- stores and schemas ---------------------------------------------------------------------


def store_class(design: str) -> Any:
    """Return the store class of *design*: ``streams`` (eventkit's) or ``table``."""
    from eventkit import PostgresEventStore  # noqa: PLC0415 (needs psycopg)

    if design == "streams":
        return PostgresEventStore

    class TableLockedStore(PostgresEventStore):
        """The store, but each append locks the events table instead of its streams."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Same statement count and round trips; the lock taken is the table's.
            self._sql.lock_streams = f'SELECT "{self.schema}".lock_events(%s::bigint[])'

    return TableLockedStore


def create_schema(design: str = "streams", latency: float = 0.0) -> str:
    """
    Create a schema holding the store's tables, and what *design* and *latency* need.

    With *latency*, each INSERT into the events table sleeps that many seconds in the
    appending transaction, while it holds its locks: a stand-in for the round trips of
    a server further away than this one, or for a slower disk.
    """
    import psycopg  # noqa: PLC0415 (needs psycopg)

    schema = f"eventkit_bench_{uuid.uuid4().hex[:12]}"
    store = store_class("streams")(DSN, registry=registry, schema=schema)
    store.open()
    store.close()
    with psycopg.connect(DSN, autocommit=True) as conn:
        if design == "table":
            conn.execute(
                f'CREATE FUNCTION "{schema}".lock_events(keys bigint[]) RETURNS void '
                f'LANGUAGE plpgsql AS $$ BEGIN LOCK TABLE "{schema}".eventkit_events '
                "IN EXCLUSIVE MODE; END $$"
            )
        if latency:
            conn.execute(
                f'CREATE FUNCTION "{schema}".latency() RETURNS trigger LANGUAGE plpgsql '
                f"AS $$ BEGIN PERFORM pg_sleep({latency}); RETURN NULL; END $$"
            )
            conn.execute(
                f'CREATE TRIGGER latency AFTER INSERT ON "{schema}".eventkit_events '
                f'FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".latency()'
            )
    return schema


def drop_schema(schema: str) -> None:
    import psycopg  # noqa: PLC0415 (needs psycopg)

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def fresh_schema(design: str = "streams", latency: float = 0.0) -> Iterator[str]:
    schema = create_schema(design, latency)
    try:
        yield schema
    finally:
        drop_schema(schema)


def shared_schema() -> str:
    """A schema that several trials read; dropped when the benchmarks end."""
    schema = create_schema()
    atexit.register(drop_schema, schema)
    return schema


def open_store(schema: str) -> Any:
    return store_class("streams")(DSN, registry=registry, schema=schema)


@contextlib.contextmanager
def bare_connection(schema: str) -> Iterator[Any]:
    import psycopg  # noqa: PLC0415 (needs psycopg)

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        yield conn


def row(position: int, stream_id: str, version: int, deposit: Any) -> tuple[Any, ...]:
    data = json.dumps(as_json_dict(deposit))
    return (position, stream_id, version, uuid.uuid4(), "MoneyDeposited", 1, data, "{}", now())


def now() -> datetime:
    return datetime.now(UTC)


def fill(schema: str, streams: int, per_stream: int) -> None:
    """Write *streams* streams of *per_stream* deposits through eventkit (untimed)."""
    store = open_store(schema)
    events = deposits(per_stream)
    for n in range(streams):
        for start in range(0, per_stream, 1000):
            store.append(f"account-{n}", events[start : start + 1000])
    store.close()


# -- single process -------------------------------------------------------------------------


def append_streams(context: Context) -> list[Contender]:
    from eventkit import NO_STREAM  # noqa: PLC0415 (needs psycopg)

    events = deposits(context.events)

    @contextlib.contextmanager
    def with_eventkit(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        with fresh_schema() as schema:
            store = open_store(schema)
            store.open()

            def step() -> None:
                for n, deposit in enumerate(events):
                    store.append(f"account-{n}", [deposit], expected_version=NO_STREAM)

            yield step
            store.close()

    @contextlib.contextmanager
    def with_bare(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        with fresh_schema() as schema, bare_connection(schema) as conn:

            def step() -> None:
                for n, deposit in enumerate(events):
                    conn.execute(INSERT, row(n + 1, f"account-{n}", 1, deposit))

            yield step

    return [Contender("eventkit", with_eventkit), Contender(BARE, with_bare)]


def append_batches(context: Context) -> list[Contender]:
    from eventkit import NO_STREAM  # noqa: PLC0415 (needs psycopg)

    events = deposits(BATCH)
    batches = context.events // BATCH

    @contextlib.contextmanager
    def with_eventkit(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        with fresh_schema() as schema:
            store = open_store(schema)
            store.open()

            def step() -> None:
                for n in range(batches):
                    store.append(f"account-{n}", events, expected_version=NO_STREAM)

            yield step
            store.close()

    @contextlib.contextmanager
    def with_bare(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        with fresh_schema() as schema, bare_connection(schema) as conn:

            def step() -> None:
                position = 0
                for n in range(batches):
                    rows = [
                        row(position + v, f"account-{n}", v, deposit)
                        for v, deposit in enumerate(events, start=1)
                    ]
                    position += len(rows)
                    with conn.transaction(), conn.cursor() as cursor:
                        cursor.executemany(INSERT, rows)

            yield step

    return [Contender("eventkit", with_eventkit), Contender(BARE, with_bare)]


def read_all(context: Context) -> list[Contender]:
    schema = shared_schema()
    fill(schema, streams=context.events // 1000, per_stream=1000)

    @contextlib.contextmanager
    def with_eventkit(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        store = open_store(schema)
        store.open()

        def step() -> None:
            assert sum(1 for _ in store.read_all()) == context.events

        yield step
        store.close()

    @contextlib.contextmanager
    def with_bare(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        with bare_connection(schema) as conn:
            query = f"SELECT {COLUMNS} FROM eventkit_events ORDER BY position"

            def step() -> None:
                count = 0
                for record in conn.execute(query):
                    json.loads(record[-1])
                    count += 1
                assert count == context.events

            yield step

    return [Contender("eventkit", with_eventkit), Contender(BARE, with_bare)]


def load_aggregate(context: Context) -> list[Contender]:
    from eventkit import Repository  # noqa: PLC0415 (needs psycopg)

    schema = shared_schema()
    fill(schema, streams=1, per_stream=context.events)
    expected = sum(deposit.amount for deposit in deposits(context.events))

    @contextlib.contextmanager
    def with_eventkit(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        store = open_store(schema)
        accounts = Repository(store, Account, stream_prefix="account-")
        store.open()

        def step() -> None:
            assert accounts.load("0").balance == expected

        yield step
        store.close()

    @contextlib.contextmanager
    def with_bare(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        with bare_connection(schema) as conn:
            query = f"SELECT {COLUMNS} FROM eventkit_events WHERE stream_id = %s ORDER BY version"

            def step() -> None:
                account = Account("0")
                for record in conn.execute(query, ("account-0",)):
                    account.balance += Decimal(json.loads(record[-1])["amount"])
                assert account.balance == expected

            yield step

    return [Contender("eventkit", with_eventkit), Contender(BARE, with_bare)]


# -- writer processes -----------------------------------------------------------------------


def writers(context: Context, latency: float = 0.0) -> list[Contender]:
    def trial(design: str, count: int) -> Callable[..., Any]:
        @contextlib.contextmanager
        def run(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
            with fresh_schema(design, latency) as schema:
                appends = context.events // count
                processes = [
                    subprocess.Popen(
                        [sys.executable, __file__, design, schema, str(n), str(appends)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    for n in range(count)
                ]
                try:
                    for process in processes:
                        assert process.stdout.readline() == "ready\n"

                    def step() -> None:
                        for process in processes:
                            process.stdin.write("go\n")
                            process.stdin.flush()
                        for process in processes:
                            assert process.stdout.readline() == "done\n"

                    yield step
                    for process in processes:
                        assert process.wait(60) == 0
                finally:
                    for process in processes:
                        if process.poll() is None:
                            process.kill()
                            process.wait()
                        process.stdin.close()
                        process.stdout.close()
                with bare_connection(schema) as conn:
                    stored = conn.execute("SELECT count(*) FROM eventkit_events").fetchone()
                assert stored == (appends * count,)

        return run

    return [
        Contender(f"{name} x{count}", trial(design, count))
        for count in WRITERS
        for design, name in (("streams", "eventkit"), ("table", "table lock"))
    ]


def write(design: str, schema: str, worker: int, appends: int) -> None:
    """Run in a writer process: connect, say ``ready``, wait for a line, append, say ``done``."""
    store = store_class(design)(DSN, registry=registry, schema=schema, pool_size=1)
    store.open()
    events = deposits(appends)
    versions = [0] * STREAMS_PER_WRITER
    print("ready", flush=True)
    sys.stdin.readline()
    for n, deposit in enumerate(events):
        stream = n % STREAMS_PER_WRITER
        stream_id = f"writer-{worker}-{stream}"
        store.append(stream_id, [deposit], expected_version=versions[stream])
        versions[stream] += 1
    print("done", flush=True)
    store.close()


# -- registration ---------------------------------------------------------------------------


def register() -> None:
    problem = _problem()
    if problem is not None:
        print(f"bench_postgres: the PostgreSQL benchmarks are left out: {problem}")
        return
    benchmark(
        "pg-append-streams",
        "PostgreSQL: {events:,} new streams of one event, one transaction each",
        events=2_000,
        quick_events=500,
    )(append_streams)
    benchmark(
        "pg-append-batches",
        f"PostgreSQL: {{events:,}} events in transactions of {BATCH}, one new stream each",
        events=10_000,
        quick_events=2_000,
    )(append_batches)
    benchmark(
        "pg-read-all",
        "PostgreSQL: read_all over {events:,} events",
        events=50_000,
        quick_events=10_000,
    )(read_all)
    benchmark(
        "pg-load-aggregate",
        "PostgreSQL: Repository.load of an aggregate with {events:,} events",
        events=10_000,
        quick_events=2_000,
    )(load_aggregate)
    benchmark(
        "pg-writers",
        "PostgreSQL: {events:,} one-event appends by 1, 4 and 8 writer processes, "
        "streams locked (eventkit) or the table",
        events=4_000,
        quick_events=800,
    )(writers)
    benchmark(
        "pg-writers-1ms",
        "PostgreSQL: the same, {events:,} appends, each holding its locks 1 ms longer "
        "(a farther server, a slower disk)",
        events=2_000,
        quick_events=400,
    )(functools.partial(writers, latency=0.001))


if __name__ == "__main__":
    design, schema, worker, appends = sys.argv[1:]
    write(design, schema, int(worker), int(appends))
else:
    register()
