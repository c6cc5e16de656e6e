"""
The relay on NATS JetStream: throughput, and latency from an append to a read model.

``relay-nats`` times a relay publishing a store's events (200 streams, interleaved) to
a fresh JetStream stream, every publish acknowledged by the server, in batches of 500
(a run of distinct streams at a time). ``relay-nats-one-stream`` does the same with
every event in one stream, where each publish waits for the one before.
``relay-latency`` runs the whole path in one process: a writer
appends one event at a time, the relay publishes it, and a read service's
`BrokerProjectionRunner` applies it to an SQLite read model; it prints the 50th and
99th percentiles of the time from an append's return to the read model's commit.

They need a NATS server with JetStream (``EVENTKIT_BENCH_NATS_URL``, by default
``nats://127.0.0.1:4222``); without one they are skipped with a note.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import time
import uuid
from typing import TYPE_CHECKING, Any

from harness import Contender, Context, benchmark
from workload import deposits, registry

from eventkit import (
    AsyncSQLiteEventStore,
    AsyncSubscriberRunner,
    BrokerProjectionRunner,
    Projection,
    Relay,
    SQLiteEventStore,
    StreamAppend,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

URL = os.environ.get("EVENTKIT_BENCH_NATS_URL", "nats://127.0.0.1:4222")
STREAMS = 200


def _nats_answers() -> str | None:
    try:
        import nats  # noqa: PLC0415 (an optional dependency)
    except ImportError:
        return "nats-py is not installed (pip install 'eventkit-es[nats]')"

    async def probe() -> None:
        client = await nats.connect(URL, connect_timeout=2, max_reconnect_attempts=0)
        try:
            await client.jetstream().account_info()
        finally:
            await client.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # noqa: BLE001 (whatever failed, there is no server to use)
        return f"{type(exc).__name__}: {exc}"
    return None


async def _delete(stream: str) -> None:
    import nats  # noqa: PLC0415

    client = await nats.connect(URL)
    with contextlib.suppress(Exception):
        await client.jetstream().delete_stream(stream)
    await client.close()


def _fill(path: Path, events: int) -> None:
    # Streams interleave in the log, as when many accounts are busy at once: each
    # append_many writes one event to each of STREAMS streams.
    with SQLiteEventStore(path, registry=registry) as store:
        batch = deposits(events)
        for start in range(0, events, STREAMS):
            chunk = batch[start : start + STREAMS]
            store.append_many(
                [StreamAppend(f"account-{n}", [deposit]) for n, deposit in enumerate(chunk)]
            )


def _fill_one_stream(path: Path, events: int) -> None:
    with SQLiteEventStore(path, registry=registry) as store:
        store.append("account-0", deposits(events))


def relay_throughput(
    context: Context, fill: Callable[[Path, int], None] = _fill
) -> list[Contender]:
    from eventkit import NatsPublisher  # noqa: PLC0415

    shared = context.folder / "events.db"
    fill(shared, context.events)

    @contextlib.contextmanager
    def trial(folder: Path) -> Iterator[Callable[[], object]]:
        path = folder / "events.db"
        shutil.copy(shared, path)
        tag = uuid.uuid4().hex[:10]
        loop = asyncio.new_event_loop()
        store = AsyncSQLiteEventStore(path, registry=registry)
        publisher = NatsPublisher(URL, stream=f"BENCH_{tag}", subject_prefix=f"bench_{tag}")
        loop.run_until_complete(publisher.open())
        runner = AsyncSubscriberRunner(store, Relay(publisher), batch_size=500)
        try:
            yield lambda: loop.run_until_complete(runner.run_until_caught_up())
        finally:
            loop.run_until_complete(publisher.close())
            loop.run_until_complete(store.close())
            loop.run_until_complete(_delete(f"BENCH_{tag}"))
            loop.close()

    return [Contender("eventkit relay", trial)]


class Arrivals(Projection):
    """Notes when each event reached the read model (and keeps a count per stream)."""

    name = "arrivals"
    tables = ("balances",)

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}

    def setup(self, tx: Any) -> None:
        tx.execute(self.sql("CREATE TABLE IF NOT EXISTS {balances} (id TEXT PRIMARY KEY, n INT)"))

    def handle(self, recorded: Any, tx: Any) -> None:
        tx.execute(
            self.sql(
                "INSERT INTO {balances} VALUES (?, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1"
            ),
            (recorded.stream_id,),
        )
        self.seen[recorded.position] = time.perf_counter()


async def _latency(folder: Path, events: int) -> list[float]:
    from eventkit import NatsPublisher, NatsSource  # noqa: PLC0415

    tag = uuid.uuid4().hex[:10]
    stream, prefix = f"BENCH_{tag}", f"bench_{tag}"
    store = AsyncSQLiteEventStore(folder / "events.db", registry=registry, synchronous="NORMAL")
    local = AsyncSQLiteEventStore(folder / "read.db", registry=registry, synchronous="NORMAL")
    publisher = NatsPublisher(URL, stream=stream, subject_prefix=prefix)
    await publisher.open()
    arrivals = Arrivals()
    relay = AsyncSubscriberRunner(store, Relay(publisher), batch_size=100, poll_interval=0.05)
    reader = BrokerProjectionRunner(
        local, NatsSource(URL, stream=stream, subject_prefix=prefix), arrivals, poll_interval=0.05
    )
    appended: dict[int, float] = {}
    batch = deposits(events)
    try:
        async with relay, reader:
            for n, deposit in enumerate(batch):
                result = await store.append(f"account-{n % STREAMS}", [deposit])
                appended[result.positions[0]] = time.perf_counter()
                await asyncio.sleep(0.002)
            await reader.wait_for(max(appended), timeout=60)
    finally:
        await publisher.close()
        await store.close()
        await local.close()
        await _delete(stream)
    return [arrivals.seen[p] - appended[p] for p in appended]


def relay_latency(context: Context) -> list[Contender]:
    @contextlib.contextmanager
    def trial(folder: Path) -> Iterator[Callable[[], object]]:
        latencies: list[float] = []
        yield lambda: latencies.extend(asyncio.run(_latency(folder, context.events)))
        cuts = statistics.quantiles(latencies, n=100)
        print(
            f"    append to read model: p50 {cuts[49] * 1000:.1f} ms, "
            f"p99 {cuts[98] * 1000:.1f} ms ({len(latencies)} events)"
        )

    return [Contender("eventkit relay", trial)]


_PROBLEM = _nats_answers()
if _PROBLEM is None:
    benchmark(
        "relay-nats",
        "relay {events:,} events to NATS JetStream, every publish acknowledged",
        events=20_000,
        quick_events=2_000,
    )(relay_throughput)
    benchmark(
        "relay-nats-one-stream",
        "relay {events:,} events of one stream to NATS JetStream, one at a time",
        events=5_000,
        quick_events=500,
    )(lambda context: relay_throughput(context, _fill_one_stream))
    benchmark(
        "relay-latency",
        "{events:,} appends one at a time to a read model through NATS (rate: the whole run)",
        events=2_000,
        quick_events=300,
    )(relay_latency)
else:
    print(f"bench_relay: the relay benchmarks are skipped: no NATS JetStream at {URL}: {_PROBLEM}")
