"""The PostgreSQL store runs the conformance suites, and keeps its promises about order."""

import asyncio
import threading
import time
import uuid
from decimal import Decimal

import psycopg
import pytest

from eventkit import (
    ANY,
    AsyncPostgresEventStore,
    PostgresEventStore,
    Projection,
    ProjectionRunner,
    StoreError,
)
from eventkit._backends.postgres.schema import POSITION_BITS
from eventkit.backends import RecordWrite
from eventkit.testing import (
    AsyncEventStoreContract,
    AsyncProjectionStoreContract,
    AsyncSnapshotStoreContract,
    EventStoreContract,
    ProjectionStoreContract,
    SnapshotStoreContract,
    contract_registry,
)
from eventkit.testing._events import Deposited, Noted, _deposits
from tests.backends.postgres_support import DSN, new_schema

WAIT = 10.0


class TestPostgresEventStore(EventStoreContract, ProjectionStoreContract, SnapshotStoreContract):
    @pytest.fixture(name="make_store")
    def _make_store(self, schemas):
        def make(registry):
            schemas.append(new_schema())
            return PostgresEventStore(DSN, registry=registry, schema=schemas[-1])

        return make


class TestAsyncPostgresEventStore(
    AsyncEventStoreContract, AsyncProjectionStoreContract, AsyncSnapshotStoreContract
):
    @pytest.fixture(name="make_store")
    def _make_store(self, schemas):
        def make(registry):
            schemas.append(new_schema())
            return AsyncPostgresEventStore(DSN, registry=registry, schema=schemas[-1])

        return make


@pytest.fixture(name="store")
def _store(schemas):
    schemas.append(new_schema())
    # Some tests hold transactions open on purpose: reads need not wait for them.
    store = PostgresEventStore(
        DSN, registry=contract_registry, schema=schemas[-1], own_writes_timeout=0.2
    )
    yield store
    store.close()


def raw(sql, params=()):
    with psycopg.connect(DSN, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


class TestTheFeed:
    def test_a_late_commit_below_a_read_position_is_not_skipped(self, store):
        """The transaction holding the lower positions commits last: a reader gets both."""
        store.open()
        slow = psycopg.connect(DSN, autocommit=True)
        try:
            with slow.transaction():
                early = store._append_on(slow, [_write(store, "slow", Noted("first"))])
                late = store.append("fast", [Noted("second")])
                assert late.positions[0] > early[0].positions[0]
                # The fast one committed, but an older transaction still runs: readers wait.
                assert list(store.read_all()) == []
                assert store.head_position() == 0
        finally:
            slow.close()
        feed = [(r.stream_id, r.position) for r in store.read_all()]
        assert feed == [("slow", early[0].positions[0]), ("fast", late.positions[0])]
        assert store.head_position() == late.positions[0]

    def test_positions_grow_with_transaction_ids(self, store):
        """A position is the writing transaction's id, shifted, plus the event's number."""
        result = store.append("s", _deposits(1, 2, 3))
        first = result.positions[0]
        assert [p - first for p in result.positions] == [0, 1, 2]
        assert first & ((1 << POSITION_BITS) - 1) == 1

    def test_a_held_transaction_shows_in_the_feed_delay(self, store):
        """An open writing transaction elsewhere holds the feed back, and feed_delay says so."""
        store.append("s", _deposits(1))
        other = psycopg.connect(DSN)
        try:
            other.execute("SELECT pg_current_xact_id()")  # takes a transaction id, holds it
            pid = other.info.backend_pid
            store.append("s", _deposits(2))
            time.sleep(0.2)
            delay = store.feed_delay()
            assert (delay.events, delay.oldest_transaction_pid) == (1, pid)
            assert delay.seconds >= 0.1
            assert [r.version for r in store.read_all()] == [1]
        finally:
            other.close()
        # The server ends the closed session's transaction a moment later.
        deadline = time.monotonic() + WAIT
        while store.feed_delay().events and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r.version for r in store.read_all()] == [1, 2]

    def test_new_positions_follow_old_ones_after_a_restore(self, schemas):
        """Stored positions ahead of the server's transaction ids raise the offset at start."""
        schemas.append(new_schema())
        with PostgresEventStore(DSN, registry=contract_registry, schema=schemas[-1]) as store:
            store.append("s", _deposits(1))
        # A restored database: transaction ids far behind the positions stored.
        ahead = (1 << 40) << POSITION_BITS
        raw(f'UPDATE "{schemas[-1]}".eventkit_events SET position = position + %s', (ahead,))
        with PostgresEventStore(DSN, registry=contract_registry, schema=schemas[-1]) as store:
            result = store.append("s", _deposits(2))
            positions = [r.position for r in store.read_all()]
        assert positions == sorted(positions)
        assert result.positions[0] == positions[-1] > ahead


