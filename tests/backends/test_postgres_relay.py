"""The relay and a read service on PostgreSQL: positions past 2**53, lag in events."""

import asyncio
from decimal import Decimal

import psycopg
import pytest

from eventkit import (
    AsyncPostgresEventStore,
    AsyncSubscriberRunner,
    BrokerProjectionRunner,
    Projection,
    Relay,
)
from tests.backends.postgres_support import DSN, new_schema
from tests.bank import MoneyDeposited, registry
from tests.broker_support import delete_stream, names, require_nats, stored_messages


class Balances(Projection):
    """Balances per stream in the read service's PostgreSQL schema."""

    name = "balances"
    tables = ("balances",)

    def setup(self, tx):
        tx.execute(
            self.sql("CREATE TABLE IF NOT EXISTS {balances} (id text PRIMARY KEY, cents bigint)")
        )

    def handle(self, recorded, tx):
        tx.execute(
            self.sql(
                "INSERT INTO {balances} VALUES (%s, %s) "
                "ON CONFLICT (id) DO UPDATE SET cents = {balances}.cents + excluded.cents"
            ),
            (recorded.stream_id, int(recorded.event.amount * 100)),
        )


@pytest.fixture(name="nats_names")
def _nats_names():
    require_nats()
    stream, prefix = names()
    yield stream, prefix
    asyncio.run(delete_stream(stream))


def test_a_relay_on_postgresql_publishes_positions_exactly(schemas, nats_names):
    """Positions above 2**53 reach the broker exactly, and the relay's lag counts events."""
    from eventkit import NatsPublisher  # noqa: PLC0415

    schemas.append(new_schema())

    async def run():
        store = AsyncPostgresEventStore(DSN, registry=registry, schema=schemas[-1])
        await store.open()
        # As after years of transactions: positions past what a double holds exactly.
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(
                f'UPDATE "{schemas[-1]}".eventkit_meta SET value = %s WHERE key = %s',
                (str(2**34), "xid_offset"),
            )
        publisher = NatsPublisher(stream=nats_names[0], subject_prefix=nats_names[1])
        try:
            for n in range(12):
                await store.append(f"s{n % 3}", [MoneyDeposited(Decimal(n))])
            runner = AsyncSubscriberRunner(store, Relay(publisher), batch_size=5)
            before = (await runner.status())["relay"].lag_events
            await runner.run_until_caught_up()
            after = (await runner.status())["relay"].lag_events
            positions = [r.position async for r in store.read_all_records()]
            return before, after, positions
        finally:
            await publisher.close()
            await store.close()

    before, after, positions = asyncio.run(run())
    published = [record.position for _, record in asyncio.run(stored_messages(nats_names[0]))]
    assert (before, after, published) == (12, 0, positions)
    assert min(positions) > 2**53


def test_a_read_service_on_postgresql_applies_each_event_once(schemas, nats_names):
    """A read service keeping its models in PostgreSQL applies a twice-published log once."""
    from eventkit import NatsPublisher, NatsSource  # noqa: PLC0415

    schemas.extend([new_schema(), new_schema()])

    async def run():
        store = AsyncPostgresEventStore(DSN, registry=registry, schema=schemas[-2])
        local = AsyncPostgresEventStore(DSN, registry=registry, schema=schemas[-1])
        publisher = NatsPublisher(stream=nats_names[0], subject_prefix=nats_names[1])
        try:
            for n in range(10):
                await store.append(f"s{n % 2}", [MoneyDeposited(Decimal("1.25"))])
            for name in ("relay", "again"):
                await AsyncSubscriberRunner(
                    store, Relay(publisher, name=name)
                ).run_until_caught_up()
            source = NatsSource(stream=nats_names[0], subject_prefix=nats_names[1])
            runner = BrokerProjectionRunner(local, source, Balances())
            await runner.run_until_caught_up()
            rows = await local.run_projection_transaction(
                lambda tx: tx.connection.execute(
                    "SELECT id, cents FROM balances ORDER BY id"
                ).fetchall()
            )
            status = (await runner.status())["balances"]
            return rows, status, await store.head_position()
        finally:
            await publisher.close()
            await store.close()
            await local.close()

    rows, status, head = asyncio.run(run())
    assert rows == [("s0", 625), ("s1", 625)]
    assert (status.position, status.lag_events) == (head, 0)
