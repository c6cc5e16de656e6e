"""The read side and the brokers at their edges: refusals, failures, retries, hidden secrets."""

import asyncio
import logging
import threading
import uuid

import psycopg
import pytest
import pytest_asyncio

from eventkit import (
    AsyncPostgresEventStore,
    AsyncSQLiteEventStore,
    BrokerError,
    BrokerProjectionRunner,
    Projection,
    ProjectionError,
    ProjectionState,
    RetryOnError,
)
from eventkit._relay._nats import shown_servers
from tests.backends.postgres_support import DSN, new_schema
from tests.bank import registry
from tests.broker_support import NATS_URL, KafkaMock, delete_stream, names, require_nats
from tests.projection_helpers import SQLLedger, sql_read_model
from tests.test_broker_reader import ListSource, deposit

WAIT = 10.0


@pytest_asyncio.fixture(name="local")
async def _local(tmp_path):
    store = AsyncSQLiteEventStore(tmp_path / "read.db", registry=registry)
    yield store
    await store.close()


async def applied(local):
    """How often each position was applied to the SQL ledger."""
    return (await local.run_projection_transaction(lambda tx: sql_read_model(tx.connection)))[1]


class FailingSetup(SQLLedger):
    def setup(self, tx):
        raise RuntimeError("no room for the tables")


@pytest.mark.asyncio
class TestRefusals:
    @pytest.mark.parametrize(
        ("options", "error", "message"),
        [
            ({"table_prefix": "feed-"}, ValueError, "table_prefix must be letters"),
            ({"batch_size": 0}, ValueError, "batch_size"),
            ({"poll_interval": 0}, ValueError, "poll_interval"),
        ],
    )
    async def test_bad_options_are_refused_naming_them(self, local, options, error, message):
        """A bad table prefix, batch size or poll interval raises ValueError naming it."""
        with pytest.raises(error, match=message):
            BrokerProjectionRunner(local, ListSource(), SQLLedger(), **options)

    async def test_a_source_must_be_a_source(self, local):
        """Something without open, fetch, lag and close is refused with a TypeError."""
        with pytest.raises(TypeError, match=r"expected a Source \(open, fetch, lag, close\)"):
            BrokerProjectionRunner(local, object(), SQLLedger())

    @pytest.mark.parametrize(
        ("projections", "message"),
        [((), "at least one projection"), ((SQLLedger(), SQLLedger()), "two projections")],
    )
    async def test_projections_must_be_given_with_distinct_names(self, local, projections, message):
        """No projection, or two of one name, raise ValueError."""
        with pytest.raises(ValueError, match=message):
            BrokerProjectionRunner(local, ListSource(), *projections)

    async def test_a_runner_names_its_consumer_and_lists_its_projections(self, local):
        """The consumer is named after its projections unless named; the repr shows it."""
        ledger, source = SQLLedger(), ListSource()
        runner = BrokerProjectionRunner(local, source, ledger)
        named = BrokerProjectionRunner(local, source, ledger, name="reports")
        assert (runner.name, named.name, runner.projections) == (
            "feed:sql_ledger",
            "reports",
            (ledger,),
        )
        assert repr(named) == f"<BrokerProjectionRunner 'reports' from {source!r}>"

    async def test_dead_letters_of_an_unknown_projection_are_refused(self, local):
        """Asking for a projection the runner does not feed raises ValueError."""
        runner = BrokerProjectionRunner(local, ListSource(), SQLLedger())
        with pytest.raises(ValueError, match="no projection named 'other'"):
            await runner.dead_letters("other")


