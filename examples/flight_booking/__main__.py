"""
A flight-booking service, event-sourced: a few writers, many more readers.

Schedules flights, then lets several booking processes sell their seats at once while
threads search without a pause. Each booking process serves customers one after the
other: a customer searches a route, takes the cheapest flight and a free seat as the
read models show them, and holds the seat. The `Flight` aggregate refuses a seat that
is taken by now, and a save that raced another process is run again (reload, run the
command again, save). Projections keep three read models in the store's database, an
SQLite file or a PostgreSQL schema: a seat map, a search table and each passenger's
bookings.

The run prints bookings/s, searches/s, the conflicts retried, and how long bookings
took to appear in search: the read side is eventually consistent, and this measures
how far behind it is. Then it checks that no seat was sold twice and that every read
model equals a fold of the events. Last, the search turns out to advertise fares that
are sold out: the fix bumps the projection's version, and the runner rebuilds the read
model beside the old one and swaps it in while searches go on, none of which fails or
sees a half-built table.

Run it from the repository's root, with eventkit installed:

    python examples/flight_booking           # the full run: under a minute
    python examples/flight_booking --short   # a few seconds; the tests run this
    python examples/flight_booking --store sqlite:///elsewhere/flights.db
    python examples/flight_booking --store 'postgresql://localhost/test?schema=flights'

Each run starts from a new file, ``flights.db`` in the current folder by default, or
drops the tables a previous run left in the PostgreSQL schema.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import multiprocessing
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from threading import BrokenBarrierError
from typing import TYPE_CHECKING

import attrs
from checks import Fold, snapshots_match
from flights import Fare, Flight, flights_in
from read_models import (
    TABLES,
    FixedFlightSearch,
    FlightSearch,
    PassengerBookings,
    Route,
    SeatMap,
    bookings_of,
    project,
    search,
)
from storage import ReadModels, database, open_store
from traffic import Plan, Searcher, Tally, Watch, book, lags, percentile

from eventkit import ProjectionRunner

if TYPE_CHECKING:
    from collections.abc import Iterator

    from eventkit import EventStore

ROUTES = (("LIS", "OSL"), ("MAD", "DUB"), ("ATH", "BER"), ("CPH", "FCO"))
DAYS = (dt.date(2026, 5, 4), dt.date(2026, 5, 5))
DEPARTURES = (dt.time(7, 10), dt.time(12, 40), dt.time(18, 55))
SEAT_LETTERS = "ABCDEF"
# Customers per seat: enough to sell out the cheap fares, not every seat.
DEMAND = 0.8
# "spawn" starts each process afresh, as on every OS, instead of copying this one with
# its threads.
CONTEXT = multiprocessing.get_context("spawn")
# Bookings come from other processes, whose appends do not wake the runner: it looks
# for them this often. A shorter interval means fresher read models and more queries.
POLL_INTERVAL = 0.02


@attrs.frozen
class Size:
    """How big a run is."""

    routes: int
    days: int
    departures: int
    rows: int
    processes: int
    searchers: int

    @property
    def seats(self) -> int:
        """The number of seats on sale."""
        return self.routes * self.days * self.departures * self.rows * len(SEAT_LETTERS)


# One searching thread already keeps a core busy (the GIL); a second shows they share it.
FULL = Size(routes=4, days=2, departures=3, rows=20, processes=3, searchers=2)
SHORT = Size(routes=2, days=1, departures=2, rows=4, processes=2, searchers=2)


def main(argv: list[str]) -> int:
    """Run the service as *argv* asks, print what happened, and return the exit status."""
    args = parse_args(argv)
    size = SHORT if args.short else FULL
    size = attrs.evolve(
        size,
        processes=args.processes or size.processes,
        searchers=args.searchers or size.searchers,
    )
    database(args.store).remove_previous_run(TABLES)
    stop_searching = threading.Event()
    with open_store(args.store) as store:
        routes = schedule(store, size)
        searchers = [
            Searcher(args.store, routes, seed, stop_searching) for seed in range(size.searchers)
        ]
        with projecting(args.store):
            # This runner runs nothing: it waits for the projection process's progress.
            progress = ProjectionRunner(store, SeatMap(), FlightSearch(), PassengerBookings())
            progress.wait_for(store.head_position())
            for searcher in searchers:
                searcher.start()
            before = sum(searcher.searches for searcher in searchers)
            tally, seconds = sell(args.store, routes, size)
            searches = sum(searcher.searches for searcher in searchers) - before
            progress.wait_for(store.head_position(), timeout=60)
            wait_until_seen(tally, searchers)
            report(tally, seconds, searches, searchers)
            fold = check(store, args.store)
        fix_the_fare_rule(store, args.store, fold, searchers)
        stop_searching.set()
        for searcher in searchers:
            searcher.join()
        show_a_passenger(args.store, fold)
    print(f"the events and read models are in {database(args.store)}")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="flight_booking", description="Sell seats on flights while searching them."
    )
    parser.add_argument("--short", action="store_true", help="a small run of a few seconds")
    parser.add_argument(
        "--store",
        default="sqlite:///flights.db",
        help="the event store: sqlite:///PATH, a path, or postgresql://HOST/DB?schema=NAME "
        "(default: sqlite:///flights.db)",
    )
    parser.add_argument(
        "--processes", type=positive, help="booking processes (full run: 3, short: 2)"
    )
    parser.add_argument(
        "--searchers", type=positive, help="searching threads (full run: 2, short: 2)"
    )
    return parser.parse_args(argv[1:])


def positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {number}")
    return number


def schedule(store: EventStore, size: Size) -> list[Route]:
    """Schedule the flights of the timetable; return the routes they fly."""
    flights = flights_in(store)
    seats = tuple(f"{row}{seat}" for row in range(1, size.rows + 1) for seat in SEAT_LETTERS)
    saver, flex = len(seats) // 5, len(seats) * 3 // 10
    routes = []
    for r, route in enumerate(ROUTES[: size.routes]):
        for day in DAYS[: size.days]:
            routes.append(Route(*route, day))
            for d, departs in enumerate(DEPARTURES[: size.departures]):
                number = f"FL{100 + 10 * r + d}"
                price = Decimal(59 + 10 * d + 5 * r).quantize(Decimal("0.01"))
                fares = (
                    Fare("saver", price, saver),
                    Fare("standard", price + 50, len(seats) - saver - flex),
                    Fare("flex", price + 140, flex),
                )
                flight = Flight(f"{number}-{day}")
                flight.schedule(number, route, day=day, departs=departs, seats=seats, fares=fares)
                flights.save(flight)
    print(
        f"scheduled {len(routes) * size.departures} flights on {len(routes)} routes: "
        f"{size.seats:,} seats"
    )
    return routes


@contextlib.contextmanager
def projecting(url: str) -> Iterator[None]:
    """Run the projection process until the block ends."""
    running, stop = CONTEXT.Event(), CONTEXT.Event()
    process = CONTEXT.Process(target=project, args=(url, running, stop, POLL_INTERVAL))
    process.start()
    try:
        if not running.wait(timeout=60):
            raise SystemExit("the projection process did not start")
        yield
    finally:
        stop.set()
        process.join()


def sell(url: str, routes: list[Route], size: Size) -> tuple[Tally, float]:
    """Run the booking processes until they served their customers; add up their tallies."""
    customers = math.ceil(size.seats * DEMAND / size.processes)
    ready = CONTEXT.Barrier(size.processes + 1)
    results: multiprocessing.Queue[Tally | str] = CONTEXT.Queue()
    processes = [
        CONTEXT.Process(target=book, args=(Plan(url, tuple(routes), customers, n), ready, results))
        for n in range(1, size.processes + 1)
    ]
    for process in processes:
        process.start()
    print(
        f"selling: {size.processes} booking processes serve {customers * size.processes:,} "
        f"customers, {size.searchers} threads search"
    )
    # A process that failed before it was ready breaks the barrier; its result says why.
    with contextlib.suppress(BrokenBarrierError):
        ready.wait(timeout=60)
    started = time.perf_counter()
    tally = Tally()
    for _ in processes:
        result = results.get(timeout=600)
        if isinstance(result, str):
            raise SystemExit(f"a booking process failed:\n{result}")
        tally.add(result)
    seconds = time.perf_counter() - started
    for process in processes:
        process.join()
    return tally, seconds


def wait_until_seen(tally: Tally, searchers: list[Searcher], timeout: float = 10) -> None:
    """Wait until searches have shown every hold, to measure the lag of each."""
    deadline = time.monotonic() + timeout
    while len(lags(tally.holds, searchers)) < len(tally.holds) and time.monotonic() < deadline:
        time.sleep(0.05)


def report(tally: Tally, seconds: float, searches: int, searchers: list[Searcher]) -> None:
    """Print the figures of the sale."""
    delays = lags(tally.holds, searchers)
    failures = [failure for searcher in searchers for failure in searcher.failures]
    print(f"sold for {seconds:.1f} s")
    print(
        f"  bookings  {tally.confirmed:,} confirmed: {tally.confirmed / seconds:,.0f} bookings/s"
        f" ({tally.abandoned:,} more held, then cancelled)"
    )
    print(
        f"  searches  {searches:,}: {searches / seconds:,.0f} searches/s, "
        f"{len(failures)} failed{f' (first: {failures[0]})' if failures else ''}"
    )
    print(f"  conflicts {tally.conflicts:,} retried: reload, run the command again, save")
    print(f"  refused   {tally.refused:,} seats that a read model still showed free")
    print(f"  no seat   {tally.turned_away:,} customers found none on their route")
    print(
        f"  lag       p50 {percentile(delays, 50) * 1000:.0f} ms, "
        f"p99 {percentile(delays, 99) * 1000:.0f} ms from a booking's commit to a search"
    )
    print(f"            showing it ({len(delays):,} of {len(tally.holds):,} bookings seen)")


def check(store: EventStore, url: str) -> Fold:
    """Print the checks: no seat sold twice, snapshots right, read models equal the fold."""
    fold = Fold.of(store.read_all())
    good, flights = snapshots_match(store, fold.flights)
    reader = ReadModels(url)
    try:
        equal = fold.compare(reader, fixed=False)
    finally:
        reader.close()
    print("checks")
    print(f"  double-booked seats: {fold.double_booked}")
    print(f"  overbooked fare classes: {fold.overbooked}")
    print(f"  flights loaded from snapshots equal full replays: {good} of {flights}")
    print(f"  read models equal the fold of {fold.events:,} events:")
    print("    " + ", ".join(f"{name} {'yes' if same else 'NO'}" for name, same in equal.items()))
    return fold


def fix_the_fare_rule(store: EventStore, url: str, fold: Fold, searchers: list[Searcher]) -> None:
    """Rebuild the search read model with the fixed fare rule while searches go on."""
    old, new = fold.answers(fixed=False), fold.answers(fixed=True)
    wrong = sum(
        a.lowest_fare != b.lowest_fare
        for route in old
        for a, b in zip(old[route], new[route], strict=True)
    )
    # Show the route where the bug misleads most: wrong fares on flights not sold out.
    example = max(
        old,
        key=lambda route: sum(
            a.seats_left > 0 and a != b for a, b in zip(old[route], new[route], strict=True)
        ),
    )
    print("the fare bug: search advertises fares whose seats are all sold")
    show_search(url, example, "version 1")
    print(f"  version 1 advertises a sold-out fare on {wrong} of {len(fold.flights)} flights")

    print(f"  rebuilding the search read model as version 2 while {len(searchers)} threads search")
    watches = [Watch(old, new) for _ in searchers]
    for searcher, watch in zip(searchers, watches, strict=True):
        searcher.watch = watch
    time.sleep(0.1)  # let the searchers see the old table for a moment
    started = time.perf_counter()
    # The bumped version makes the runner rebuild the read model from the first event,
    # into fresh tables, and swap them in when they have caught up.
    fixed = ProjectionRunner(store, SeatMap(), FixedFlightSearch(), PassengerBookings())
    fixed.run_until_caught_up()
    seconds = time.perf_counter() - started
    time.sleep(0.1)  # and the new one
    for searcher in searchers:
        searcher.watch = None
    answers = sum((watch.answers for watch in watches), Counter[str]())
    print(f"  rebuilt and swapped in {seconds:.2f} s, while {answers.total():,} searches ran;")
    print(
        "  each got the old table's answer or the new one's: "
        f"failed {answers['failed']}, half-built {answers['half-built']}"
    )
    show_search(url, example, "version 2")
    reader = ReadModels(url)
    try:
        same = fold.compare(reader, fixed=True)["search"]
    finally:
        reader.close()
    print(f"  rebuilt search equals the fold with the fixed rule: {'yes' if same else 'NO'}")


def show_search(url: str, route: Route, label: str) -> None:
    """Print what a search of *route* answers now."""
    reader = ReadModels(url)
    try:
        offers = search(reader, route)
    finally:
        reader.close()
    print(f"  search {route}, {label}:")
    for offer in offers:
        fare = "sold out" if offer.lowest_fare is None else f"from {offer.lowest_fare}"
        print(f"    {offer.number} {offer.departs} {offer.seats_left:4} seats left, {fare}")


def show_a_passenger(url: str, fold: Fold) -> None:
    """Print the bookings of the passenger who booked most, from their read model."""
    passenger, _ = Counter(row.passenger for row in fold.bookings.values()).most_common(1)[0]
    reader = ReadModels(url)
    try:
        bookings = bookings_of(reader, passenger)
    finally:
        reader.close()
    print(f"passenger {passenger}'s bookings:")
    for flight, seat, fare_class, price, state in bookings:
        print(f"  {flight} seat {seat:3} {fare_class:8} {price:>7} {state}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
