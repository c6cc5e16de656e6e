"""
The async API beside the sync one: the same work through AsyncSQLiteEventStore.

Each benchmark of ``bench_sqlite`` gets an "eventkit async" contender, timed in the
same turns as the sync store, so the table shows both side by side. Each timed step
runs one coroutine on an event loop made before timing starts; what is measured is
the async store's cost over the sync one (a hop to the store's thread per call, and
the loop's own overhead).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from bench_sqlite import BATCH
from harness import Contender, Context, peer
from workload import Account, deposits, registry

from eventkit import NO_STREAM, AsyncRepository, AsyncSQLiteEventStore

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator
    from pathlib import Path

NAME = "eventkit async"


def open_async(path: Path, context: Context) -> AsyncSQLiteEventStore:
    return AsyncSQLiteEventStore(path, registry=registry, synchronous=context.synchronous)


@contextlib.contextmanager
def on_a_loop(
    path: Path,
    context: Context,
    work: Callable[[AsyncSQLiteEventStore], Coroutine[None, None, None]],
) -> Iterator[Callable[[], object]]:
    loop = asyncio.new_event_loop()
    store = open_async(path, context)
    try:
        yield lambda: loop.run_until_complete(work(store))
    finally:
        loop.run_until_complete(store.close())
        loop.close()


@peer("append-streams")
def append_streams(context: Context) -> Contender:
    events = deposits(context.events)

    async def work(store: AsyncSQLiteEventStore) -> None:
        for n, deposit in enumerate(events):
            await store.append(f"account-{n}", [deposit], expected_version=NO_STREAM)

    return Contender(NAME, lambda folder: on_a_loop(folder / "events.db", context, work))


@peer("append-batches")
def append_batches(context: Context) -> Contender:
    events = deposits(BATCH)

    async def work(store: AsyncSQLiteEventStore) -> None:
        for n in range(context.events // BATCH):
            await store.append(f"account-{n}", events, expected_version=NO_STREAM)

    return Contender(NAME, lambda folder: on_a_loop(folder / "events.db", context, work))


@peer("read-all")
def read_all(context: Context) -> Contender:
    # Reads the file bench_sqlite.read_all filled (the shared folder), as its contenders do.
    path = context.folder / "events.db"

    async def work(store: AsyncSQLiteEventStore) -> None:
        count = 0
        async for _ in store.read_all():
            count += 1
        assert count == context.events

    return Contender(NAME, lambda folder: on_a_loop(path, context, work))  # noqa: ARG005


@peer("load-aggregate")
def load_aggregate(context: Context) -> Contender:
    path = context.folder / "events.db"
    expected = sum(deposit.amount for deposit in deposits(context.events))

    async def work(store: AsyncSQLiteEventStore) -> None:
        accounts = AsyncRepository(store, Account, stream_prefix="account-")
        assert (await accounts.load("0")).balance == expected

    return Contender(NAME, lambda folder: on_a_loop(path, context, work))  # noqa: ARG005
