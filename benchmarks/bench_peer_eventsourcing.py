"""
The same SQLite benchmarks on the eventsourcing library's SQLite backend, side by side.

eventsourcing is the most complete event sourcing library for Python; its SQLite
recorder also runs WAL. Install it with ``pip install -e '.[bench]'``; without it these
contenders are left out. Its connections are given the benchmark's synchronous
setting, so both libraries run at the same durability.
"""

from __future__ import annotations

import contextlib
import importlib.util
from decimal import Decimal  # noqa: TC003 (eventsourcing reads annotations at run time)
from typing import TYPE_CHECKING, Any, ClassVar

from bench_sqlite import BATCH
from harness import Contender, Context, peer
from workload import deposits

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

AVAILABLE = importlib.util.find_spec("eventsourcing") is not None
NAME = "eventsourcing"
SNAPSHOT_INTERVAL = 100  # as bench_snapshots
SYNCHRONOUS = {"level": "FULL"}


def set_durability() -> None:
    """Make every connection eventsourcing opens use SYNCHRONOUS["level"]."""
    from eventsourcing.sqlite import SQLiteConnectionPool  # noqa: PLC0415 (optional)

    create = SQLiteConnectionPool._create_connection  # noqa: SLF001 (its connection factory)

    def create_with_durability(pool: Any) -> Any:
        connection = create(pool)
        level = SYNCHRONOUS["level"]
        connection._sqlite_conn.execute(f"PRAGMA synchronous = {level}")  # noqa: SLF001
        return connection

    SQLiteConnectionPool._create_connection = create_with_durability  # noqa: SLF001


def make_app(path: Path, context: Context, snapshot_every: int | None = None) -> Any:
    from eventsourcing.application import Application  # noqa: PLC0415 (optional)

    SYNCHRONOUS["level"] = context.synchronous
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    if snapshot_every is None:
        return Application(env=env)

    class Accounts(Application):
        snapshotting_intervals: ClassVar = {ACCOUNT: snapshot_every}

    return Accounts(env=env)


def account_class() -> Any:
    from eventsourcing.domain import Aggregate, event  # noqa: PLC0415 (optional)

    class Account(Aggregate):
        # Created by its first deposit, so a one-event stream is one deposit.
        def __init__(self, amount: Decimal, memo: str) -> None:  # noqa: ARG002 (kept in the event)
            self.balance = amount

        @event("MoneyDeposited")
        def deposit(self, amount: Decimal, memo: str) -> None:  # noqa: ARG002 (kept in the event)
            self.balance += amount

    return Account


ACCOUNT = account_class() if AVAILABLE else None


def new_account(deposits: list[Any]) -> Any:
    """Return an unsaved account whose events are *deposits* (the first creates it)."""
    first, *rest = deposits
    account = ACCOUNT(first.amount, first.memo)
    for deposit in rest:
        account.deposit(deposit.amount, deposit.memo)
    return account


def append_streams(context: Context) -> Contender:
    events = deposits(context.events)

    @contextlib.contextmanager
    def trial(folder: Path) -> Iterator[Callable[[], object]]:
        app = make_app(folder / "es.db", context)

        def step() -> None:
            for deposit in events:
                app.save(ACCOUNT(deposit.amount, deposit.memo))

        yield step
        app.close()

    return Contender(NAME, trial)


def append_batches(context: Context) -> Contender:
    events = deposits(BATCH)
    batches = context.events // BATCH

    @contextlib.contextmanager
    def trial(folder: Path) -> Iterator[Callable[[], object]]:
        app = make_app(folder / "es.db", context)

        def step() -> None:
            for _ in range(batches):
                app.save(new_account(events))

        yield step
        app.close()

    return Contender(NAME, trial)


def fill(path: Path, context: Context, streams: int, per_stream: int) -> list[Any]:
    app = make_app(path, context)
    ids = []
    events = deposits(per_stream)
    for _ in range(streams):
        account = new_account(events[:1000])
        app.save(account)
        for start in range(1000, per_stream, 1000):
            for deposit in events[start : start + 1000]:
                account.deposit(deposit.amount, deposit.memo)
            app.save(account)
        ids.append(account.id)
    app.close()
    return ids


