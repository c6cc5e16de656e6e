"""The relay and the read side on NATS JetStream: order, no loss, dedup, crashes, an outage."""

import asyncio
import time
from decimal import Decimal

import pytest

from eventkit import (
    AsyncSQLiteEventStore,
    AsyncSubscriberRunner,
    BrokerProjectionRunner,
    ProjectionState,
    Relay,
    SQLiteEventStore,
)
from tests.bank import MoneyDeposited, registry
from tests.broker_support import (
    KILLS,
    NATS_URL,
    OwnNatsServer,
    delete_stream,
    first_occurrences_in_order,
    names,
    require_nats,
    stored_messages,
)
from tests.projection_helpers import SQLLedger, int_fold, sql_read_model
from tests.relay_crash import STREAMS, Writer, kill_relay_repeatedly, relay_to_the_end

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(name="nats_names")
def _nats_names():
    """A fresh JetStream stream and subject prefix on the machine's server, deleted after."""
    require_nats()
    stream, prefix = names()
    yield stream, prefix
    asyncio.run(delete_stream(stream))


def publisher(nats_names, url=NATS_URL, **options):
    from eventkit import NatsPublisher  # noqa: PLC0415

    stream, prefix = nats_names
    return NatsPublisher(url, stream=stream, subject_prefix=prefix, **options)


def source(nats_names, url=NATS_URL):
    from eventkit import NatsSource  # noqa: PLC0415

    stream, prefix = nats_names
    return NatsSource(url, stream=stream, subject_prefix=prefix)


async def fill(store, count, streams=("a", "b", "c"), pause=0.0):
    for n in range(count):
        await store.append(streams[n % len(streams)], [MoneyDeposited(Decimal(n % 7 + 1))])
        if pause:
            await asyncio.sleep(pause)


async def read_side(path, nats_names, url=NATS_URL):
    """Build the SQL ledger from the stream into the SQLite file *path*; return it."""
    local = AsyncSQLiteEventStore(path, registry=registry)
    try:
        runner = BrokerProjectionRunner(local, source(nats_names, url), SQLLedger(), batch_size=64)
        await runner.run_until_caught_up(timeout=60)
        status = (await runner.status())["sql_ledger"]
        model = await local.run_projection_transaction(lambda tx: sql_read_model(tx.connection))
        return model, status, runner.duplicates
    finally:
        await local.close()


def check_stream(records, store):
    """Assert the stream holds every stored event once, each stream's versions in order."""
    stored = list(store.read_all_records())
    assert len(records) == len(stored)
    assert {r.event_id for r in records} == {r.event_id for r in stored}
    assert first_occurrences_in_order(records) == set()


@pytest.mark.asyncio
class TestNatsRelay:
    async def test_every_event_is_published_with_its_id_on_its_streams_subject(
        self, tmp_path, nats_names
    ):
        """Each event is stored once, in feed order, on <prefix>.<stream>, its id as Nats-Msg-Id."""
        store = AsyncSQLiteEventStore(tmp_path / "w.db", registry=registry)
        await fill(store, 30, streams=("a", "b.c"))
        chosen = publisher(nats_names)
        await AsyncSubscriberRunner(store, Relay(chosen), batch_size=7).run_until_caught_up()
        await chosen.close()
        stored = [r async for r in store.read_all_records()]
        messages = await stored_messages(nats_names[0])
        await store.close()
        assert [record.event_id for _, record in messages] == [r.event_id for r in stored]

    async def test_a_republished_event_is_stored_once(self, tmp_path, nats_names):
        """Publishing the log again (a relay restarted from zero) stores no duplicate."""
        store = AsyncSQLiteEventStore(tmp_path / "w.db", registry=registry)
        await fill(store, 20)
        chosen = publisher(nats_names)
        await AsyncSubscriberRunner(store, Relay(chosen, name="first")).run_until_caught_up()
        await AsyncSubscriberRunner(store, Relay(chosen, name="again")).run_until_caught_up()
        messages = await stored_messages(nats_names[0])
        await chosen.close()
        await store.close()
        assert (len(messages), chosen.duplicates) == (20, 20)

    async def test_the_read_side_equals_a_fold_of_the_store(self, tmp_path, nats_names):
        """A read service fed from the stream builds what folding the store's events builds."""
        store = AsyncSQLiteEventStore(tmp_path / "w.db", registry=registry)
        await fill(store, 40)
        chosen = publisher(nats_names)
        await AsyncSubscriberRunner(store, Relay(chosen)).run_until_caught_up()
        await chosen.close()
        await store.close()
        (balances, applied), status, _ = await read_side(tmp_path / "r.db", nats_names)
        with SQLiteEventStore(tmp_path / "w.db", registry=registry) as sync_store:
            assert balances == int_fold(sync_store)
        assert (set(applied.values()), status.lag_events, status.position) == ({1}, 0, 40)

    async def test_the_read_side_follows_in_the_background(self, tmp_path, nats_names):
        """A running read side reaches a position appended after it started: wait_for returns."""
        store = AsyncSQLiteEventStore(tmp_path / "w.db", registry=registry)
        local = AsyncSQLiteEventStore(tmp_path / "r.db", registry=registry)
        chosen = publisher(nats_names)
        relay = AsyncSubscriberRunner(store, Relay(chosen), poll_interval=0.05)
        reader = BrokerProjectionRunner(local, source(nats_names), SQLLedger(), poll_interval=0.1)
        async with relay, reader:
            result = await store.append("late", [MoneyDeposited(Decimal(3))])
            await reader.wait_for(result.positions[-1], timeout=20)
            status = (await reader.status())["sql_ledger"]
        await chosen.close()
        await store.close()
        await local.close()
        assert (status.state, status.position, status.lag_events) == (ProjectionState.ACTIVE, 1, 0)

    async def test_only_one_of_two_relays_publishes(self, tmp_path, nats_names):
        """Two relays started for one store: one publishes everything, the other stands by."""
        path = tmp_path / "w.db"
        first_store = AsyncSQLiteEventStore(path, registry=registry)
        second_store = AsyncSQLiteEventStore(path, registry=registry)
        first, second = Relay(publisher(nats_names)), Relay(publisher(nats_names))
        runners = [
            AsyncSubscriberRunner(first_store, first, poll_interval=0.05),
            AsyncSubscriberRunner(second_store, second, poll_interval=0.05),
        ]
        for runner in runners:
            runner.start()
        await fill(first_store, 60)
        await runners[0].wait_for(60, timeout=20)
        states = sorted([(await r.status())["relay"].state.value for r in runners])
        for runner in runners:
            await runner.stop()
        await first.publisher.close()
        await second.publisher.close()
        messages = await stored_messages(nats_names[0])
        await first_store.close()
        await second_store.close()
        assert sorted([first.published, second.published]) == [0, 60]
        assert (states, len(messages)) == (["active", "standby"], 60)


