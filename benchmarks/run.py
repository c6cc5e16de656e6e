"""
Run eventkit's benchmarks and print medians, events/s and the ratio to a bare baseline.

    python benchmarks/run.py                      # everything, synchronous=FULL
    python benchmarks/run.py read-all --quick     # one benchmark, smaller and faster
    python benchmarks/run.py --synchronous NORMAL --repeat 9
    python benchmarks/run.py --list

Benchmarks live in the ``bench_*.py`` modules beside this file; each registers itself
with ``harness.benchmark``. Add a module there to add benchmarks.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sqlite3
import sys
from pathlib import Path

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
    for name in args.names or benchmarks:
        results = harness.run(
            benchmarks[name], quick=args.quick, repeat=args.repeat, synchronous=args.synchronous
        )
        for line in harness.report(results):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
