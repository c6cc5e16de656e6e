"""
The read side: projections that keep read models in SQL tables, and their queries.

Each projection writes its tables through the transaction a `ProjectionRunner` hands
it, the one that also moves the projection's checkpoint: every event is applied
exactly once. The tables are in the store's database, SQLite or PostgreSQL, and the
SQL is written once for both. Readers query the tables with the functions at the end
of this module.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from flights import BookingCancelled, BookingConfirmed, FlightScheduled, SeatHeld, flight_id
from storage import in_dialect, open_store

from eventkit import Projection, ProjectionRunner

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable, Sequence
    from multiprocessing.synchronize import Event

    from storage import Connection, ReadModels

    from eventkit import RecordedEvent

# Every table the projections own, rebuild copies and indexes aside.
TABLES = ("seat_map", "flight_search", "fare_seats", "passenger_bookings")


class TableProjection(Projection):
    """A projection whose read model is tables in the store's database."""

    def execute(self, tx: Connection, statement: str, params: Sequence[Any] = ()) -> Any:
        """
        Run *statement* in the transaction *tx*; return its cursor.

        Name tables in braces (see `Projection.sql`) and parameters with ``?``.
        """
        return tx.execute(in_dialect(tx, self.sql(statement)), params)

    def execute_many(self, tx: Connection, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run *statement* once per row of parameters, as `execute` does."""
        with contextlib.closing(tx.cursor()) as cursor:
            cursor.executemany(in_dialect(tx, self.sql(statement)), rows)


class SeatMap(TableProjection):
    """Every seat of every flight: free, held or sold, and by which booking."""

    name = "seat_map"
    event_types = (FlightScheduled, SeatHeld, BookingConfirmed, BookingCancelled)
    tables = ("seat_map",)

    def setup(self, tx: Connection) -> None:
        self.execute(
            tx,
            (
                "CREATE TABLE IF NOT EXISTS {seat_map} (flight TEXT, seat TEXT, "
                "state TEXT NOT NULL, booking TEXT, PRIMARY KEY (flight, seat))"
            ),
        )

    def handle(self, recorded: RecordedEvent[Any], tx: Connection) -> None:
        flight = flight_id(recorded.stream_id)
        match recorded.event:
            case FlightScheduled(seats=seats):
                self.execute_many(
                    tx,
                    "INSERT INTO {seat_map} VALUES (?, ?, 'free', NULL)",
                    [(flight, seat) for seat in seats],
                )
            case SeatHeld(booking=booking, seat=seat):
                self.execute(
                    tx,
                    (
                        "UPDATE {seat_map} SET state = 'held', booking = ? "
                        "WHERE flight = ? AND seat = ?"
                    ),
                    (booking, flight, seat),
                )
            case BookingConfirmed(booking=booking):
                self.execute(
                    tx,
                    "UPDATE {seat_map} SET state = 'sold' WHERE flight = ? AND booking = ?",
                    (flight, booking),
                )
            case BookingCancelled(seat=seat):
                self.execute(
                    tx,
                    (
                        "UPDATE {seat_map} SET state = 'free', booking = NULL "
                        "WHERE flight = ? AND seat = ?"
                    ),
                    (flight, seat),
                )


class FlightSearch(TableProjection):
    """
    Flights by route and day, with the seats left and the lowest fare on sale.

    ``fare_seats`` keeps the seats left per fare class; ``flight_search`` has one row
    per flight, with the position of the last event applied to it, so that a reader
    can tell how fresh an answer is.
    """

    name = "flight_search"
    version = 1
    event_types = (FlightScheduled, SeatHeld, BookingCancelled)
    tables = ("flight_search", "fare_seats")

    def setup(self, tx: Connection) -> None:
        self.execute(
            tx,
            (
                "CREATE TABLE IF NOT EXISTS {flight_search} (flight TEXT PRIMARY KEY, "
                "number TEXT NOT NULL, origin TEXT NOT NULL, destination TEXT NOT NULL, "
                "day TEXT NOT NULL, departs TEXT NOT NULL, seats_left INTEGER NOT NULL, "
                "lowest_fare TEXT, position BIGINT NOT NULL)"
            ),
        )
        self.execute(
            tx,
            (
                "CREATE INDEX IF NOT EXISTS {flight_search}_by_route "
                "ON {flight_search} (origin, destination, day)"
            ),
        )
        self.execute(
            tx,
            (
                "CREATE TABLE IF NOT EXISTS {fare_seats} (flight TEXT, fare_class TEXT, "
                "price TEXT NOT NULL, seats_left INTEGER NOT NULL, "
                "PRIMARY KEY (flight, fare_class))"
            ),
        )

    def handle(self, recorded: RecordedEvent[Any], tx: Connection) -> None:
        flight = flight_id(recorded.stream_id)
        match recorded.event:
            case FlightScheduled() as scheduled:
                self.execute_many(
                    tx,
                    "INSERT INTO {fare_seats} VALUES (?, ?, ?, ?)",
                    [(flight, f.fare_class, str(f.price), f.seats) for f in scheduled.fares],
                )
                self.execute(
                    tx,
                    "INSERT INTO {flight_search} VALUES (?, ?, ?, ?, ?, ?, 0, NULL, 0)",
                    (
                        flight,
                        scheduled.number,
                        scheduled.origin,
                        scheduled.destination,
                        scheduled.day.isoformat(),
                        scheduled.departs.strftime("%H:%M"),
                    ),
                )
            case SeatHeld(fare_class=fare_class):
                self.change_seats(tx, flight, fare_class, -1)
            case BookingCancelled(fare_class=fare_class):
                self.change_seats(tx, flight, fare_class, +1)
        self.refresh(tx, flight, recorded.position)

    def change_seats(self, tx: Connection, flight: str, fare_class: str, change: int) -> None:
        self.execute(
            tx,
            (
                "UPDATE {fare_seats} SET seats_left = seats_left + ? "
                "WHERE flight = ? AND fare_class = ?"
            ),
            (change, flight, fare_class),
        )

    def refresh(self, tx: Connection, flight: str, position: int) -> None:
        rows = self.execute(
            tx, "SELECT price, seats_left FROM {fare_seats} WHERE flight = ?", (flight,)
        )
        fares = [(Decimal(price), seats_left) for price, seats_left in rows]
        lowest = self.lowest_fare(fares)
        self.execute(
            tx,
            (
                "UPDATE {flight_search} SET seats_left = ?, lowest_fare = ?, position = ? "
                "WHERE flight = ?"
            ),
            (
                sum(seats_left for _, seats_left in fares),
                None if lowest is None else str(lowest),
                position,
                flight,
            ),
        )

    @staticmethod
    def lowest_fare(fares: Sequence[tuple[Decimal, int]]) -> Decimal | None:
        """Return the lowest fare to advertise, given each fare class's price and seats left."""
        return min((price for price, _seats_left in fares), default=None)  # the bug


class FixedFlightSearch(FlightSearch):
    """The same read model, advertising only fares that have seats left."""

    version = 2  # the fare rule changed: a runner rebuilds the read model from history

    @staticmethod
    def lowest_fare(fares: Sequence[tuple[Decimal, int]]) -> Decimal | None:
        """Return the lowest fare to advertise: that of the cheapest class with a seat left."""
        return min((price for price, seats_left in fares if seats_left > 0), default=None)


class PassengerBookings(TableProjection):
    """Each passenger's bookings, with their seats, fares and states."""

    name = "passenger_bookings"
    event_types = (SeatHeld, BookingConfirmed, BookingCancelled)
    tables = ("passenger_bookings",)

    def setup(self, tx: Connection) -> None:
        self.execute(
            tx,
            (
                "CREATE TABLE IF NOT EXISTS {passenger_bookings} (booking TEXT PRIMARY KEY, "
                "passenger TEXT NOT NULL, flight TEXT NOT NULL, seat TEXT NOT NULL, "
                "fare_class TEXT NOT NULL, price TEXT NOT NULL, state TEXT NOT NULL)"
            ),
        )
        self.execute(
            tx,
            (
                "CREATE INDEX IF NOT EXISTS {passenger_bookings}_by_passenger "
                "ON {passenger_bookings} (passenger)"
            ),
        )

    def handle(self, recorded: RecordedEvent[Any], tx: Connection) -> None:
        match recorded.event:
            case SeatHeld() as held:
                self.execute(
                    tx,
                    "INSERT INTO {passenger_bookings} VALUES (?, ?, ?, ?, ?, ?, 'held')",
                    (
                        held.booking,
                        held.passenger,
                        flight_id(recorded.stream_id),
                        held.seat,
                        held.fare_class,
                        str(held.price),
                    ),
                )
            case BookingConfirmed(booking=booking):
                self.set_state(tx, booking, "confirmed")
            case BookingCancelled(booking=booking):
                self.set_state(tx, booking, "cancelled")

    def set_state(self, tx: Connection, booking: str, state: str) -> None:
        self.execute(
            tx,
            "UPDATE {passenger_bookings} SET state = ? WHERE booking = ?",
            (state, booking),
        )


def project(url: str, running: Event, stop: Event, poll_interval: float) -> None:
    """
    Keep the read models up to date until *stop* is set: the projection process.

    It runs apart from the searches, as a service's projections would, so that busy
    readers do not slow it down.
    """
    with open_store(url) as store:
        runner = ProjectionRunner(
            store, SeatMap(), FlightSearch(), PassengerBookings(), poll_interval=poll_interval
        )
        with runner:
            running.set()
            stop.wait()


# -- queries ------------------------------------------------------------------------------


class Offer(NamedTuple):
    """One flight in a search's answer."""

    flight: str
    number: str
    departs: str
    seats_left: int
    lowest_fare: Decimal | None  # None: sold out
    position: int  # the last event this row includes


class Route(NamedTuple):
    """What a customer searches for."""

    origin: str
    destination: str
    day: dt.date

    def __str__(self) -> str:
        return f"{self.origin} -> {self.destination} on {self.day}"


def search(reader: ReadModels, route: Route) -> list[Offer]:
    """Return the flights on *route*, by departure time."""
    rows = reader.query(
        "SELECT flight, number, departs, seats_left, lowest_fare, position FROM flight_search "
        "WHERE origin = ? AND destination = ? AND day = ? ORDER BY departs",
        (route.origin, route.destination, route.day.isoformat()),
    )
    return [
        Offer(flight, number, departs, left, None if fare is None else Decimal(fare), position)
        for flight, number, departs, left, fare, position in rows
    ]


def free_seats(reader: ReadModels, flight: str) -> list[str]:
    """Return the seats of *flight* that are neither held nor sold."""
    rows = reader.query("SELECT seat FROM seat_map WHERE flight = ? AND state = 'free'", (flight,))
    return [seat for (seat,) in rows]


def bookings_of(reader: ReadModels, passenger: str) -> list[tuple[Any, ...]]:
    """Return the flight, seat, fare class, price and state of each booking of *passenger*."""
    return reader.query(
        "SELECT flight, seat, fare_class, price, state FROM passenger_bookings "
        "WHERE passenger = ? ORDER BY flight, seat",
        (passenger,),
    )