@pytest.mark.asyncio
class TestFailures:
    async def test_a_setup_that_fails_stops_the_runner_naming_the_cause(self, local):
        """A projection whose setup raises: ProjectionError saying setup failed, and why."""
        runner = BrokerProjectionRunner(local, ListSource([deposit("a", 1, 1)]), FailingSetup())
        with pytest.raises(ProjectionError, match="setup failed: RuntimeError: no room"):
            await runner.run_until_caught_up()

    async def test_a_message_that_cannot_be_decoded_stops_before_it(self, local):
        """Data the event class refuses stops the projection at that message."""
        bad = deposit("a", 2, 2)._replace(data='{"amount": "a lot"}')
        source = ListSource([deposit("a", 1, 1), bad, deposit("a", 3, 3)])
        runner = BrokerProjectionRunner(local, source, SQLLedger())
        with pytest.raises(ProjectionError, match="position 2"):
            await runner.run_until_caught_up()
        assert await applied(local) == {1: 1}
        assert (await local.projection_checkpoints())["sql_ledger"].position == 1

    async def test_a_message_failing_alone_is_retried_until_it_succeeds(self, local, caplog):
        """RetryOnError logs each retry and applies the message once it succeeds, once."""
        ledger = SQLLedger(fail={2: 3})  # in its batch, alone, then at the first retry
        ledger.error_policy = RetryOnError(attempts=5, delay=0.0)
        source = ListSource([deposit("a", 1, 1), deposit("a", 2, 2)])
        with caplog.at_level(logging.INFO, logger="eventkit"):
            await BrokerProjectionRunner(local, source, ledger).run_until_caught_up()
        assert await applied(local) == {1: 1, 2: 1}
        assert caplog.text.count("retrying the event at position 2") == 2

    async def test_stopping_ends_a_retry_pause_at_once(self, local):
        """A runner pausing long before a retry stops when asked; the message stays unapplied."""
        ledger = SQLLedger(fail={1: -1})
        ledger.error_policy = RetryOnError(attempts=None, delay=600.0)
        runner = BrokerProjectionRunner(
            local, ListSource([deposit("a", 1, 1)]), ledger, poll_interval=0.01
        )
        runner.start()
        await _until(lambda: len(ledger.calls) >= 2)  # in its batch, then alone: pausing now
        await runner.stop(timeout=WAIT)
        assert not runner.running
        assert await applied(local) == {}

    async def test_a_worker_stuck_in_a_batch_makes_stop_time_out(self, local):
        """stop(timeout) raises TimeoutError while a handler still runs; then stops."""
        release = threading.Event()
        ledger = SQLLedger(block=lambda recorded: release.wait(WAIT))
        runner = BrokerProjectionRunner(
            local, ListSource([deposit("a", 1, 1)]), ledger, poll_interval=0.01
        )
        runner.start()
        try:
            await _until(lambda: ledger.calls)
            with pytest.raises(TimeoutError, match=r"did not stop within 0\.05s"):
                await runner.stop(timeout=0.05)
        finally:
            release.set()
        await runner.stop(timeout=WAIT)
        assert not runner.running
        assert await applied(local) == {1: 1}


@pytest.mark.asyncio
class TestRunning:
    async def test_a_running_runner_refuses_foreground_work_and_a_second_start(self, local):
        """run_until_caught_up and start raise RuntimeError while the worker runs."""
        source = ListSource([deposit("a", 1, 1)])
        runner = BrokerProjectionRunner(local, source, SQLLedger(), poll_interval=0.01)
        await runner.stop()  # not running: nothing to stop
        assert (runner.running, source.opened) == (False, 0)
        async with runner:
            with pytest.raises(RuntimeError, match="use wait_for"):
                await runner.run_until_caught_up()
            with pytest.raises(RuntimeError, match="already running"):
                runner.start()
            await runner.wait_for(1, timeout=None)
        assert await applied(local) == {1: 1}

    async def test_a_foreground_run_waits_for_the_lock_then_times_out(self, local):
        """While another runner holds the consumer, run_until_caught_up times out."""
        records = [deposit("a", 1, 1)]
        one = BrokerProjectionRunner(local, ListSource(records), SQLLedger(), poll_interval=0.01)
        two = BrokerProjectionRunner(local, ListSource(records), SQLLedger(), poll_interval=0.01)
        async with one:
            await one.wait_for(1)
            with pytest.raises(TimeoutError, match="not applied in time"):
                await two.run_until_caught_up(timeout=0.1)
        assert await two.run_until_caught_up(timeout=WAIT) == 0


class Quiet(Projection):
    """Keeps the positions it was given; no tables."""

    name = "quiet"

    def __init__(self):
        self.positions = []

    def handle(self, recorded, tx):
        self.positions.append(recorded.position)