class TestConnections:
    def test_the_password_is_never_shown(self, schemas):
        """Reprs and errors show the DSN with its password masked."""
        secret = "s3cr3t-" + uuid.uuid4().hex
        store = PostgresEventStore(
            f"postgresql://postgres:{secret}@127.0.0.1:1/test?connect_timeout=1",
            registry=contract_registry,
            schema=new_schema(),
            connect_timeout=0.5,
        )
        with pytest.raises(StoreError) as info:
            store.head_position()
        store.close()
        assert secret not in repr(store) + str(info.value)
        assert "postgres:***@127.0.0.1" in repr(store)

    def test_a_connection_killed_in_an_append_stores_nothing(self, store, schemas):
        """A backend terminated mid-insert raises StoreError; nothing is stored; next works."""
        store.open()
        schema = schemas[-1]
        raw(
            f"""
            CREATE FUNCTION "{schema}".slow() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$
            """
        )
        raw(
            f'CREATE TRIGGER slow BEFORE INSERT ON "{schema}".eventkit_events '
            f"FOR EACH ROW WHEN (NEW.stream_id = 'doomed') EXECUTE FUNCTION \"{schema}\".slow()"
        )
        errors = []

        def append():
            try:
                store.append("doomed", _deposits(1, 2, 3))
            except StoreError as exc:
                errors.append(exc)

        thread = threading.Thread(target=append)
        thread.start()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            rows = raw(
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                f"AND query LIKE '%%{schema}%%' AND pid <> pg_backend_pid()"
            )
            if rows:
                raw("SELECT pg_terminate_backend(%s)", (rows[0][0],))
                break
            time.sleep(0.05)
        thread.join(WAIT)
        assert len(errors) == 1
        assert "connection" in str(errors[0])
        assert store.stream_version("doomed") == 0
        assert store.append("fine", _deposits(4)).version == 1


class TestProjections:
    def test_read_models_live_in_the_stores_schema(self, store, schemas):
        """A table a projection creates without a schema name is made in the store's schema."""

        class Counts(Projection):
            name = "counts"
            tables = ("counts",)

            def setup(self, tx):
                tx.execute(self.sql("CREATE TABLE IF NOT EXISTS {counts} (n integer)"))

            def handle(self, recorded, tx):
                tx.execute(self.sql("INSERT INTO {counts} VALUES (1)"))

        store.append("s", _deposits(1, 2))
        ProjectionRunner(store, Counts()).run_until_caught_up()
        assert raw(f'SELECT count(*) FROM "{schemas[-1]}".counts') == [(2,)]

    def test_an_append_elsewhere_wakes_a_runner_at_once(self, store, schemas):
        """A runner on one store object hears of appends through another, by NOTIFY."""
        other = PostgresEventStore(DSN, registry=contract_registry, schema=schemas[-1])

        class Seen(Projection):
            name = "seen"

            def __init__(self):
                self.positions = []

            def handle(self, recorded, tx):
                self.positions.append(recorded.position)

        seen = Seen()
        try:
            with ProjectionRunner(store, seen, poll_interval=60) as runner:
                runner.wait_for(0, timeout=WAIT)
                time.sleep(0.5)  # the listener connects
                position = other.append("s", _deposits(1)).positions[0]
                runner.wait_for(position, timeout=WAIT)
            assert seen.positions == [position]
        finally:
            other.close()


class TestAsyncPostgresPaging:
    def test_appends_and_reads(self, schemas):
        """The async store appends, reads and pages as the sync one does."""
        schemas.append(new_schema())

        async def run():
            store = AsyncPostgresEventStore(DSN, registry=contract_registry, schema=schemas[-1])
            try:
                first = await store.append("s", [Deposited(Decimal(n)) for n in range(1500)])
                await store.append("t", [Noted("x")])
                amounts = [r.event.amount async for r in store.read_all(event_types=[Deposited])]
                return first, amounts, await store.stream_version("s")
            finally:
                await store.close()

        first, amounts, version = asyncio.run(run())
        assert (len(first.positions), amounts, version) == (1500, list(range(1500)), 1500)


class TestOptions:
    @pytest.mark.parametrize(
        ("option", "value", "error"),
        [
            ("schema", "no spaces", ValueError),
            ("schema", 3, TypeError),
            ("table_prefix", "x" * 40, ValueError),
            ("pool_size", 0, ValueError),
            ("lease_seconds", -1, ValueError),
        ],
    )
    def test_bad_options_are_refused(self, option, value, error):
        """Invalid options raise at once, naming the option."""
        with pytest.raises(error, match=option):
            PostgresEventStore(DSN, registry=contract_registry, **{option: value})


def _write(store, stream_id, *events):
    return RecordWrite(stream_id, tuple(store.codec.encode(event) for event in events), ANY)
