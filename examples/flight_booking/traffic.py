"""
The load: booking processes that compete for seats, and threads that search.

A customer searches a route, takes the flight advertised with the lowest fare, picks
a free seat on its seat map and holds it; then pays (confirms) or walks away
(cancels). What the customer looks at is a read model, which may be a moment old:
the `Flight` decides, and refuses a seat that is taken by now.
"""

from __future__ import annotations

import bisect
import random
import statistics
import threading
import time
import traceback
from collections import Counter
from typing import TYPE_CHECKING, Concatenate, ParamSpec

import attrs
from flights import Flight, FlightFullError, SeatTakenError, flights_in
from read_models import Offer, Route, free_seats, search
from storage import ReadModels, open_store

from eventkit import ConcurrencyError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from multiprocessing.synchronize import Barrier
    from queue import Queue

    from eventkit import AppendResult, Repository

P = ParamSpec("P")

ABANDON = 0.1  # the share of customers who hold a seat and then cancel instead of paying
SEAT_TRIES = 5  # seats a customer tries before giving up on a flight
MAX_ATTEMPTS = 100  # loads of one flight for one command before giving up


@attrs.define
class Tally:
    """What one booking process did."""

    confirmed: int = 0
    abandoned: int = 0
    conflicts: int = 0  # saves refused by optimistic concurrency, then run again
    refused: int = 0  # seats the read models showed free that the flight refused
    turned_away: int = 0  # customers who found no seat on their route
    # (flight, position, time) of each hold, to measure when searches show it.
    holds: list[tuple[str, int, float]] = attrs.Factory(list)

    def add(self, other: Tally) -> None:
        """Add *other*'s counts and holds to this tally."""
        for field in ("confirmed", "abandoned", "conflicts", "refused", "turned_away"):
            setattr(self, field, getattr(self, field) + getattr(other, field))
        self.holds += other.holds


def execute(
    flights: Repository[Flight],
    flight: str,
    command: Callable[Concatenate[Flight, P], None],
    *args: P.args,
    **kwargs: P.kwargs,
) -> tuple[AppendResult | None, int]:
    """
    Run *command* on the flight and save it; on a conflict, reload and run it again.

    Returns what the save appended (None: the command recorded nothing) and how many
    conflicts were retried. A refusal (`BookingError`) is the command's answer on the
    latest state: it is raised.
    """
    for conflicts in range(MAX_ATTEMPTS):
        loaded = flights.load(flight)
        command(loaded, *args, **kwargs)
        try:
            result = flights.save(loaded)
        except ConcurrencyError:
            # Another process changed the flight since we loaded it: decide again on the
            # news, which may mean a refusal this time.
            continue
        return result, conflicts
    raise RuntimeError(f"flight {flight}: still conflicting after {MAX_ATTEMPTS} attempts")


@attrs.frozen
class Plan:
    """What one booking process is asked to do."""

    store: str
    routes: tuple[Route, ...]
    customers: int
    process: int


def book(plan: Plan, ready: Barrier, results: Queue[Tally | str]) -> None:
    """Serve the plan's customers, one after the other; put the `Tally` on *results*."""
    try:
        with open_store(plan.store) as store:
            flights = flights_in(store)
            reader = ReadModels(plan.store)
            rng = random.Random(plan.process)  # noqa: S311 (a simulation, not a secret)
            tally = Tally()
            ready.wait()  # start with the other processes
            for customer in range(plan.customers):
                booking = f"B{plan.process}-{customer:05d}"
                passenger = f"p{rng.randrange(plan.customers * 2):04d}"
                route = rng.choice(plan.routes)
                serve(
                    flights, reader, rng, route, booking=booking, passenger=passenger, tally=tally
                )
            reader.close()
        results.put(tally)
    except Exception:  # noqa: BLE001 (the parent prints it: a child's traceback is lost otherwise)
        ready.abort()  # the parent stops waiting for this process to be ready
        results.put(traceback.format_exc())


