"""
Benchmarks that need processes of their own: two writers on one file, and memory.

``writers-2``: two processes append new one-event streams to one SQLite file at once,
each its own half of the streams, through eventkit, through eventsourcing (if installed)
and through bare sqlite3. Each process is started, imports and connects before timing
starts; the time is from telling both to go until both are done.

``read-all-memory``: a process reads a store of a million events with ``read_all``;
the measurement is how much its resident set grew while it did (``read_all`` streams:
the growth must not follow the size of the store).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import bench_peer_eventsourcing
from bench_sqlite import fill, open_bare, open_store
from harness import BASELINE, PEER, Contender, Context, Trial, benchmark

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

WORKER = str(Path(__file__).with_name("process_worker.py"))
WRITERS = 2


def writers(kind: str, context: Context) -> Trial:
    """Return a trial: WRITERS processes of *kind* appending the benchmark's events."""
    each = context.events // WRITERS

    @contextlib.contextmanager
    def trial(folder: Path) -> Iterator[Callable[[], object]]:
        path = folder / "events.db"
        if kind == "eventkit":
            open_store(path, context).close()
        elif kind == "bare":
            open_bare(path, context).close()
        command = [sys.executable, WORKER, "append", kind, str(path)]
        processes = [
            subprocess.Popen(
                [*command, str(n * each), str(each), context.synchronous],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(WRITERS)
        ]
        try:
            for process in processes:
                assert process.stdout.readline().strip() == "ready"

            def step() -> None:
                for process in processes:
                    process.stdin.write("go\n")
                    process.stdin.flush()
                for process in processes:
                    assert process.stdout.readline().strip() == "done"

            yield step
        finally:
            for process in processes:
                process.stdin.close()
                assert process.wait(timeout=600) == 0

    return trial


@benchmark(
    "writers-2",
    f"{{events:,}} new streams of one event, one transaction each, by {WRITERS} processes",
    events=4_000,
    quick_events=1_000,
    peer_target=1.5,
)
def two_writers(context: Context) -> list[Contender]:
    contenders = [
        Contender("eventkit", writers("eventkit", context)),
        Contender(BASELINE, writers("bare", context)),
    ]
    if bench_peer_eventsourcing.AVAILABLE:
        contenders.append(Contender(PEER, writers("eventsourcing", context)))
    return contenders


@benchmark(
    "read-all-memory",
    "read_all over {events:,} events: growth of the resident set",
    events=1_000_000,
    quick_events=100_000,
    unit="MB",
    limit=50,
)
def read_all_memory(context: Context) -> list[Contender]:
    path = context.folder / "events.db"
    fill(path, context, streams=context.events // 1000, per_stream=1000)

    @contextlib.contextmanager
    def trial(folder: Path) -> Iterator[Callable[[], object]]:  # noqa: ARG001
        def step() -> float:
            command = [sys.executable, WORKER, "memory", str(path), str(context.events)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            return float(done.stdout)

        yield step

    return [Contender("eventkit", trial)]
