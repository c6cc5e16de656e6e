"""
Loading an aggregate from a snapshot plus its newer events, against replaying every event.

The aggregate is written through a `Repository` with ``snapshot_every=100``, one save per
100 events, as an application would write it. Each contender loads it once untimed (as
a running application has), then is timed loading it again:

- ``eventkit``: with snapshots, the aggregate's version a multiple of 100, so the
  snapshot is at the head (the usual case right after a snapshot);
- ``+99 events``: with snapshots, 99 events after the newest snapshot (the worst case
  for an interval of 100);
- ``no snapshots``: the same repository without snapshots, replaying every event;
- the bare baseline: hand-written sqlite3 code replaying every event.

The speed-up of snapshots is the ``no snapshots`` median over the ``eventkit`` median.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from decimal import Decimal
from typing import TYPE_CHECKING

from harness import BASELINE, Contender, Context, Trial, benchmark
from workload import Account, deposits, registry

from eventkit import Repository, SQLiteEventStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

INTERVAL = 100
WORST_TAIL = INTERVAL - 1


def write_account(path: Path, context: Context, events: int) -> Decimal:
    """Save an account of *events* deposits, 100 per save, snapshotting (untimed)."""
    history = deposits(events)
    with SQLiteEventStore(path, registry=registry, synchronous=context.synchronous) as store:
        accounts = Repository(store, Account, stream_prefix="account-", snapshot_every=INTERVAL)
        account = Account("0")
        for start in range(0, events, INTERVAL):
            for deposit in history[start : start + INTERVAL]:
                account.record(deposit)
            accounts.save(account)
        return account.balance


@benchmark(
    "load-snapshot",
    "Repository.load of an aggregate with {events:,} events, a snapshot every 100",
    events=10_000,
    quick_events=2_000,
    peer_target=1.0,
)
def load_snapshot(context: Context) -> list[Contender]:
    at_head = context.folder / "at-head.db"
    with_tail = context.folder / "with-tail.db"
    expected = write_account(at_head, context, context.events)
    expected_with_tail = write_account(with_tail, context, context.events + WORST_TAIL)

    def repository_load(path: Path, balance: Decimal, *, snapshots: bool) -> Trial:
        @contextlib.contextmanager
        def trial(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
            store = SQLiteEventStore(path, registry=registry, synchronous=context.synchronous)
            every = INTERVAL if snapshots else None
            accounts = Repository(store, Account, stream_prefix="account-", snapshot_every=every)

            def step() -> None:
                assert accounts.load("0").balance == balance

            # Untimed: opening a reader connection and building cattrs's functions
            # happen once per process, not once per load.
            step()
            yield step
            store.close()

        return trial

    @contextlib.contextmanager
    def with_bare(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        conn = sqlite3.connect(at_head, isolation_level=None)

        def step() -> None:
            account = Account("0")
            history = conn.execute(
                "SELECT data FROM eventkit_events WHERE stream_id = ? ORDER BY version",
                ("account-0",),
            )
            for (data,) in history:
                account.balance += Decimal(json.loads(data)["amount"])
            assert account.balance == expected

        step()
        yield step
        conn.close()

    return [
        Contender("eventkit", repository_load(at_head, expected, snapshots=True)),
        Contender(
            f"+{WORST_TAIL} events",
            repository_load(with_tail, expected_with_tail, snapshots=True),
        ),
        Contender("no snapshots", repository_load(at_head, expected, snapshots=False)),
        Contender(BASELINE, with_bare),
    ]
