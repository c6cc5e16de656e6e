"""
The benchmark harness: a registry of benchmarks, timing by interleaved repetitions, a report.

A benchmark is a function decorated with `benchmark`. It receives a `Context` (its own
scratch folder, the number of events to use, the synchronous setting), prepares any
shared data once, and returns its `Contender` objects: the eventkit code under test,
the bare baseline it is compared with, and any peers. Each contender's *trial* is a
context manager that sets up one repetition (untimed) in a fresh folder and yields the
callable that is timed. A peer library's module adds its contenders to benchmarks by
name with `peer`.

Contenders are timed in turns (A B C, B C A, ...) so that a slow moment of the machine
falls on all of them alike; the report gives medians.

A benchmark whose *unit* is not seconds measures something else (resident memory in MB):
its step returns the measurement, and the report gives the median of those.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

Trial = Callable[[Path], contextlib.AbstractContextManager[Callable[[], object]]]

BASELINE = "bare sqlite3"
PEER = "eventsourcing"
SECONDS = "s"


@attrs.frozen
class Contender:
    """One implementation of a benchmark's task."""

    name: str
    trial: Trial


@attrs.frozen
class Context:
    """What a benchmark is given: a scratch folder and its parameters."""

    folder: Path
    events: int
    synchronous: str


@attrs.frozen
class Benchmark:
    """A registered benchmark."""

    name: str
    title: str
    events: int
    quick_events: int
    make: Callable[[Context], list[Contender]]
    target: float | None = None  # eventkit's rate / the baseline's rate must reach this
    peer_target: float | None = None  # eventkit's rate / the peer's rate must reach this
    unit: str = SECONDS  # anything else: the step returns the measurement, in this unit
    limit: float | None = None  # a measurement in *unit* must stay below this


REGISTRY: dict[str, Benchmark] = {}
PEERS: dict[str, list[Callable[[Context], Contender]]] = {}


def benchmark(
    name: str,
    title: str,
    *,
    events: int,
    quick_events: int,
    target: float | None = None,
    peer_target: float | None = None,
    unit: str = SECONDS,
    limit: float | None = None,
) -> Callable[[Callable[[Context], list[Contender]]], Callable[[Context], list[Contender]]]:
    """Register a benchmark under *name*; *title* may use ``{events}``."""

    def register(make: Callable[[Context], list[Contender]]) -> Callable[..., Any]:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = Benchmark(
            name, title, events, quick_events, make, target, peer_target, unit, limit
        )
        return make

    return register


def peer(
    name: str,
) -> Callable[[Callable[[Context], Contender]], Callable[[Context], Contender]]:
    """Register a peer library's contender for the benchmark *name*."""

    def register(make: Callable[[Context], Contender]) -> Callable[[Context], Contender]:
        PEERS.setdefault(name, []).append(make)
        return make

    return register


@attrs.frozen
class Result:
    """The timings of one contender in one benchmark."""

    benchmark: Benchmark
    contender: str
    events: int
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        return self.events / self.median


def time_trial(trial: Trial, folder: Path, unit: str = SECONDS) -> float:
    """Set up one repetition in *folder*, time its step (or take its result), tear it down."""
    folder.mkdir()
    try:
        with trial(folder) as step:
            gc.collect()
            start = time.perf_counter()
            measured = step()
            elapsed = time.perf_counter() - start
            return elapsed if unit == SECONDS else float(measured)
    finally:
        shutil.rmtree(folder)


def run(bench: Benchmark, *, quick: bool, repeat: int, synchronous: str) -> list[Result]:
    """Run *bench*: every contender *repeat* times, in turns."""
    events = bench.quick_events if quick else bench.events
    with tempfile.TemporaryDirectory(prefix=f"eventkit-bench-{bench.name}-") as scratch:
        shared = Path(scratch) / "shared"
        shared.mkdir()
        context = Context(shared, events, synchronous)
        contenders = bench.make(context) + [make(context) for make in PEERS.get(bench.name, [])]
        seconds: dict[str, list[float]] = {c.name: [] for c in contenders}
        for repetition in range(repeat):
            turn = repetition % len(contenders)
            for contender in contenders[turn:] + contenders[:turn]:
                folder = Path(scratch) / f"{contender.name.replace(' ', '-')}-{repetition}"
                seconds[contender.name].append(time_trial(contender.trial, folder, bench.unit))
    return [Result(bench, c.name, events, seconds[c.name]) for c in contenders]


def report(results: list[Result]) -> Iterator[str]:
    """Yield the lines of a table of *results* of one benchmark, baseline ratios included."""
    bench = results[0].benchmark
    baseline = next((r for r in results if r.contender == BASELINE), None)
    sync = next((r for r in results if r.contender == "eventkit"), None)
    peer = next((r for r in results if r.contender == PEER), None)
    yield f"{bench.name}: {bench.title.format(events=results[0].events)}"
    if bench.unit != SECONDS:
        for result in results:
            line = f"  {result.contender:<16} {result.median:10.1f} {bench.unit}"
            if bench.limit is not None and result.contender == "eventkit":
                verdict = "met" if result.median < bench.limit else "MISSED"
                line += f"   (limit {bench.limit:g} {bench.unit}: {verdict})"
            yield line
        return
    for result in results:
        line = (
            f"  {result.contender:<16} {result.median * 1000:10.1f} ms "
            f"{result.rate:12,.0f} events/s"
        )
        if baseline is not None and result is not baseline:
            ratio = result.rate / baseline.rate
            line += f"   {ratio:6.0%} of {BASELINE}"
            if result.contender == "eventkit" and bench.target is not None:
                verdict = "met" if ratio >= bench.target else "MISSED"
                line += f" (target {bench.target:.0%}: {verdict})"
        if result.contender == "eventkit" and peer is not None:
            ratio = result.rate / peer.rate
            line += f"   {ratio:5.2f}x {PEER}"
            if bench.peer_target is not None:
                verdict = "met" if ratio >= bench.peer_target else "MISSED"
                line += f" (target {bench.peer_target:.1f}x: {verdict})"
        if result.contender == "eventkit async" and sync is not None:
            line += f"   {result.rate / sync.rate:6.0%} of eventkit (sync)"
        yield line


def as_record(results: list[Result]) -> dict[str, Any]:
    """Return *results* of one benchmark as plain data, for the JSON output of run.py."""
    bench = results[0].benchmark
    by_name = {result.contender: result for result in results}
    timed = bench.unit == SECONDS
    contenders = []
    for result in results:
        ratios = {
            name: (result.rate / other.rate) if timed else (other.median / result.median)
            for name, other in by_name.items()
            if name in (BASELINE, PEER) and other is not result
        }
        contenders.append(
            {
                "name": result.contender,
                "median": result.median,
                "samples": result.seconds,
                "events_per_second": result.rate if timed else None,
                "ratio": ratios,
            }
        )
    return {
        "name": bench.name,
        "title": bench.title.format(events=results[0].events),
        "unit": bench.unit,
        "events": results[0].events,
        "baseline": BASELINE if BASELINE in by_name else None,
        "peer": PEER if PEER in by_name else None,
        "target": bench.target,
        "peer_target": bench.peer_target,
        "limit": bench.limit,
        "contenders": contenders,
    }
