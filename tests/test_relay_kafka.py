"""The relay and the read side on Kafka, against librdkafka's in-process mock cluster."""

import asyncio
import uuid
from decimal import Decimal

import pytest

from eventkit import (
    AsyncSQLiteEventStore,
    AsyncSubscriberRunner,
    BrokerProjectionRunner,
    Relay,
    SQLiteEventStore,
)
from tests.bank import MoneyDeposited, registry
from tests.broker_support import KILLS, KafkaMock, first_occurrences_in_order
from tests.projection_helpers import SQLLedger, int_fold, sql_read_model
from tests.relay_crash import Writer, kill_relay_repeatedly, relay_to_the_end

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module", name="kafka")
def _kafka():
    """One mock cluster of three brokers for the module's tests."""
    return KafkaMock()


def publisher(kafka, topic):
    from eventkit import KafkaPublisher  # noqa: PLC0415

    return KafkaPublisher(kafka.config(), topic=topic)


def source(kafka, topic, group):
    from eventkit import KafkaSource  # noqa: PLC0415

    return KafkaSource(kafka.config(), topic=topic, group_id=group)


async def read_side(path, kafka, topic):
    """Build the SQL ledger from the topic into the SQLite file *path*; return it."""
    local = AsyncSQLiteEventStore(path, registry=registry)
    try:
        feed = source(kafka, topic, uuid.uuid4().hex)
        runner = BrokerProjectionRunner(local, feed, SQLLedger(), batch_size=200)
        await runner.run_until_caught_up(timeout=60)
        model = await local.run_projection_transaction(lambda tx: sql_read_model(tx.connection))
        return model, runner.duplicates
    finally:
        await local.close()


@pytest.mark.asyncio
class TestKafkaRelay:
    async def test_events_are_keyed_by_stream_with_their_ids_in_headers(self, tmp_path, kafka):
        """Each event is a record keyed by its stream id, one stream to a partition, in order."""
        topic = f"t{uuid.uuid4().hex[:8]}"
        store = AsyncSQLiteEventStore(tmp_path / "w.db", registry=registry)
        for n in range(30):
            await store.append(f"s{n % 5}", [MoneyDeposited(Decimal(n))])
        chosen = publisher(kafka, topic)
        await AsyncSubscriberRunner(store, Relay(chosen), batch_size=8).run_until_caught_up()
        await chosen.close()
        stored = [r async for r in store.read_all_records()]
        await store.close()
        found = await asyncio.to_thread(kafka.read_topic, topic, expected=30)
        partitions = {}
        for partition, record in found:
            partitions.setdefault(record.stream_id, set()).add(partition)
        assert {r.event_id for _, r in found} == {r.event_id for r in stored}
        assert all(len(p) == 1 for p in partitions.values())
        assert first_occurrences_in_order([r for _, r in found]) == set()

    async def test_the_read_side_drops_duplicates_by_stream_and_version(self, tmp_path, kafka):
        """The log published twice (a restarted relay) still builds each balance once."""
        topic = f"t{uuid.uuid4().hex[:8]}"
        store = AsyncSQLiteEventStore(tmp_path / "w.db", registry=registry)
        for n in range(25):
            await store.append(f"s{n % 4}", [MoneyDeposited(Decimal(n + 1))])
        chosen = publisher(kafka, topic)
        await AsyncSubscriberRunner(store, Relay(chosen, name="one")).run_until_caught_up()
        await AsyncSubscriberRunner(store, Relay(chosen, name="two")).run_until_caught_up()
        await chosen.close()
        await store.close()
        (balances, applied), duplicates = await read_side(tmp_path / "r.db", kafka, topic)
        with SQLiteEventStore(tmp_path / "w.db", registry=registry) as sync_store:
            assert balances == int_fold(sync_store)
        assert (duplicates, set(applied.values())) == (25, {1})


class TestKafkaCrashes:
    def test_a_relay_killed_at_random_moments_loses_nothing_and_keeps_order(self, tmp_path, kafka):
        """Killed again and again while a writer appends, the relay leaves every event, in order."""
        topic = f"t{uuid.uuid4().hex[:8]}"
        path = tmp_path / "w.db"
        SQLiteEventStore(path, registry=registry).close()
        with Writer(path) as writer:
            killed_after_ack = kill_relay_repeatedly(path, "kafka", [kafka.bootstrap, topic], KILLS)
        status = relay_to_the_end(path, publisher(kafka, topic))
        with SQLiteEventStore(path, registry=registry) as store:
            stored = list(store.read_all_records())
            fold = int_fold(store)
        found = [r for _, r in kafka.read_topic(topic, expected=len(stored))]
        (balances, applied), duplicates = asyncio.run(read_side(tmp_path / "r.db", kafka, topic))
        print(  # noqa: T201 (the counts, for the record of a run with -s)
            f"kafka crash test: {KILLS} kills ({killed_after_ack} after an ack, before the "
            f"checkpoint), {writer.appended} events appended, {len(found)} records on the "
            f"topic ({len(found) - len(stored)} duplicates, dropped by the read side: {duplicates})"
        )
        assert killed_after_ack >= KILLS // 3
        assert {r.event_id for r in found} == {r.event_id for r in stored}
        assert first_occurrences_in_order(found) == set()
        assert (status.lag_events, balances, set(applied.values())) == (0, fold, {1})
