"""
Projection catch-up: a ProjectionRunner against bare sqlite3 code doing the same work.

Both read the same 50,000 events from the same file and count them by type into a
table in that file, a batch per transaction, moving a checkpoint in the same
transaction. The bare loop selects a page of rows after its checkpoint, decodes each
event's JSON and upserts the count; what it leaves out is what eventkit adds: decoding
into event classes, the envelope, the checkpoint check, the projection lock and the
error policy.

The events are this module's own (three types, so there is something to count by type);
the store is filled once, untimed, and each repetition catches up on a copy of it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs
from harness import BASELINE, Contender, Context, benchmark

from eventkit import (
    EventRegistry,
    Projection,
    ProjectionRunner,
    SQLiteEventStore,
    StreamAppend,
    event,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

registry = EventRegistry()


@event("Opened", registry=registry)
@attrs.frozen
class Opened:
    owner: str


@event("Deposited", registry=registry)
@attrs.frozen
class Deposited:
    amount: Decimal


@event("Withdrawn", registry=registry)
@attrs.frozen
class Withdrawn:
    amount: Decimal


COUNT = (
    "INSERT INTO {table} (event_type, events) VALUES (?, 1) "
    "ON CONFLICT (event_type) DO UPDATE SET events = events + 1"
)
CREATE = "CREATE TABLE IF NOT EXISTS {table} (event_type TEXT PRIMARY KEY, events INTEGER)"


class CountByType(Projection):
    """Counts events by type name into a table."""

    name = "count_by_type"
    tables = ("event_counts",)

    def setup(self, tx: sqlite3.Connection) -> None:
        tx.execute(CREATE.format(table=self.table("event_counts")))

    def handle(self, recorded: Any, tx: sqlite3.Connection) -> None:
        tx.execute(COUNT.format(table=self.table("event_counts")), (recorded.event_type,))


def history(count: int) -> list[StreamAppend]:
    """*count* events over accounts of ten events each: an opening, deposits, withdrawals."""
    appends = []
    for account in range(count // 10):
        events: list[object] = [Opened(f"owner {account}")]
        events += [Deposited(Decimal(n)) for n in range(6)]
        events += [Withdrawn(Decimal(n)) for n in range(3)]
        appends.append(StreamAppend(f"account-{account}", events))
    return appends


def catch_up(batch_size: int) -> Callable[[Context], list[Contender]]:
    def make(context: Context) -> list[Contender]:
        source = context.folder / "events.db"
        with SQLiteEventStore(source, registry=registry, synchronous="NORMAL") as store:
            appends = history(context.events)
            for start in range(0, len(appends), 100):
                store.append_many(appends[start : start + 100])

        def copy(folder: Path) -> Path:
            shutil.copy(source, folder / "events.db")
            return folder / "events.db"

        @contextlib.contextmanager
        def with_eventkit(folder: Path) -> Iterator[Callable[[], object]]:
            path = copy(folder)
            with SQLiteEventStore(
                path, registry=registry, synchronous=context.synchronous
            ) as store:
                runner = ProjectionRunner(store, CountByType(), batch_size=batch_size)
                yield runner.run_until_caught_up

        @contextlib.contextmanager
        def with_bare(folder: Path) -> Iterator[Callable[[], object]]:
            conn = sqlite3.connect(copy(folder), isolation_level=None)
            conn.execute(f"PRAGMA synchronous = {context.synchronous}")
            conn.execute(CREATE.format(table="event_counts"))
            conn.execute("CREATE TABLE checkpoints (name TEXT PRIMARY KEY, position INTEGER)")

            def step() -> None:
                position = 0
                while True:
                    rows = conn.execute(
                        "SELECT position, event_type, data FROM eventkit_events "
                        "WHERE position > ? ORDER BY position LIMIT ?",
                        (position, batch_size),
                    ).fetchall()
                    if not rows:
                        return
                    conn.execute("BEGIN IMMEDIATE")
                    for _, event_type, data in rows:
                        json.loads(data)
                        conn.execute(COUNT.format(table="event_counts"), (event_type,))
                    position = rows[-1][0]
                    conn.execute(
                        "INSERT OR REPLACE INTO checkpoints VALUES ('count_by_type', ?)",
                        (position,),
                    )
                    conn.execute("COMMIT")

            yield step
            conn.close()

        return [Contender("eventkit", with_eventkit), Contender(BASELINE, with_bare)]

    return make


for _size in (1, 100, 1000):
    benchmark(
        f"projection-batch-{_size}",
        f"catch up on {{events:,}} events, counting them by type, batches of {_size}",
        events=50_000,
        quick_events=5_000,
        # Batched, catch-up is where eventkit must leave the peer far behind; one event
        # per transaction it does what the peer does.
        peer_target=None if _size == 1 else 20.0,
    )(catch_up(_size))
