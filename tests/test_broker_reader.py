"""BrokerProjectionRunner without a broker: a list of messages as its source."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from eventkit import (
    AsyncInMemoryEventStore,
    AsyncSQLiteEventStore,
    BrokerProjectionRunner,
    Delivery,
    Lag,
    ParkOnError,
    ProjectionError,
    ProjectionState,
    RetryOnError,
)
from eventkit.backends import EventRecord
from tests.bank import registry
from tests.projection_helpers import SQLLedger, sql_read_model


def deposit(stream_id, version, position, amount=1):
    return EventRecord(
        stream_id,
        version,
        position,
        uuid.uuid4(),
        "bank.MoneyDeposited",
        1,
        f'{{"amount":"{amount}"}}',
        "{}",
        datetime(2026, 1, 1, tzinfo=UTC),
    )


class ListSource:
    """A topic in a list: deliveries in order, offsets their indexes, positions kept as given."""

    def __init__(self, records=()):
        self.records = list(records)
        self.after = -1
        self.committed_at = -1
        self.opened = 0
        self.closed = 0
        self.fail_fetches = 0

    def add(self, *records):
        self.records.extend(records)

    async def open(self, positions):
        self.opened += 1
        self.after = self.committed_at = positions.get("list", -1)

    async def fetch(self, count, timeout):
        if self.fail_fetches:
            self.fail_fetches -= 1
            raise ConnectionError("the broker went away")
        chosen = self.records[self.after + 1 : self.after + 1 + count]
        if not chosen:
            await asyncio.sleep(min(timeout, 0.01))
        start = self.after + 1
        self.after += len(chosen)
        return [Delivery(r, "list", start + n) for n, r in enumerate(chosen)]

    def committed(self, positions):
        self.committed_at = positions.get("list", self.committed_at)

    async def lag(self):
        return Lag(len(self.records) - 1 - self.committed_at, None)

    async def close(self):
        self.closed += 1


@pytest_asyncio.fixture(name="local")
async def _local(tmp_path):
    store = AsyncSQLiteEventStore(tmp_path / "read.db", registry=registry)
    yield store
    await store.close()


async def model(local):
    return await local.run_projection_transaction(lambda tx: sql_read_model(tx.connection))


@pytest.mark.asyncio
class TestBrokerProjectionRunner:
    async def test_messages_are_applied_once_and_duplicates_dropped(self, local):
        """A message whose version its stream already reached is dropped, not applied again."""
        first, second = deposit("a", 1, 1, 5), deposit("a", 2, 2, 7)
        source = ListSource([first, second, first, second, deposit("b", 1, 3, 2)])
        runner = BrokerProjectionRunner(local, source, SQLLedger(), batch_size=2)
        assert await runner.run_until_caught_up() == 5
        assert (await model(local), runner.duplicates) == (
            ({"a": 12, "b": 2}, {1: 1, 2: 1, 3: 1}),
            2,
        )

    async def test_a_restart_resumes_after_the_committed_position(self, local):
        """A second runner reads after the position the first one committed, not from the start."""
        source = ListSource([deposit("a", 1, 1), deposit("a", 2, 2)])
        await BrokerProjectionRunner(local, source, SQLLedger()).run_until_caught_up()
        source.add(deposit("a", 3, 3))
        again = ListSource(source.records)
        await BrokerProjectionRunner(local, again, SQLLedger()).run_until_caught_up()
        assert (again.after, (await model(local))[1]) == (2, {1: 1, 2: 1, 3: 1})

    async def test_a_failing_handler_stops_the_runner_before_its_event(self, local):
        """StopOnError raises, leaving the events before the failing one applied."""
        source = ListSource([deposit("a", 1, 1), deposit("a", 2, 2), deposit("a", 3, 3)])
        runner = BrokerProjectionRunner(local, source, SQLLedger(fail={2: -1}), batch_size=3)
        with pytest.raises(ProjectionError, match="position 2"):
            await runner.run_until_caught_up()
        checkpoints = await local.projection_checkpoints()
        assert ((await model(local))[1], checkpoints["sql_ledger"].position) == ({1: 1}, 1)

    async def test_a_retried_handler_succeeds_the_second_time(self, local):
        """RetryOnError applies the event once the handler stops failing."""
        ledger = SQLLedger(fail={2: 1})
        ledger.error_policy = RetryOnError(attempts=2, delay=0.0)
        source = ListSource([deposit("a", 1, 1), deposit("a", 2, 2)])
        await BrokerProjectionRunner(local, source, ledger).run_until_caught_up()
        assert (await model(local))[1] == {1: 1, 2: 1}

    async def test_a_parked_event_is_listed_and_passed_over(self, local):
        """ParkOnError parks the failing event in the read service's dead letters, then goes on."""
        ledger = SQLLedger(fail={2: -1})
        ledger.error_policy = ParkOnError()
        source = ListSource([deposit("a", 1, 1), deposit("a", 2, 2), deposit("a", 3, 3)])
        runner = BrokerProjectionRunner(local, source, ledger)
        await runner.run_until_caught_up()
        letters = await runner.dead_letters("sql_ledger")
        assert ([d.position for d in letters], (await model(local))[1]) == ([2], {1: 1, 3: 1})

    async def test_the_background_runner_follows_and_wait_for_returns(self, local):
        """A running runner applies messages as they come, and wait_for sees their positions."""
        source = ListSource()
        runner = BrokerProjectionRunner(local, source, SQLLedger(), poll_interval=0.01)
        async with runner:
            source.add(deposit("a", 1, 10))
            await runner.wait_for(10, timeout=10)
            status = (await runner.status())["sql_ledger"]
        assert (status.state, status.position, status.lag_events) == (
            ProjectionState.ACTIVE,
            10,
            0,
        )

    async def test_the_background_runner_rides_out_broker_failures(self, local):
        """Fetches that fail are retried after a pause, the source opened again."""
        source = ListSource([deposit("a", 1, 1)])
        source.fail_fetches = 2
        runner = BrokerProjectionRunner(local, source, SQLLedger(), poll_interval=0.01)
        async with runner:
            await runner.wait_for(1, timeout=10)
        assert source.opened == 3

    async def test_a_stopped_runner_shows_its_failure(self, local):
        """A projection that stopped at an event shows as failed, and wait_for raises its error."""
        source = ListSource([deposit("a", 1, 1)])
        runner = BrokerProjectionRunner(local, source, SQLLedger(fail={1: -1}), poll_interval=0.01)
        runner.start()
        with pytest.raises(ProjectionError):
            await runner.wait_for(1, timeout=10)
        status = (await runner.status())["sql_ledger"]
        await runner.stop()
        assert status.state is ProjectionState.FAILED

    async def test_a_second_runner_stands_by(self, local):
        """Two runners of one consumer: one applies, the other waits for the lock."""
        source = ListSource([deposit("a", 1, 1)])
        one = BrokerProjectionRunner(local, source, SQLLedger(), poll_interval=0.01)
        two = BrokerProjectionRunner(local, ListSource(), SQLLedger(), poll_interval=0.01)
        async with one:
            await one.wait_for(1)
            async with two:
                await asyncio.sleep(0.05)
                states = [(await r.status())["sql_ledger"].state for r in (one, two)]
        assert states == [ProjectionState.ACTIVE, ProjectionState.STANDBY]

    async def test_status_of_a_stopped_runner_reads_the_stored_position(self, local):
        """A runner that does not run reports the lag after the position its database holds."""
        source = ListSource([deposit("a", 1, 1), deposit("a", 2, 2)])
        runner = BrokerProjectionRunner(local, source, SQLLedger())
        await runner.run_until_caught_up()
        source.add(deposit("a", 3, 3))
        status = (await runner.status())["sql_ledger"]
        assert (status.state, status.lag_events, source.closed) == (ProjectionState.STOPPED, 1, 2)

    async def test_a_read_model_of_another_version_is_refused(self, local):
        """A projection whose version differs from the read model's is not fed: rebuild instead."""
        await BrokerProjectionRunner(local, ListSource(), SQLLedger()).run_until_caught_up()
        newer = SQLLedger()
        newer.version = 2
        with pytest.raises(ProjectionError, match="built by version 1"):
            await BrokerProjectionRunner(local, ListSource(), newer).run_until_caught_up()

    async def test_a_store_without_transactions_for_read_models_is_refused(self):
        """The in-memory store cannot commit a read model with the position: TypeError."""
        with pytest.raises(TypeError, match="one transaction"):
            BrokerProjectionRunner(AsyncInMemoryEventStore(), ListSource(), SQLLedger())

    async def test_the_consumer_needs_a_name_of_its_own(self, local):
        """A consumer named like one of its projections is refused."""
        with pytest.raises(ValueError, match="is a projection's name"):
            BrokerProjectionRunner(local, ListSource(), SQLLedger(), name="sql_ledger")

    async def test_wait_for_times_out_when_nothing_comes(self, local):
        """wait_for raises TimeoutError naming the projections still behind."""
        runner = BrokerProjectionRunner(local, ListSource(), SQLLedger(), poll_interval=0.01)
        async with runner:
            with pytest.raises(TimeoutError, match="sql_ledger"):
                await runner.wait_for(5, timeout=0.1)
