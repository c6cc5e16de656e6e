"""
A process the benchmarks start: it gets ready, waits for "go", does its part, reports.

    python process_worker.py append KIND PATH FIRST COUNT SYNCHRONOUS
    python process_worker.py memory PATH EVENTS

``append``: append COUNT new one-event streams, numbered from FIRST, to the SQLite file
PATH, through KIND: ``eventkit``, ``eventsourcing`` or ``bare`` (bare sqlite3, as in
``bench_sqlite``). It prints "ready" once its imports and connection are made, waits for
a line on its standard input, appends, and prints "done". Starting Python is untimed.

``memory``: read the SQLite file PATH with ``read_all`` to its end (EVENTS events) and
print by how many MB the resident set's peak grew beyond what it was after the first
event (the connection, the converter's functions and the first page are made by then).
It reads /proc, so it runs on Linux.
"""

from __future__ import annotations

import resource
import sqlite3
import sys
from pathlib import Path
from typing import Any

import bench_sqlite
from harness import Context
from workload import deposits, registry

from eventkit import NO_STREAM, SQLiteEventStore


def appender(kind: str, path: Path, first: int, count: int, synchronous: str) -> Any:
    """Return a function doing the appends, with everything before them done."""
    events = deposits(first + count)[first:]
    context = Context(path.parent, count, synchronous)
    if kind == "eventkit":
        store = SQLiteEventStore(path, registry=registry, synchronous=synchronous)

        def append() -> None:
            for n, deposit in enumerate(events, start=first):
                store.append(f"account-{n}", [deposit], expected_version=NO_STREAM)

        return append
    if kind == "eventsourcing":
        import bench_peer_eventsourcing as peer  # noqa: PLC0415 (optional)

        app = peer.make_app(path, context)

        def append() -> None:
            for deposit in events:
                app.save(peer.ACCOUNT(deposit.amount, deposit.memo))

        return append
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    conn.execute(f"PRAGMA synchronous = {synchronous}")

    def append() -> None:
        # Positions interleave between the two writers: 1, 3, 5... and 2, 4, 6...
        for n, deposit in enumerate(events, start=first):
            conn.execute("BEGIN IMMEDIATE")
            position = 2 * (n - first) + first // count + 1
            row = bench_sqlite.row(position, f"account-{n}", 1, deposit, bench_sqlite.now())
            conn.execute(bench_sqlite.INSERT, row)
            conn.execute("COMMIT")

    return append


def resident_mb() -> float:
    """Return the resident set size now, in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def memory(path: Path, events: int) -> None:
    with SQLiteEventStore(path, registry=registry) as store:
        reading = store.read_all()
        count = 1 if next(reading, None) is not None else 0
        before = resident_mb()
        for _ in reading:
            count += 1
        assert count == events, count
        peak = peak_resident_mb()
    print(f"{max(0.0, peak - before):.3f}", flush=True)


def peak_resident_mb() -> float:
    """Return the highest resident set size of this process so far, in MB."""
    # Not getrusage's ru_maxrss: Linux carries it over from the parent through fork and
    # exec, so it would count the benchmark runner's memory. VmHWM is this process's own.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # in kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(argv: list[str]) -> None:
    if argv[0] == "memory":
        memory(Path(argv[1]), int(argv[2]))
        return
    kind, path, first, count, synchronous = argv[1:]
    append = appender(kind, Path(path), int(first), int(count), synchronous)
    print("ready", flush=True)
    sys.stdin.readline()
    append()
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
