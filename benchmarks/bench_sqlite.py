"""
SQLiteEventStore against bare sqlite3 code doing the same work on the same table.

The bare baselines write and read the very table the store uses (created by a store
with the same synchronous setting), so indexes and row sizes are identical. They
serialize with json.dumps, make ids with uuid4 and select whole rows, as plain sqlite3
code storing events would. What they leave out is what eventkit adds: validation,
the registry, cattrs, the envelope, the version check and idempotency.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from harness import BASELINE, Contender, Context, Trial, benchmark
from workload import Account, as_json_dict, deposits, registrations, registry

from eventkit import NO_STREAM, Repository, SQLiteEventStore
from eventkit._json import use_orjson, using_orjson

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

BATCH = 100
# The columns of a stored event, data last (as the bare loops decode it).
ROW_COLUMNS = (
    "stream_id, version, position, event_id, event_type, schema_version, metadata, "
    "recorded_at, data"
)
INSERT = (
    "INSERT INTO eventkit_events (position, stream_id, version, event_id, event_type, "
    "schema_version, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def open_store(path: Path, context: Context) -> SQLiteEventStore:
    return SQLiteEventStore(path, registry=registry, synchronous=context.synchronous)


def open_bare(path: Path, context: Context) -> sqlite3.Connection:
    """Create the store's tables, then connect as plain sqlite3 code would."""
    open_store(path, context).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {context.synchronous}")
    return conn


def row(position: int, stream_id: str, version: int, deposit: object, stamp: str) -> tuple:
    return (
        position,
        stream_id,
        version,
        uuid.uuid4().bytes,
        "MoneyDeposited",
        1,
        json.dumps(as_json_dict(deposit)),
        "{}",
        stamp,
    )


# Unless EVENTKIT_JSON=stdlib turned it off, eventkit reads with orjson where installed.
ORJSON = using_orjson()
STDLIB_JSON = "eventkit, json"


def stdlib_json(trial: Trial) -> Trial:
    """Return *trial* reading JSON with the standard library only (orjson turned off)."""

    @contextlib.contextmanager
    def with_stdlib(folder: Path) -> Iterator[Callable[[], object]]:
        use_orjson(enabled=False)
        try:
            with trial(folder) as step:
                yield step
        finally:
            use_orjson(enabled=True)

    return with_stdlib


def json_contenders(trial: Trial) -> list[Contender]:
    """Return eventkit's contender, and the same on the stdlib JSON path if orjson is here."""
    if not ORJSON:
        return [Contender("eventkit", trial)]
    return [Contender("eventkit", trial), Contender(STDLIB_JSON, stdlib_json(trial))]


def now() -> str:
    return datetime.now(UTC).isoformat()


def fill(path: Path, context: Context, streams: int, per_stream: int) -> None:
    """Write *streams* streams of *per_stream* deposits through eventkit (untimed)."""
    with open_store(path, context) as store:
        events = deposits(per_stream)
        for n in range(streams):
            for start in range(0, per_stream, 1000):
                store.append(f"account-{n}", events[start : start + 1000])


# -- appends ----------------------------------------------------------------------------------


@benchmark(
    "append-streams",
    "{events:,} new streams of one event, one transaction each",
    events=5_000,
    quick_events=1_000,
    target=0.80,
)
def append_streams(context: Context) -> list[Contender]:
    events = deposits(context.events)

    @contextlib.contextmanager
    def with_eventkit(folder: Path) -> Iterator[Callable[[], object]]:
        store = open_store(folder / "events.db", context)

        def step() -> None:
            for n, deposit in enumerate(events):
                store.append(f"account-{n}", [deposit], expected_version=NO_STREAM)

        yield step
        store.close()

    @contextlib.contextmanager
    def with_bare(folder: Path) -> Iterator[Callable[[], object]]:
        conn = open_bare(folder / "events.db", context)

        def step() -> None:
            for n, deposit in enumerate(events):
                conn.execute("BEGIN")
                conn.execute(INSERT, row(n + 1, f"account-{n}", 1, deposit, now()))
                conn.execute("COMMIT")

        yield step
        conn.close()

    return [Contender("eventkit", with_eventkit), Contender(BASELINE, with_bare)]


