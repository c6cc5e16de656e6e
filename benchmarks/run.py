"""
Run eventkit's benchmarks and print medians, events/s and the ratio to a bare baseline.

    python benchmarks/run.py                      # everything, synchronous=FULL
    python benchmarks/run.py read-all --quick     # one benchmark, smaller and faster
    python benchmarks/run.py --synchronous NORMAL --repeat 9
    python benchmarks/run.py --list
    python benchmarks/run.py --json results.json  # the table, and the results as JSON

Benchmarks live in the ``bench_*.py`` modules beside this file; each registers itself
with ``harness.benchmark``. Add a module there to add benchmarks.

``--json FILE`` writes one object, so that runs can be compared (schema version 1):

- ``schema``: 1; a change that breaks readers of this layout raises it.
- ``environment``: ``python``, ``implementation``, ``sqlite``, ``platform``, ``cpus``,
  ``eventkit``, ``eventsourcing`` and ``orjson`` (versions, null if not installed),
  ``json`` (the reading path: "orjson" or "stdlib"), ``started`` (UTC, ISO 8601).
- ``settings``: ``synchronous``, ``repeat``, ``quick``.
- ``benchmarks``: one object per benchmark run, in order: ``name``, ``title``, ``unit``
  (``"s"``, or what the measurement is in, e.g. ``"MB"``), ``events``, ``baseline`` and
  ``peer`` (the contenders the ratios are to, or null), ``target`` (eventkit over the
  baseline), ``peer_target`` (eventkit over the peer), ``limit`` (for measurements), and
  ``contenders``: each with ``name``, ``median`` and ``samples`` (in ``unit``),
  ``events_per_second`` (null for measurements) and ``ratio`` (to the baseline and the
  peer, by name: speed over theirs, or for measurements, theirs over this one).

Connection strings are never written: they may hold passwords.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata
import json
import os
import platform
import sqlite3
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402 (found through the path set above)


def load_benchmarks() -> dict[str, harness.Benchmark]:
    for module in sorted(HERE.glob("bench_*.py")):
        importlib.import_module(module.stem)
    return harness.REGISTRY


def main(argv: list[str] | None = None) -> int:
    benchmarks = load_benchmarks()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (all)")
    parser.add_argument("--quick", action="store_true", help="fewer events: a smoke test")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (5)")
    parser.add_argument(
        "--synchronous", choices=["FULL", "NORMAL"], default="FULL", help="durability (FULL)"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the results to FILE as JSON"
    )
    args = parser.parse_args(argv)
    if args.list:
        for bench in benchmarks.values():
            print(f"{bench.name:<20} {bench.title.format(events=bench.events)}")
        return 0
    unknown = [name for name in args.names if name not in benchmarks]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; see --list")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    print(
        f"eventkit benchmarks: Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}, synchronous={args.synchronous}, "
        f"median of {args.repeat} repetitions{', quick' if args.quick else ''}"
    )
    output = {
        "schema": 1,
        "environment": environment(),
        "settings": {"synchronous": args.synchronous, "repeat": args.repeat, "quick": args.quick},
        "benchmarks": [],
    }
    for name in args.names or benchmarks:
        results = harness.run(
            benchmarks[name], quick=args.quick, repeat=args.repeat, synchronous=args.synchronous
        )
        for line in harness.report(results):
            print(line, flush=True)
        output["benchmarks"].append(harness.as_record(results))
        if args.json is not None:  # written after each benchmark: a long run keeps its part
            args.json.write_text(json.dumps(output, indent=2) + "\n")
    return 0


def version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Return what a run's numbers depend on, beyond the benchmarks' own settings."""
    from eventkit._json import using_orjson  # noqa: PLC0415 (after sys.path is set)

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "eventkit": version("eventkit-es"),
        "eventsourcing": version("eventsourcing"),
        "orjson": version("orjson"),
        "json": "orjson" if using_orjson() else "stdlib",
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


if __name__ == "__main__":
    sys.exit(main())