def serve(
    flights: Repository[Flight],
    reader: ReadModels,
    rng: random.Random,
    route: Route,
    *,
    booking: str,
    passenger: str,
    tally: Tally,
) -> None:
    """Serve one customer: search, choose a seat, hold it, then confirm or cancel."""
    offers = [offer for offer in search(reader, route) if offer.seats_left > 0]
    if not offers:
        tally.turned_away += 1
        return
    flight = min(offers, key=lambda offer: (offer.lowest_fare, offer.departs)).flight
    for _ in range(SEAT_TRIES):
        seats = free_seats(reader, flight)
        if not seats:
            break
        try:
            held, conflicts = execute(
                flights, flight, Flight.hold, booking, passenger, rng.choice(seats)
            )
        except SeatTakenError:
            tally.refused += 1  # the seat map was behind: look at it again
            continue
        except FlightFullError:
            tally.refused += 1
            break
        assert held is not None  # a hold always records an event
        tally.holds.append((flight, held.positions[-1], time.time()))
        tally.conflicts += conflicts
        pays = rng.random() >= ABANDON
        _, conflicts = execute(flights, flight, Flight.confirm if pays else Flight.cancel, booking)
        tally.conflicts += conflicts
        if pays:
            tally.confirmed += 1
        else:
            tally.abandoned += 1
        return
    tally.turned_away += 1


class Searcher(threading.Thread):
    """
    Searches routes without a pause, as the clients of a search service would.

    It notes when each flight's row first showed each new position, to measure how
    long bookings take to appear in search. While `watch` is set, it also checks that
    every answer is exactly one that the watch allows.
    """

    def __init__(self, url: str, routes: Sequence[Route], seed: int, stop: threading.Event) -> None:
        super().__init__(name=f"searcher-{seed}", daemon=True)
        self.url = url
        self.routes = routes
        self.rng = random.Random(seed)  # noqa: S311 (a simulation, not a secret)
        self.stop = stop
        self.searches = 0
        self.failures: list[str] = []
        # flight -> [(time, position)] each time a search showed a newer position.
        self.seen: dict[str, list[tuple[float, int]]] = {}
        self.newest: dict[str, int] = {}
        self._lock = threading.Lock()
        self.watch: Watch | None = None

    def sightings(self, flight: str) -> list[tuple[float, int]]:
        """Return when searches first showed each newer position of *flight*."""
        with self._lock:
            return list(self.seen.get(flight, ()))

    def run(self) -> None:
        reader = ReadModels(self.url)
        try:
            while not self.stop.is_set():
                route = self.rng.choice(self.routes)
                watch = self.watch
                try:
                    offers = search(reader, route)
                except reader.error as error:
                    self.failures.append(f"{type(error).__name__}: {error}")
                    if watch is not None:
                        watch.answers["failed"] += 1
                    continue
                now = time.time()
                self.searches += 1
                with self._lock:
                    for offer in offers:
                        if offer.position > self.newest.get(offer.flight, 0):
                            self.newest[offer.flight] = offer.position
                            self.seen.setdefault(offer.flight, []).append((now, offer.position))
                if watch is not None:
                    watch.answers[watch.judge(route, offers)] += 1
        finally:
            reader.close()


@attrs.define
class Watch:
    """The answers a search may give while a read model is replaced: the old or the new."""

    old: dict[Route, list[Offer]]
    new: dict[Route, list[Offer]]
    # Counter's += is not atomic across threads; each searcher gets its own Watch.
    answers: Counter[str] = attrs.Factory(Counter)

    def judge(self, route: Route, offers: list[Offer]) -> str:
        """Say whether *offers* is the old answer, the new one, or neither ("half-built")."""
        if offers == self.old[route]:
            return "old"
        if offers == self.new[route]:
            return "new"
        return "half-built"


def lags(holds: Sequence[tuple[str, int, float]], searchers: Sequence[Searcher]) -> list[float]:
    """
    Return, for each hold that a search showed, the seconds from its commit to that search.

    A hold at position p shows in a flight's row once the row's position reaches p.
    """
    shown: dict[str, tuple[list[float], list[int]]] = {}
    for flight in {flight for flight, _, _ in holds}:
        sightings = sorted(s for searcher in searchers for s in searcher.sightings(flight))
        times, positions, highest = [], [], 0
        for seen_at, position in sightings:
            highest = max(highest, position)
            times.append(seen_at)
            positions.append(highest)
        shown[flight] = (times, positions)
    result = []
    for flight, position, committed in holds:
        times, positions = shown.get(flight, ([], []))
        index = bisect.bisect_left(positions, position)
        if index < len(times):
            # A search may show the hold before the booking process reads its clock.
            result.append(max(0.0, times[index] - committed))
    return result


def percentile(values: Sequence[float], percent: int) -> float:
    """Return the *percent* percentile of *values*, interpolated between the nearest two."""
    if len(values) < 2:  # statistics.quantiles needs two values
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]