@benchmark(
    "append-batches",
    f"{{events:,}} events in transactions of {BATCH}, one new stream each",
    events=20_000,
    quick_events=5_000,
    target=0.50,
    peer_target=3.0,
)
def append_batches(context: Context) -> list[Contender]:
    events = deposits(BATCH)
    batches = context.events // BATCH

    @contextlib.contextmanager
    def with_eventkit(folder: Path) -> Iterator[Callable[[], object]]:
        store = open_store(folder / "events.db", context)

        def step() -> None:
            for n in range(batches):
                store.append(f"account-{n}", events, expected_version=NO_STREAM)

        yield step
        store.close()

    @contextlib.contextmanager
    def with_bare(folder: Path) -> Iterator[Callable[[], object]]:
        conn = open_bare(folder / "events.db", context)

        def step() -> None:
            position = 0
            for n in range(batches):
                stamp, stream_id = now(), f"account-{n}"
                rows = [
                    row(position + v, stream_id, v, deposit, stamp)
                    for v, deposit in enumerate(events, start=1)
                ]
                position += len(rows)
                conn.execute("BEGIN")
                conn.executemany(INSERT, rows)
                conn.execute("COMMIT")

        yield step
        conn.close()

    return [Contender("eventkit", with_eventkit), Contender(BASELINE, with_bare)]


# -- reads ------------------------------------------------------------------------------------


@benchmark(
    "read-all",
    "read_all over {events:,} events",
    events=50_000,
    quick_events=10_000,
    target=0.50,
    peer_target=3.0,
)
def read_all(context: Context) -> list[Contender]:
    path = context.folder / "events.db"
    fill(path, context, streams=context.events // 1000, per_stream=1000)
    return [
        *reading_contenders(path, context),
        # Only the data column: a floor no event store can reach.
        Contender("bare, data only", bare_reading(path, context, "data")),
    ]


@benchmark(
    "read-all-large",
    "read_all over {events:,} larger events (about 600 characters of JSON each)",
    events=50_000,
    quick_events=10_000,
)
def read_all_large(context: Context) -> list[Contender]:
    path = context.folder / "events.db"
    events = registrations(1000)
    with open_store(path, context) as store:
        for n in range(context.events // 1000):
            store.append(f"customer-{n}", events)
    return reading_contenders(path, context)


def reading_contenders(path: Path, context: Context) -> list[Contender]:
    """eventkit's read_all of the store at *path* (on each JSON path), and bare sqlite3's."""

    @contextlib.contextmanager
    def with_eventkit(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        store = open_store(path, context)

        def step() -> None:
            count = sum(1 for _ in store.read_all())
            assert count == context.events

        yield step
        store.close()

    return [
        *json_contenders(with_eventkit),
        # The rows read_all reads, all columns; the data decoded.
        Contender(BASELINE, bare_reading(path, context, ROW_COLUMNS)),
    ]


def bare_reading(
    path: Path, context: Context, columns: str
) -> Callable[[Path], contextlib.AbstractContextManager[Any]]:
    """A bare sqlite3 loop reading *columns* of every event row and decoding the last."""

    @contextlib.contextmanager
    def trial(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        conn = sqlite3.connect(path, isolation_level=None)
        query = f"SELECT {columns} FROM eventkit_events ORDER BY position"

        def step() -> None:
            count = 0
            for row in conn.execute(query):
                json.loads(row[-1])
                count += 1
            assert count == context.events

        yield step
        conn.close()

    return trial


@benchmark(
    "load-aggregate",
    "Repository.load of an aggregate with {events:,} events",
    events=10_000,
    quick_events=2_000,
    peer_target=3.0,
)
def load_aggregate(context: Context) -> list[Contender]:
    path = context.folder / "events.db"
    fill(path, context, streams=1, per_stream=context.events)
    expected = sum(deposit.amount for deposit in deposits(context.events))

    @contextlib.contextmanager
    def with_eventkit(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        store = open_store(path, context)
        accounts = Repository(store, Account, stream_prefix="account-")

        def step() -> None:
            assert accounts.load("0").balance == expected

        yield step
        store.close()

    @contextlib.contextmanager
    def with_bare(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        conn = sqlite3.connect(path, isolation_level=None)

        def step() -> None:
            account = Account("0")
            history = conn.execute(
                f"SELECT {ROW_COLUMNS} FROM eventkit_events WHERE stream_id = ? ORDER BY version",
                ("account-0",),
            )
            for row in history:
                account.balance += Decimal(json.loads(row[-1])["amount"])
            assert account.balance == expected

        yield step
        conn.close()

    return [*json_contenders(with_eventkit), Contender(BASELINE, with_bare)]