def read_all(context: Context) -> Contender:
    path = context.folder / "es.db"
    fill(path, context, context.events // 1000, 1000)

    @contextlib.contextmanager
    def trial(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        app = make_app(path, context)

        def step() -> None:
            count, start = 0, 1
            while True:
                page = app.recorder.select_notifications(start=start, limit=1000)
                for notification in page:
                    app.mapper.to_domain_event(notification)
                count += len(page)
                if len(page) < 1000:
                    break
                start = page[-1].id + 1
            assert count == context.events

        yield step
        app.close()

    return Contender(NAME, trial)


def load_aggregate(context: Context) -> Contender:
    path = context.folder / "es.db"
    (account_id,) = fill(path, context, 1, context.events)
    expected = sum(deposit.amount for deposit in deposits(context.events))

    @contextlib.contextmanager
    def trial(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        app = make_app(path, context)

        def step() -> None:
            assert app.repository.get(account_id).balance == expected

        yield step
        app.close()

    return Contender(NAME, trial)


def write_snapshotted(path: Path, context: Context, events: int) -> tuple[Any, Decimal]:
    """Save an account of *events* deposits, 100 per save, snapshotting every 100 (untimed)."""
    app = make_app(path, context, snapshot_every=SNAPSHOT_INTERVAL)
    history = deposits(events)
    account = new_account(history[:SNAPSHOT_INTERVAL])
    app.save(account)
    for start in range(SNAPSHOT_INTERVAL, events, SNAPSHOT_INTERVAL):
        for deposit in history[start : start + SNAPSHOT_INTERVAL]:
            account.deposit(deposit.amount, deposit.memo)
        app.save(account)
    app.close()
    return account.id, account.balance


def load_snapshot(context: Context) -> Contender:
    path = context.folder / "es-snapshots.db"
    account_id, expected = write_snapshotted(path, context, context.events)

    @contextlib.contextmanager
    def trial(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        app = make_app(path, context, snapshot_every=SNAPSHOT_INTERVAL)

        def step() -> None:
            assert app.repository.get(account_id).balance == expected

        step()  # untimed, as eventkit's contender: connections and caches are made once
        yield step
        app.close()

    return Contender(NAME, trial)


def counting_projection() -> tuple[Any, Any]:
    """Return eventsourcing's projection and view that count events by type, as ours."""
    from eventsourcing.projection import Projection  # noqa: PLC0415 (optional)
    from eventsourcing.sqlite import SQLiteTrackingRecorder  # noqa: PLC0415 (optional)

    class Counts(SQLiteTrackingRecorder):
        """A materialised view: a count per event type, and the tracking record."""

        def construct_create_table_statements(self) -> list[str]:
            return [
                *super().construct_create_table_statements(),
                (
                    "CREATE TABLE IF NOT EXISTS event_counts "
                    "(event_type TEXT PRIMARY KEY, n INTEGER NOT NULL)"
                ),
            ]

        def count(self, event_type: str, tracking: Any) -> None:
            # The count and the tracking record commit together: exactly once, as ours.
            with self.datastore.transaction(commit=True) as cursor:
                cursor.execute(
                    "INSERT INTO event_counts VALUES (?, 1) "
                    "ON CONFLICT (event_type) DO UPDATE SET n = n + 1",
                    (event_type,),
                )
                self._insert_tracking(cursor, tracking)

        def total(self) -> int:
            with self.datastore.transaction(commit=False) as cursor:
                cursor.execute("SELECT coalesce(sum(n), 0) FROM event_counts")
                return int(cursor.fetchone()[0])

    class CountByType(Projection[Counts]):
        name = "count_by_type"

        def process_event(self, domain_event: Any, tracking: Any) -> None:
            self.view.count(type(domain_event).__qualname__, tracking)

    return CountByType, Counts


def catch_up(context: Context) -> Contender:
    """
    eventsourcing's way to keep a view: each event processed with its tracking record.

    Its `ProjectionRunner` needs a recorder with subscriptions, which its SQLite module
    does not have ("does not support subscriptions"), so this pulls the notifications
    in pages of 1,000 and hands each event to the view, one transaction per event with
    its tracking record: what the runner's processing thread does with each event.
    """
    import sqlite3  # noqa: PLC0415 (only here)

    from eventsourcing.application import Application  # noqa: PLC0415 (optional)
    from eventsourcing.persistence import (  # noqa: PLC0415 (optional)
        InfrastructureFactory,
        Tracking,
    )

    source = context.folder / "es-projection.db"
    fill(source, context, context.events // 1000, 1000)
    projection_class, view_class = counting_projection()

    @contextlib.contextmanager
    def trial(folder: Path) -> Iterator[Callable[[], object]]:
        path = folder / "es.db"
        # A consistent copy of the filled file (its WAL included), fresh for each trial.
        with sqlite3.connect(source) as src, sqlite3.connect(path) as dst:
            src.backup(dst)
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
        app = Application(env=env)
        view = InfrastructureFactory.construct(env=env).tracking_recorder(view_class)
        projection = projection_class(view=view)

        def step() -> None:
            start = (view.max_tracking_id(app.name) or 0) + 1
            while page := app.recorder.select_notifications(start=start, limit=1000):
                for notification in page:
                    projection.process_event(
                        app.mapper.to_domain_event(notification),
                        Tracking(app.name, notification.id),
                    )
                start = page[-1].id + 1
            assert view.total() == context.events

        yield step
        app.close()

    return Contender(NAME, trial)


if AVAILABLE:
    set_durability()
    peer("append-streams")(append_streams)
    peer("append-batches")(append_batches)
    peer("read-all")(read_all)
    peer("load-aggregate")(load_aggregate)
    peer("load-snapshot")(load_snapshot)
    for _size in (1, 100, 1000):
        peer(f"projection-batch-{_size}")(catch_up)