@pytest.mark.asyncio
class TestTakeover:
    async def test_a_runner_whose_lease_was_taken_over_stands_by(self, schemas, caplog):
        """Another process took the consumer's lease: the runner says so and stands by."""
        schemas.append(new_schema())
        store = AsyncPostgresEventStore(
            DSN, registry=registry, schema=schemas[-1], lease_seconds=0.3
        )
        runner = BrokerProjectionRunner(
            store, ListSource([deposit("a", 1, 1)]), Quiet(), poll_interval=0.01
        )
        try:
            with caplog.at_level(logging.WARNING, logger="eventkit"):
                async with runner:
                    await runner.wait_for(1, timeout=WAIT)
                    # What a standby elsewhere does once the lease expired: take it over.
                    with psycopg.connect(DSN, autocommit=True) as conn:
                        conn.execute(
                            f'UPDATE "{schemas[-1]}".eventkit_leases SET owner = %s, '
                            "generation = generation + 1, "
                            "expires_at = now() + interval '1 hour' WHERE name = %s",
                            (uuid.uuid4(), runner.name),
                        )
                    await _until(lambda: "another runner took it over" in caplog.text)
                    state = (await runner.status())["quiet"].state
        finally:
            await store.close()
        assert state is ProjectionState.STANDBY
        assert "consumer 'feed:quiet': another runner took it over; standing by" in caplog.text


class TestShownServers:
    @pytest.mark.parametrize(
        ("servers", "shown"),
        [
            (["nats://alice:s3cret@nats.example:4222"], "nats://***@nats.example:4222"),
            (["tls://t0ken@a:4222", "nats://b:4222"], "tls://***@a:4222, nats://b:4222"),
            (["nats://127.0.0.1:4222"], "nats://127.0.0.1:4222"),
        ],
    )
    def test_credentials_in_server_urls_are_never_shown(self, servers, shown):
        """A user and password, or a token, in a NATS URL is masked where servers are named."""
        assert shown_servers(servers) == shown


@pytest.mark.asyncio
class TestNats:
    async def test_a_stream_whose_subjects_another_stream_takes_is_refused(self):
        """Two streams cannot share subjects: the second publisher's open says NATS refused it."""
        from eventkit import NatsPublisher  # noqa: PLC0415

        require_nats()
        (first, prefix), (second, _) = names(), names()
        one = NatsPublisher(NATS_URL, stream=first, subject_prefix=prefix)
        two = NatsPublisher(NATS_URL, stream=second, subject_prefix=prefix)
        try:
            await one.open()
            with pytest.raises(BrokerError, match=f"NATS refused the stream '{second}'"):
                await two.open()
        finally:
            for publisher in (one, two):
                await publisher.close()
            for stream in (first, second):
                await delete_stream(stream)

    async def test_a_stream_that_does_not_exist_cannot_be_read(self):
        """Opening a source, or asking its lag, for a missing stream raises BrokerError."""
        from eventkit import NatsSource  # noqa: PLC0415

        require_nats()
        stream, prefix = names()
        source = NatsSource(NATS_URL, stream=stream, subject_prefix=prefix)
        try:
            with pytest.raises(BrokerError, match=f"cannot read the NATS stream '{stream}'"):
                await source.open({})
            with pytest.raises(BrokerError, match=f"cannot read the NATS stream '{stream}'"):
                await source.lag()
        finally:
            await source.close()

    async def test_the_lag_counts_messages_the_streams_limits_removed(self):
        """Messages removed by the stream's limits still count as behind; their age is unknown."""
        import nats  # noqa: PLC0415
        from nats.js.api import StreamConfig  # noqa: PLC0415

        from eventkit import BrokerMessage, NatsPublisher, NatsSource  # noqa: PLC0415

        require_nats()
        stream, prefix = names()
        client = await nats.connect(NATS_URL)
        publisher = NatsPublisher(NATS_URL, stream=stream, subject_prefix=prefix)
        source = NatsSource(NATS_URL, stream=stream, subject_prefix=prefix)
        try:
            config = StreamConfig(name=stream, subjects=[f"{prefix}.>"], max_msgs=1)
            await client.jetstream().add_stream(config)
            for n, stream_id in enumerate("ab", start=1):
                await publisher.publish(
                    [BrokerMessage.from_record(deposit(stream_id, 1, n), source="store")]
                )
            lag = await source.lag()
            assert (lag.messages, lag.oldest) == (2, None)
        finally:
            await publisher.close()
            await source.close()
            await client.close()
            await delete_stream(stream)

    async def test_reprs_name_the_stream_and_subjects_but_no_server(self):
        """A publisher's and a source's reprs show the stream and subjects, not the servers."""
        from eventkit import NatsPublisher, NatsSource  # noqa: PLC0415

        url = "nats://alice:s3cret@nats.example:4222"
        publisher = NatsPublisher(url, stream="ORDERS", subject_prefix="shop")
        source = NatsSource(url, stream="ORDERS", subject_prefix="shop")
        assert repr(publisher) == "<NatsPublisher to stream 'ORDERS', subjects shop.>>"
        assert repr(source) == "<NatsSource of stream 'ORDERS', subjects shop.>>"


