"""
CQRS over NATS JetStream: a write service, a relay, and a read service in another process.

The write service sells seats on two flights: each booking is an event in the flight's
stream, kept in an SQLite file. A relay publishes the events to NATS JetStream, in
order; a read service in its own process, with its own SQLite file, builds seat
availability from the stream. At the end the example checks that the read service's
availability equals a fold of the write side's events.

    python examples/cqrs_over_nats.py [NATS_URL]      # default nats://127.0.0.1:4222

It needs a NATS server with JetStream (``nats-server -js``) and eventkit's ``nats``
extra. Its files go to a temporary folder; its JetStream stream is deleted at the end.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import attrs

from eventkit import (
    AsyncSQLiteEventStore,
    AsyncSubscriberRunner,
    BrokerProjectionRunner,
    EventRegistry,
    NatsPublisher,
    NatsSource,
    Projection,
    Relay,
    SQLiteEventStore,
    event,
)

registry = EventRegistry()
SEATS = 12
FLIGHTS = ("LX318", "LX319")


@event("flights.SeatBooked", registry=registry)
@attrs.frozen
class SeatBooked:
    seat: str
    passenger: str


@event("flights.BookingCancelled", registry=registry)
@attrs.frozen
class BookingCancelled:
    seat: str


class SeatAvailability(Projection):
    """Free seats per flight, in the read service's own SQLite file."""

    name = "seat_availability"
    tables = ("free_seats",)

    def setup(self, tx: Any) -> None:
        tx.execute(
            self.sql("CREATE TABLE IF NOT EXISTS {free_seats} (flight TEXT PRIMARY KEY, n INT)")
        )

    def handle(self, recorded: Any, tx: Any) -> None:
        match recorded.event:
            case SeatBooked():
                change = -1
            case BookingCancelled():
                change = 1
            case _:
                return
        tx.execute(
            self.sql(
                "INSERT INTO {free_seats} VALUES (?, ?) "
                "ON CONFLICT (flight) DO UPDATE SET n = n + excluded.n - ?"
            ),
            (recorded.stream_id, SEATS + change, SEATS),
        )


def write_service(path: Path) -> int:
    """Book and cancel seats on both flights; return the position of the last event."""
    last = 0
    with SQLiteEventStore(path, registry=registry) as store:
        for n in range(20):
            flight = FLIGHTS[n % 2]
            events: list[object] = [SeatBooked(f"{n // 2 + 1}A", f"passenger {n}")]
            if n % 7 == 6:
                events.append(BookingCancelled(f"{n // 2 + 1}A"))
            last = store.append(flight, events).positions[-1]
    return last


async def read_service(path: str, url: str, stream: str, prefix: str, until: int) -> None:
    """Run as its own process: build seat availability from the stream, then print it."""
    local = AsyncSQLiteEventStore(path, registry=registry)
    source = NatsSource(url, stream=stream, subject_prefix=prefix)
    async with BrokerProjectionRunner(local, source, SeatAvailability()) as runner:
        await runner.wait_for(until, timeout=30)
        status = (await runner.status())["seat_availability"]
    rows = await local.run_projection_transaction(
        lambda tx: tx.connection.execute(
            "SELECT flight, n FROM free_seats ORDER BY flight"
        ).fetchall()
    )
    await local.close()
    print(f"read service: applied up to position {status.position}, lag {status.lag_events}")
    for flight, free in rows:
        print(f"read service: {flight} has {free} of {SEATS} seats free")


def fold(path: Path) -> dict[str, int]:
    """Seat availability computed directly from the write side's events."""
    free = dict.fromkeys(FLIGHTS, SEATS)
    with SQLiteEventStore(path, registry=registry) as store:
        for recorded in store.read_all():
            free[recorded.stream_id] += -1 if isinstance(recorded.event, SeatBooked) else 1
    return free


async def relay_all(path: Path, url: str, stream: str, prefix: str) -> tuple[int, int]:
    store = AsyncSQLiteEventStore(path, registry=registry)
    publisher = NatsPublisher(url, stream=stream, subject_prefix=prefix)
    relay = Relay(publisher, source="/flights")
    await AsyncSubscriberRunner(store, relay).run_until_caught_up()
    status = (await AsyncSubscriberRunner(store, Relay(publisher)).status())["relay"]
    await publisher.close()
    await store.close()
    return relay.published, status.lag_events


async def delete_stream(url: str, stream: str) -> None:
    import nats  # noqa: PLC0415 (the nats extra is installed: NatsPublisher needs it)

    client = await nats.connect(url)
    try:
        await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


def main(url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    stream, prefix = f"FLIGHTS_{tag}", f"flights_{tag}"
    with tempfile.TemporaryDirectory() as folder:
        writes, reads = Path(folder) / "bookings.db", Path(folder) / "seats.db"
        last = write_service(writes)
        print(f"write service: appended bookings up to position {last}")
        reader = subprocess.Popen(  # noqa: S603 (this script, run again as the read service)
            [sys.executable, __file__, "--read", str(reads), url, stream, prefix, str(last)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            published, lag = asyncio.run(relay_all(writes, url, stream, prefix))
            print(f"relay: published {published} events to {stream}, lag {lag}")
            out, _ = reader.communicate(timeout=60)
        finally:
            if reader.poll() is None:
                reader.kill()
            asyncio.run(delete_stream(url, stream))
        print(out, end="")
        expected = fold(writes)
        got = {
            line.split()[2]: int(line.split()[4])
            for line in out.splitlines()
            if line.startswith("read service: LX")
        }
        print(f"read model equals the fold of the events: {'yes' if got == expected else 'no'}")
        if got != expected:
            sys.exit(1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--read"]:
        path, url, stream, prefix, until = sys.argv[2:]
        asyncio.run(read_service(path, url, stream, prefix, int(until)))
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "nats://127.0.0.1:4222")
