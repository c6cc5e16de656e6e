"""
The write side: a flight's events and the `Flight` aggregate that guards its seats.

A flight is one aggregate, so its rules hold at every moment: a seat is held by one
booking at most, and no fare class sells more seats than it has. Each command decides
on the flight's latest state and records an event; the repository's optimistic
concurrency makes sure no other decision slipped in between.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from eventkit import Aggregate, Repository, event

if TYPE_CHECKING:
    from eventkit import EventStore

STREAM_PREFIX = "flight-"
SNAPSHOT_EVERY = 50


class BookingError(ValueError):
    """A command the flight refuses: the customer is told why and may try again."""


class SeatTakenError(BookingError):
    """The seat is held or sold already."""


class FlightFullError(BookingError):
    """Every seat of the flight is held or sold."""


@attrs.frozen
class Fare:
    """A fare class: its price, and how many of the flight's seats sell at that price."""

    fare_class: str
    price: Decimal
    seats: int


@event("FlightScheduled")
@attrs.frozen
class FlightScheduled:
    number: str
    origin: str
    destination: str
    day: dt.date
    departs: dt.time
    seats: tuple[str, ...]
    fares: tuple[Fare, ...]  # cheapest first


@event("SeatHeld")
@attrs.frozen
class SeatHeld:
    """A seat is held for a passenger, at the cheapest fare still open when held."""

    booking: str
    passenger: str
    seat: str
    fare_class: str
    price: Decimal


@event("BookingConfirmed")
@attrs.frozen
class BookingConfirmed:
    booking: str


@event("BookingCancelled")
@attrs.frozen
class BookingCancelled:
    """A held or confirmed booking is cancelled; its seat and fare are on sale again."""

    booking: str
    # What the booking freed, so that read models need not remember every booking.
    seat: str
    fare_class: str


@attrs.frozen
class Booking:
    passenger: str
    seat: str
    fare_class: str
    confirmed: bool = False


@attrs.define
class Flight(Aggregate):
    """
    One flight on one day: its seats, its fare classes and its bookings.

    Its commands check the rules on the flight's current state: a seat is held by
    one booking at most, and a hold is priced at the cheapest fare class with a seat
    left, so no class sells more seats than it has.
    """

    # Snapshots store these fields: bump this when they, or apply(), change.
    snapshot_version = 1

    number: str = ""
    origin: str = ""
    destination: str = ""
    day: dt.date | None = None
    departs: dt.time | None = None
    fares: tuple[Fare, ...] = ()
    # Every seat of the flight, and the booking that holds it (None: free).
    seats: dict[str, str | None] = attrs.Factory(dict)
    # Live bookings only: a cancelled booking is forgotten.
    bookings: dict[str, Booking] = attrs.Factory(dict)

    def schedule(
        self,
        number: str,
        route: tuple[str, str],
        *,
        day: dt.date,
        departs: dt.time,
        seats: tuple[str, ...],
        fares: tuple[Fare, ...],
    ) -> None:
        """Schedule the flight, with its seats shared out among the fare classes *fares*."""
        if self.version:
            raise BookingError(f"flight {self.id} is scheduled already")
        if sum(fare.seats for fare in fares) != len(seats):
            raise ValueError("the fare classes must share out exactly the flight's seats")
        fares = tuple(sorted(fares, key=lambda fare: fare.price))
        self.record(FlightScheduled(number, *route, day, departs, seats, fares))

    def hold(self, booking: str, passenger: str, seat: str) -> None:
        """Hold *seat* for *passenger* under the id *booking*, at the cheapest open fare."""
        if booking in self.bookings:
            raise BookingError(f"flight {self.id} has a booking {booking} already")
        if seat not in self.seats:
            raise BookingError(f"flight {self.id} has no seat {seat}")
        if self.seats[seat] is not None:
            raise SeatTakenError(f"seat {seat} on flight {self.id} is taken")
        fare = self.open_fare()
        if fare is None:
            raise FlightFullError(f"flight {self.id} is full")
        self.record(SeatHeld(booking, passenger, seat, fare.fare_class, fare.price))

    def confirm(self, booking: str) -> None:
        """Confirm a held booking: the seat is sold."""
        held = self._booking(booking)
        if not held.confirmed:  # confirming twice changes nothing, and records nothing
            self.record(BookingConfirmed(booking))

    def cancel(self, booking: str) -> None:
        """Cancel a held or confirmed booking: its seat and fare are on sale again."""
        held = self._booking(booking)
        self.record(BookingCancelled(booking, held.seat, held.fare_class))

    def seats_left(self, fare: Fare) -> int:
        """Return how many seats are still on sale in the fare class *fare*."""
        taken = sum(1 for b in self.bookings.values() if b.fare_class == fare.fare_class)
        return fare.seats - taken

    def open_fare(self) -> Fare | None:
        """Return the cheapest fare class with a seat left, or None when the flight is full."""
        return next((fare for fare in self.fares if self.seats_left(fare) > 0), None)

    def _booking(self, booking: str) -> Booking:
        if booking not in self.bookings:
            raise BookingError(f"flight {self.id} has no booking {booking}")
        return self.bookings[booking]

    def apply(self, event: object) -> None:
        match event:
            case FlightScheduled() as scheduled:
                self.number, self.origin = scheduled.number, scheduled.origin
                self.destination, self.day = scheduled.destination, scheduled.day
                self.departs, self.fares = scheduled.departs, scheduled.fares
                self.seats = dict.fromkeys(scheduled.seats)
            case SeatHeld(booking=booking, passenger=passenger, seat=seat, fare_class=fare):
                self.seats[seat] = booking
                self.bookings[booking] = Booking(passenger, seat, fare)
            case BookingConfirmed(booking=booking):
                self.bookings[booking] = attrs.evolve(self.bookings[booking], confirmed=True)
            case BookingCancelled(booking=booking, seat=seat):
                self.seats[seat] = None
                del self.bookings[booking]


def flights_in(store: EventStore) -> Repository[Flight]:
    """
    Return the repository of the flights in *store*.

    A flight's stream grows with every booking, so loading it starts from a snapshot,
    taken every `SNAPSHOT_EVERY` events, and applies only the events after it.
    """
    return Repository(store, Flight, stream_prefix=STREAM_PREFIX, snapshot_every=SNAPSHOT_EVERY)


def flight_id(stream_id: str) -> str:
    """Return the id of the flight whose events are in the stream *stream_id*."""
    return stream_id.removeprefix(STREAM_PREFIX)