@pytest.mark.asyncio
class TestKafka:
    async def test_reprs_name_the_topic_and_group_but_no_settings(self):
        """A publisher's and a source's reprs show no librdkafka setting (credentials)."""
        from eventkit import KafkaPublisher, KafkaSource  # noqa: PLC0415

        secret = "s3cr3t-" + uuid.uuid4().hex
        config = {"bootstrap.servers": "127.0.0.1:1", "sasl.password": secret}
        publisher = KafkaPublisher(config, topic="orders")
        source = KafkaSource(config, topic="orders", group_id="reports")
        assert repr(publisher) == "<KafkaPublisher to topic 'orders'>"
        assert repr(source) == "<KafkaSource of topic 'orders', group 'reports'>"

    @pytest.mark.parametrize(
        ("settings", "timeout", "message"),
        [
            ({"queue.buffering.max.messages": 1}, 1.0, "Kafka refused a message: .*Queue full"),
            ({"message.timeout.ms": 300}, 5.0, "Kafka did not store 3 messages: .*timed out"),
            ({}, 0.2, r"Kafka did not acknowledge 3 messages in 0\.2s"),
        ],
        ids=["queue-full", "timed-out", "not-acknowledged"],
    )
    async def test_messages_kafka_does_not_take_raise_broker_error(
        self, settings, timeout, message
    ):
        """A full queue, messages that time out, or no acknowledgement in time: BrokerError."""
        from eventkit import BrokerMessage, KafkaPublisher  # noqa: PLC0415

        # No broker listens there: nothing is ever acknowledged.
        config = {"bootstrap.servers": "127.0.0.1:1", "log_level": 0, **settings}
        publisher = KafkaPublisher(config, topic="orders", timeout=timeout)
        messages = [
            BrokerMessage.from_record(deposit(stream_id, 1, n), source="store")
            for n, stream_id in enumerate("abc", start=1)
        ]
        try:
            with pytest.raises(BrokerError, match=message):
                await publisher.publish(messages)
        finally:
            await publisher.close()

    async def test_the_lag_of_a_source_not_yet_open_counts_every_message(self):
        """Before it joins its group, a source's lag counts the topic's messages."""
        from eventkit import BrokerMessage, KafkaPublisher, KafkaSource  # noqa: PLC0415

        kafka = KafkaMock(brokers=1)
        publisher = KafkaPublisher(kafka.config(), topic="lagging")
        await publisher.publish(
            [
                BrokerMessage.from_record(deposit(s, 1, n), source="store")
                for n, s in ((1, "a"), (2, "b"))
            ]
        )
        await publisher.close()
        source = KafkaSource(kafka.config(), topic="lagging", group_id="reports")
        assert (await source.lag()).messages == 2
        assert (await source.lag()).messages == 2  # a look only: nothing was consumed

    async def test_a_source_that_is_not_open_cannot_fetch(self):
        """fetch before open raises BrokerError saying so."""
        from eventkit import KafkaSource  # noqa: PLC0415

        source = KafkaSource({"bootstrap.servers": "127.0.0.1:1"}, group_id="g")
        with pytest.raises(BrokerError, match="not open"):
            await source.fetch(10, 0.01)


async def _until(check):
    deadline = asyncio.get_running_loop().time() + WAIT
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "the condition did not come true"
        await asyncio.sleep(0.01)
