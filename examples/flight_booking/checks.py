"""
The checks: no seat sold twice, and every read model equal to a fold of the events.

`Fold` rebuilds what the read models should hold from `read_all`, in plain Python and
without the projections' code, so that it checks them instead of repeating them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import attrs
from flights import (
    STREAM_PREFIX,
    BookingCancelled,
    BookingConfirmed,
    Flight,
    FlightScheduled,
    SeatHeld,
    flight_id,
    flights_in,
)
from read_models import Offer, Route

from eventkit import Repository

if TYPE_CHECKING:
    from collections.abc import Iterable
    from decimal import Decimal

    from storage import ReadModels

    from eventkit import EventStore, RecordedEvent


class BookingRow(NamedTuple):
    """A row of the passenger bookings read model, without its key."""

    passenger: str
    flight: str
    seat: str
    fare_class: str
    price: str
    state: str


@attrs.define
class Fold:
    """What the read models should hold, folded from the events in plain Python."""

    events: int = 0
    double_booked: int = 0  # holds or sales of a seat that another booking had
    overbooked: int = 0  # holds beyond the seats of a fare class
    flights: dict[str, FlightScheduled] = attrs.Factory(dict)
    # (flight, seat) -> (state, booking)
    seats: dict[tuple[str, str], tuple[str, str | None]] = attrs.Factory(dict)
    # flight -> fare class -> seats left
    fare_seats: dict[str, dict[str, int]] = attrs.Factory(dict)
    # flight -> the last event that changed what a search shows of it
    positions: dict[str, int] = attrs.Factory(dict)
    bookings: dict[str, BookingRow] = attrs.Factory(dict)

    @classmethod
    def of(cls, events: Iterable[RecordedEvent[Any]]) -> Fold:
        """Fold *events*, in position order."""
        fold = cls()
        for recorded in events:
            fold.apply(recorded)
        return fold

    def apply(self, recorded: RecordedEvent[Any]) -> None:
        """Apply one event."""
        self.events += 1
        flight = flight_id(recorded.stream_id)
        match recorded.event:
            case FlightScheduled() as scheduled:
                self.flights[flight] = scheduled
                self.seats |= {(flight, seat): ("free", None) for seat in scheduled.seats}
                self.fare_seats[flight] = {f.fare_class: f.seats for f in scheduled.fares}
                self.positions[flight] = recorded.position
            case SeatHeld(booking=booking, seat=seat, fare_class=fare_class) as held:
                if self.seats[flight, seat][0] != "free":
                    self.double_booked += 1
                self.seats[flight, seat] = ("held", booking)
                self.fare_seats[flight][fare_class] -= 1
                if self.fare_seats[flight][fare_class] < 0:
                    self.overbooked += 1
                self.positions[flight] = recorded.position
                self.bookings[booking] = BookingRow(
                    held.passenger, flight, seat, fare_class, str(held.price), "held"
                )
            case BookingConfirmed(booking=booking):
                seat = self.bookings[booking].seat
                if self.seats[flight, seat] != ("held", booking):
                    self.double_booked += 1
                self.seats[flight, seat] = ("sold", booking)
                self.bookings[booking] = self.bookings[booking]._replace(state="confirmed")
            case BookingCancelled(booking=booking, seat=seat, fare_class=fare_class):
                self.seats[flight, seat] = ("free", None)
                self.fare_seats[flight][fare_class] += 1
                self.positions[flight] = recorded.position
                self.bookings[booking] = self.bookings[booking]._replace(state="cancelled")

    def lowest_fare(self, flight: str, *, fixed: bool) -> Decimal | None:
        """Return the fare a search should advertise for *flight*, by version 1's rule or 2's."""
        left = self.fare_seats[flight]
        # Version 1 advertised every fare class, version 2 only those with seats left.
        prices = [f.price for f in self.flights[flight].fares if not fixed or left[f.fare_class]]
        return min(prices, default=None)

    def answers(self, *, fixed: bool) -> dict[Route, list[Offer]]:
        """Return what a search of each route should answer."""
        answers: dict[Route, list[Offer]] = {}
        for flight, scheduled in self.flights.items():
            route = Route(scheduled.origin, scheduled.destination, scheduled.day)
            offer = Offer(
                flight,
                scheduled.number,
                scheduled.departs.strftime("%H:%M"),
                sum(self.fare_seats[flight].values()),
                self.lowest_fare(flight, fixed=fixed),
                self.positions[flight],
            )
            answers.setdefault(route, []).append(offer)
        for offers in answers.values():
            offers.sort(key=lambda offer: offer.departs)
        return answers

    def compare(self, reader: ReadModels, *, fixed: bool) -> dict[str, bool]:
        """Say, per read model, whether its tables hold exactly what this fold does."""
        seat_map = {
            (flight, seat, state, booking)
            for (flight, seat), (state, booking) in self.seats.items()
        }
        search = set()
        for route, offers in self.answers(fixed=fixed).items():
            for o in offers:
                fare = None if o.lowest_fare is None else str(o.lowest_fare)
                day = route.day.isoformat()
                search.add(
                    (o.flight, o.number, *route[:2], day, o.departs, o.seats_left, fare, o.position)
                )
        fares = {
            (flight, fare.fare_class, str(fare.price), self.fare_seats[flight][fare.fare_class])
            for flight, scheduled in self.flights.items()
            for fare in scheduled.fares
        }
        bookings = {(booking, *booked) for booking, booked in self.bookings.items()}
        return {
            "seat map": seat_map == set(reader.query("SELECT * FROM seat_map")),
            "search": search == set(reader.query("SELECT * FROM flight_search"))
            and fares == set(reader.query("SELECT * FROM fare_seats")),
            "passenger bookings": bookings == set(reader.query("SELECT * FROM passenger_bookings")),
        }


def snapshots_match(store: EventStore, flights: Iterable[str]) -> tuple[int, int]:
    """Return how many *flights* load from snapshots equal to a full replay, and of how many."""
    with_snapshots = flights_in(store)
    replay = Repository(store, Flight, stream_prefix=STREAM_PREFIX)
    results = [with_snapshots.load(flight) == replay.load(flight) for flight in flights]
    return sum(results), len(results)