class TestNatsCrashes:
    def test_a_relay_killed_at_random_moments_loses_nothing_and_keeps_order(
        self, tmp_path, nats_names
    ):
        """Killed again and again as a writer appends, the relay stores each event once in order."""
        path = tmp_path / "w.db"
        SQLiteEventStore(path, registry=registry).close()
        with Writer(path) as writer:
            killed_after_ack = kill_relay_repeatedly(path, "nats", [NATS_URL, *nats_names], KILLS)
        status = relay_to_the_end(path, publisher(nats_names))
        records = [record for _, record in asyncio.run(stored_messages(nats_names[0]))]
        with SQLiteEventStore(path, registry=registry) as store:
            check_stream(records, store)
            fold = int_fold(store)
        (balances, applied), _, _ = asyncio.run(read_side(tmp_path / "r.db", nats_names))
        print(  # noqa: T201 (the counts, for the record of a run with -s)
            f"nats crash test: {KILLS} kills ({killed_after_ack} after an ack, before the "
            f"checkpoint), {writer.appended} events appended, {len(records)} stored, 0 duplicates"
        )
        assert killed_after_ack >= KILLS // 3
        assert (status.lag_events, balances, set(applied.values())) == (0, fold, {1})
        assert {r.stream_id for r in records} == set(STREAMS)


class TestNatsOutage:
    def test_the_relay_rides_out_a_server_outage(self, tmp_path):
        """Its own server stopped for seconds: nothing lost, order kept, lag back to 0."""
        require_nats()
        server = OwnNatsServer(tmp_path / "jetstream")
        server.start()
        own = names()

        async def run():
            store = AsyncSQLiteEventStore(tmp_path / "w.db", registry=registry)
            chosen = publisher(own, server.url, ack_timeout=1.0)
            relay = AsyncSubscriberRunner(store, Relay(chosen), batch_size=20, poll_interval=0.05)
            async with relay:
                writing = asyncio.create_task(fill(store, 400, streams=STREAMS, pause=0.01))
                await asyncio.sleep(0.5)
                before = (await relay.status())["relay"].position
                await asyncio.to_thread(server.stop)
                await asyncio.sleep(4)
                during = (await relay.status())["relay"]
                await asyncio.to_thread(server.start)
                restarted = time.monotonic()
                await writing
                await relay.wait_for(await store.head_position(), timeout=60)
                recovered = time.monotonic() - restarted
                after = (await relay.status())["relay"]
            await chosen.close()
            records = [r for _, r in await stored_messages(own[0], server.url)]
            stored = [r async for r in store.read_all_records()]
            await store.close()
            return before, during, after, records, stored, recovered

        try:
            before, during, after, records, stored, recovered = asyncio.run(run())
        finally:
            server.stop()
        print(  # noqa: T201 (the counts, for the record of a run with -s)
            f"nats outage test: {len(stored)} events, relay at {before} when the server stopped, "
            f"{during.lag_events} behind during the outage, caught up {recovered:.1f}s after "
            "the server restarted"
        )
        assert 0 < before < len(stored)
        assert during.lag_events > 0
        assert [r.event_id for r in records] == [r.event_id for r in stored]
        assert (after.lag_events, after.state) == (0, ProjectionState.ACTIVE)
