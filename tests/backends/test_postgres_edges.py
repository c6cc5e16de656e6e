"""The PostgreSQL stores, sync and async, at their edges: options, pools, failures, leases."""

import asyncio
import contextlib
import hashlib
import inspect
import logging
import time
import traceback
import uuid
from urllib.parse import quote

import psycopg
import psycopg_pool
import pytest
import pytest_asyncio

from eventkit import (
    ANY,
    AsyncPostgresEventStore,
    DuplicateEventIdError,
    PostgresEventStore,
    Projection,
    ProjectionRunner,
    StoreError,
)
from eventkit._backends.postgres import schema as schema_module
from eventkit._backends.postgres import sql as sql_module
from eventkit._backends.postgres.schema import POSITION_BITS
from eventkit.backends import RecordWrite
from eventkit.testing import contract_registry
from eventkit.testing._events import _deposits
from tests.backends.postgres_support import DSN, new_schema

WAIT = 10.0
FLAVOURS = {"sync": PostgresEventStore, "async": AsyncPostgresEventStore}


async def call(value):
    """The result of a store call: awaited for the async store, as it is for the sync one."""
    return await value if inspect.isawaitable(value) else value


async def collect(iterable):
    """The items of a sync or an async iterator."""
    if hasattr(iterable, "__aiter__"):
        return [item async for item in iterable]
    return list(iterable)


def raw(sql, params=()):
    with psycopg.connect(DSN, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


def with_params(**params):
    """The test DSN with query parameters added."""
    query = "&".join(f"{key}={quote(str(value), safe='')}" for key, value in params.items())
    return f"{DSN}{'&' if '?' in DSN else '?'}{query}"


async def eventually(check, what):
    """Wait (without blocking other tasks) until *check()* is true; fail naming *what*."""
    deadline = time.monotonic() + WAIT
    while not await call(check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WAIT} seconds")
        await asyncio.sleep(0.02)


async def readable(store, count):
    """The store's feed once it shows *count* events (transactions elsewhere may hold it)."""
    deadline = time.monotonic() + WAIT
    while True:
        records = await collect(store.read_all())
        if len(records) >= count or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.02)


def sessions(application_name, query_prefix=""):
    """The server processes of the sessions with that application name (and query)."""
    rows = raw(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND query LIKE %s "
        "AND pid <> pg_backend_pid()",
        (application_name, query_prefix + "%"),
    )
    return {pid for (pid,) in rows}


async def kill(pids):
    """End the sessions *pids*, and wait until the server has ended them."""
    for pid in pids:
        raw("SELECT pg_terminate_backend(%s)", (pid,))
    await eventually(
        lambda: not raw("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),)),
        "the end of the killed sessions",
    )


@contextlib.asynccontextmanager
async def connection(pool):
    """A connection of a sync or an async pool."""
    context = pool.connection()
    if hasattr(context, "__aenter__"):
        async with context as conn:
            yield conn
    else:
        with context as conn:
            yield conn


@pytest.fixture(name="flavour", params=sorted(FLAVOURS))
def _flavour(request):
    return request.param


@pytest_asyncio.fixture(name="make")
async def _make(flavour, schemas):
    """Make stores of the test's flavour in a new schema (the same one each call); close them."""
    schemas.append(new_schema())
    made = []

    def make(conninfo=DSN, **options):
        options.setdefault("registry", contract_registry)
        options.setdefault("schema", schemas[-1])
        store = FLAVOURS[flavour](conninfo, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        await call(store.close())


@pytest.mark.parametrize("cls", list(FLAVOURS.values()), ids=list(FLAVOURS))
class TestOptions:
    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("pool_size", True),
            ("pool_size", 2.5),
            ("lease_seconds", "10"),
            ("connect_timeout", 0),
            ("own_writes_timeout", -1),
            ("idle_in_transaction_timeout", 0),
        ],
    )
    def test_a_bad_number_is_refused_naming_the_option(self, cls, option, value):
        """Numbers that are not numbers, or out of range, raise ValueError naming the option."""
        with pytest.raises(ValueError, match=f"^{option} must be .* got {value!r}$"):
            cls(DSN, registry=contract_registry, **{option: value})

    def test_a_table_prefix_must_be_a_string(self, cls):
        """A table prefix that is not a string raises TypeError naming the option."""
        with pytest.raises(TypeError, match="table_prefix must be a string, got 7"):
            cls(DSN, registry=contract_registry, table_prefix=7)

    def test_conninfo_of_another_kind_is_refused(self, cls):
        """Neither a string nor a pool of the store's kind: TypeError naming what was given."""
        with pytest.raises(TypeError, match=r"conninfo must be a connection string .* got int"):
            cls(5432, registry=contract_registry)

    @pytest.mark.asyncio
    async def test_a_pool_of_the_other_kind_is_refused(self, cls):
        """An async pool for the sync store (and the reverse) raises TypeError."""
        other = (
            psycopg_pool.AsyncConnectionPool
            if cls is PostgresEventStore
            else psycopg_pool.ConnectionPool
        )
        pool = other(DSN, open=False)
        with pytest.raises(TypeError, match=f"got {other.__name__}$"):
            cls(pool, registry=contract_registry)

    @pytest.mark.asyncio
    async def test_a_pool_without_a_connection_string_is_refused(self, cls):
        """A pool that computes its connection string is refused: listeners need one."""
        kind = (
            psycopg_pool.ConnectionPool
            if cls is PostgresEventStore
            else psycopg_pool.AsyncConnectionPool
        )
        pool = kind(lambda: DSN, open=False)
        with pytest.raises(TypeError, match="pool given to the store must have a connection"):
            cls(pool, registry=contract_registry)


@pytest.mark.asyncio
class TestOpening:
    @pytest.mark.parametrize(
        "dsn",
        [
            "postgresql://postgres:{secret}@127.0.0.1:1/test",
            "postgresql://postgres@127.0.0.1:1/test?password={secret}",
            "postgresql://127.0.0.1:1/test?user=ops@example&password={secret}",
            "postgresql://postgres:pw@127.0.0.1:1/test?sslpassword={secret}",
            "host=127.0.0.1 port=1 dbname=test user=postgres password={secret}",
            "host=127.0.0.1 port=1 dbname=test password='{secret}",
        ],
        ids=["user-info", "query", "query-after-an-at", "key-passphrase", "pairs", "unreadable"],
    )
    async def test_a_server_that_does_not_answer_is_reported_without_secrets(
        self, make, dsn, caplog
    ):
        """StoreError says the store could not connect in time; no secret shows anywhere."""
        secret = "s3cr3t-" + uuid.uuid4().hex
        store = make(dsn.format(secret=secret), connect_timeout=0.3)
        with caplog.at_level(logging.DEBUG), pytest.raises(StoreError) as info:
            await call(store.open())
        shown = "".join(traceback.format_exception(info.value)) + repr(store) + caplog.text
        assert "cannot connect to PostgreSQL event store" in str(info.value)
        assert "within 0.3 seconds" in str(info.value)
        assert secret not in shown
        assert "***" in repr(store) or "an unreadable connection string" in repr(store)

    async def test_a_closed_store_refuses_to_work(self, make):
        """Any call on a closed store raises StoreError saying so, opened before or not."""
        opened, never = make(), make()
        await call(opened.append("s", _deposits(1)))
        for store in (opened, never):
            await call(store.close())
            await call(store.close())  # closing again does nothing
            with pytest.raises(StoreError, match=r"event store .* is closed"):
                await call(store.stream_version("s"))
            assert repr(store).endswith(", closed>")

    async def test_tables_are_created_once_and_found_by_the_next_store(self, make, schemas):
        """create_tables makes the tables; another store object finds them and the events."""
        first = make()
        await call(first.create_tables())
        tables = raw(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schemas[-1],),
        )
        assert "eventkit_events" in {name for (name,) in tables}
        await call(first.append("s", _deposits(1, 2)))
        second = make()
        await call(second.open())
        assert await call(second.stream_version("s")) == 2

    @pytest.mark.parametrize(
        ("timeout", "shown"), [(0.25, "250ms"), (None, None)], ids=["set", "server's"]
    )
    async def test_the_idle_in_transaction_timeout_reaches_the_sessions(self, make, timeout, shown):
        """Batches run with the idle-in-transaction timeout asked for, or the server's."""
        server = raw("SHOW idle_in_transaction_session_timeout")[0][0]
        store = make(idle_in_transaction_timeout=timeout)

        def body(tx):
            return tx.connection.execute("SHOW idle_in_transaction_session_timeout").fetchone()

        (setting,) = await call(store.run_projection_transaction(body))
        assert setting == (shown or server)

    @pytest.mark.parametrize(
        ("key", "value"), [("schema_version", "x"), ("xid_offset", "")], ids=["version", "offset"]
    )
    async def test_a_damaged_meta_table_is_reported(self, make, schemas, key, value):
        """A value in the meta table that is not a number raises StoreError naming it."""
        await call(make().append("s", _deposits(1)))
        raw(f'UPDATE "{schemas[-1]}".eventkit_meta SET value = %s WHERE key = %s', (value, key))
        with pytest.raises(StoreError, match=f"the {key} in its meta table is damaged: {value!r}"):
            await call(make().open())

    async def test_tables_of_a_newer_release_are_refused(self, make, schemas):
        """Tables at a schema version this release does not know: StoreError, nothing touched."""
        await call(make().append("s", _deposits(1)))
        newer = schema_module.SCHEMA_VERSION + 1
        raw(
            f'UPDATE "{schemas[-1]}".eventkit_meta SET value = %s WHERE key = %s',
            (str(newer), "schema_version"),
        )
        with pytest.raises(StoreError, match=f"the tables are at schema version {newer}"):
            await call(make().open())
        assert raw(f'SELECT count(*) FROM "{schemas[-1]}".eventkit_events') == [(1,)]

    async def test_new_positions_follow_old_ones_after_a_restore(self, make, schemas, caplog):
        """Positions stored ahead of the server's transaction ids raise the offset, and warn."""
        await call(make().append("s", _deposits(1)))
        ahead = (1 << 40) << POSITION_BITS
        raw(f'UPDATE "{schemas[-1]}".eventkit_events SET position = position + %s', (ahead,))
        store = make()
        with caplog.at_level(logging.WARNING, logger="eventkit.postgres"):
            result = await call(store.append("s", _deposits(2)))
        positions = [r.position for r in await collect(store.read_all())]
        assert positions == sorted(positions)
        assert result.positions[0] == positions[-1] > ahead
        assert "transaction ids are behind the stored positions" in caplog.text
        # The offset stays raised: a store opened later does not warn again.
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="eventkit.postgres"):
            await call(make().open())
        assert "behind" not in caplog.text


@pytest.mark.asyncio
class TestCallersPool:
    async def test_a_pool_in_another_time_zone_reads_times_in_utc(self, flavour, make):
        """The store uses the caller's pool, reads times in UTC, and leaves the pool open."""
        tokyo = with_params(options="-c TimeZone=Asia/Tokyo")
        if flavour == "sync":
            pool = psycopg_pool.ConnectionPool(tokyo, kwargs={"autocommit": True}, open=True)
        else:
            pool = psycopg_pool.AsyncConnectionPool(tokyo, kwargs={"autocommit": True}, open=False)
            await pool.open()
        try:
            through_pool = make(pool)
            await call(through_pool.append("s", _deposits(1, 2)))
            own = make()
            expected = [r.recorded_at.isoformat() for r in await readable(own, 2)]
            assert [r.recorded_at.isoformat() for r in await collect(through_pool.read_all())] == (
                expected
            )
            stream = await call(through_pool.read_stream("s"))
            assert [r.recorded_at.isoformat() for r in stream] == expected
            assert all(t.endswith("+00:00") for t in expected)
            await call(through_pool.close())
            with pytest.raises(StoreError, match="is closed"):
                await call(through_pool.head_position())
            async with connection(pool) as conn:
                cursor = await call(conn.execute("SHOW TimeZone"))
                assert (await call(cursor.fetchone())) == ("Asia/Tokyo",)
        finally:
            await call(pool.close())


@pytest.mark.asyncio
class TestFailures:
    async def test_an_append_past_the_position_space_is_refused(self, make, monkeypatch):
        """More events than one transaction's positions hold: ArgumentError, nothing stored."""
        # The real limit is about a million events; the same check, with a lower one.
        monkeypatch.setattr(sql_module, "MAX_EVENTS_PER_TRANSACTION", 3)
        store = make()
        with pytest.raises(ValueError, match="holds at most 3 events, got 4"):
            await call(store.append("s", _deposits(1, 2, 3, 4)))
        assert await call(store.stream_version("s")) == 0
        assert (await call(store.append("s", _deposits(1, 2, 3)))).version == 3

    @pytest.mark.parametrize("what", ["read", "append"])
    async def test_a_killed_connection_fails_one_call_and_the_next_works(self, make, what):
        """A session the server ended: StoreError naming the connection, then it recovers."""
        name = "eventkit-edges-" + uuid.uuid4().hex[:8]
        store = make(with_params(application_name=name))
        await call(store.append("s", _deposits(1)))
        await kill(sessions(name))
        calls = {
            "read": lambda: store.stream_version("s"),
            "append": lambda: store.append("s", _deposits(2)),
        }
        with pytest.raises(StoreError, match="the connection failed"):
            await call(calls[what]())
        assert await call(store.stream_version("s")) == 1  # the failed append stored nothing
        assert (await call(store.append("s", _deposits(3)))).version == 2

    async def test_a_statement_the_server_refuses_is_reported_by_its_kind(self, make, schemas):
        """A table gone from under the store: StoreError naming the server's error."""
        store = make()
        await call(store.append("s", _deposits(1)))
        raw(f'DROP TABLE "{schemas[-1]}".eventkit_events CASCADE')
        with pytest.raises(StoreError, match=r"UndefinedTable: relation .* does not exist"):
            await call(store.stream_version("s"))

    async def test_a_read_waits_briefly_for_its_own_writes_then_reads_what_it_can(self, make):
        """An open transaction elsewhere hides a new event, and feed_delay says how many."""
        store = make(own_writes_timeout=0.1)
        await call(store.append("s", _deposits(1)))
        assert len(await readable(store, 1)) == 1
        quiet = await call(store.feed_delay())
        assert (quiet.events, quiet.seconds) == (0, 0.0)
        other = psycopg.connect(DSN)
        try:
            other.execute("SELECT pg_current_xact_id()")  # takes a transaction id, holds it
            await call(store.append("s", _deposits(2)))
            assert [r.version for r in await collect(store.read_all())] == [1]
            held = await call(store.feed_delay())
            assert held.events == 1
            assert held.oldest_transaction_pid is not None
            assert held.oldest_transaction_seconds is not None
        finally:
            other.close()
        assert [r.version for r in await readable(store, 2)] == [1, 2]


@pytest.mark.asyncio
class TestListening:
    async def test_the_listener_reconnects_after_its_session_is_killed(self, make, caplog):
        """A lost LISTEN session is logged and replaced; appends elsewhere wake again."""
        name = "eventkit-edges-" + uuid.uuid4().hex[:8]
        store = make(with_params(application_name=name))
        woken = []
        store.on_append(lambda: woken.append(1))
        await eventually(lambda: sessions(name, "LISTEN"), "listening")
        await eventually(lambda: woken, "the wake-up on listening")
        first = sessions(name, "LISTEN")
        before = len(woken)
        with caplog.at_level(logging.WARNING, logger="eventkit.postgres"):
            await kill(first)
            await eventually(
                lambda: "listening for appends failed; retrying" in caplog.text, "the warning"
            )
            await eventually(lambda: sessions(name, "LISTEN") - first, "listening again")
            await eventually(lambda: len(woken) > before, "the wake-up on listening again")
        again = len(woken)
        await call(make().append("elsewhere", _deposits(1)))
        await eventually(lambda: len(woken) > again, "the wake-up by another store's append")

    async def test_a_notify_sent_by_hand_wakes_the_subscribers(self, make, schemas):
        """A NOTIFY whose payload is not a position still wakes the store's subscribers."""
        name = "eventkit-edges-" + uuid.uuid4().hex[:8]
        store = make(with_params(application_name=name))
        woken = []
        store.on_append(lambda: woken.append(1))
        await eventually(lambda: sessions(name, "LISTEN"), "listening")
        await eventually(lambda: woken, "the wake-up on listening")
        before = len(woken)
        namespace = f"{schemas[-1]}.eventkit_"
        channel = "eventkit_" + hashlib.blake2b(namespace.encode(), digest_size=8).hexdigest()
        raw(f"NOTIFY {channel}, 'not a position'")
        await eventually(lambda: len(woken) > before, "the wake-up by hand")


@pytest.mark.asyncio
class TestLeases:
    async def test_a_lease_is_exclusive_renewable_and_released_once(self, make):
        """One holder at a time; generations count the takes; a second release does nothing."""
        one, two = make(), make()
        lease = await call(one.lock_projection("p"))
        assert lease.generation == 1
        assert await call(two.lock_projection("p")) is None
        assert await call(lease.renew()) is True
        await call(lease.release())
        await call(lease.release())
        assert await call(lease.renew()) is False  # given up: not renewed
        taken = await call(two.lock_projection("p"))
        assert taken.generation == 2
        await call(lease.release())  # the old lease's release leaves the new holder alone
        assert await call(one.lock_projection("p")) is None

    async def test_a_renewal_after_a_third_of_the_lease_extends_it(self, make):
        """Renewing once a third of the lease passed asks the server, and keeps the lease."""
        one, two = make(lease_seconds=3), make()
        lease = await call(one.lock_projection("p"))
        await asyncio.sleep(1.1)
        assert await call(lease.renew()) is True
        assert await call(two.lock_projection("p")) is None

    async def test_an_expired_lease_taken_over_cannot_be_renewed(self, make):
        """A standby takes an expired lease; the old holder's renew says it was lost."""
        one, two = make(lease_seconds=0.2), make()
        lease = await call(one.lock_projection("p"))
        taken = []

        async def take():
            taken.append(await call(two.lock_projection("p")))
            return taken[-1] is not None

        await eventually(take, "the takeover")
        assert taken[-1].generation == 2
        assert await call(lease.renew()) is False
        await call(lease.release())  # the lost lease's release leaves the new holder alone
        assert await call(make().lock_projection("p")) is None


class Tally(Projection):
    """Counts events per stream in a PostgreSQL table, with an index of its own."""

    name = "tally"
    tables = ("tally",)

    def __init__(self, version=1, weight=1):
        self.version = version
        self.weight = weight

    def setup(self, tx):
        tx.execute(self.sql("CREATE TABLE IF NOT EXISTS {tally} (id text PRIMARY KEY, n integer)"))
        tx.execute(self.sql("CREATE INDEX IF NOT EXISTS {tally}_by_n ON {tally} (n)"))

    def handle(self, recorded, tx):
        tx.execute(
            self.sql(
                "INSERT INTO {tally} VALUES (%s, %s) "
                "ON CONFLICT (id) DO UPDATE SET n = {tally}.n + excluded.n"
            ),
            (recorded.stream_id, self.weight),
        )


@pytest.fixture(name="sync_store")
def _sync_store(schemas):
    schemas.append(new_schema())
    store = PostgresEventStore(DSN, registry=contract_registry, schema=schemas[-1])
    yield store
    store.close()


class TestReadModels:
    def test_each_new_version_rebuilds_the_tables_and_their_indexes(self, sync_store, schemas):
        """Versions 2 and 3 rebuild the read model; the live table keeps its usual index."""
        sync_store.append("a", _deposits(1, 2))
        sync_store.append("b", _deposits(3))
        schema = schemas[-1]
        for version in (1, 2, 3):
            ProjectionRunner(sync_store, Tally(version, weight=version)).run_until_caught_up()
            rows = raw(f'SELECT id, n FROM "{schema}".tally ORDER BY id')
            assert rows == [("a", 2 * version), ("b", version)]
        relations = raw(
            "SELECT relname, relkind FROM pg_class JOIN pg_namespace "
            "ON pg_namespace.oid = relnamespace WHERE nspname = %s AND relname LIKE 'tally%%'",
            (schema,),
        )
        assert sorted(name for name, kind in relations if kind == "r") == ["tally"]
        assert "tally_by_n" in {name for name, kind in relations if kind == "i"}
        assert sync_store.projection_checkpoints()["tally"].version == 3

    def test_a_replay_empties_and_refills_the_tables(self, sync_store, schemas):
        """A replay starts from an empty table and applies each event once."""
        sync_store.append("a", _deposits(1, 2))
        runner = ProjectionRunner(sync_store, Tally())
        runner.run_until_caught_up()
        runner.replay("tally", quiet=True)
        assert raw(f'SELECT id, n FROM "{schemas[-1]}".tally') == [("a", 2)]

    @pytest.mark.parametrize(
        "change",
        [
            lambda tx: tx.drop_tables(["eventkit_events"]),
            lambda tx: tx.replace_tables([("tally", "eventkit_checkpoints")]),
            lambda tx: tx.replace_tables([("eventkit_events", "tally")]),
        ],
        ids=["drop", "replace", "move-away"],
    )
    def test_the_stores_own_tables_cannot_be_dropped_or_replaced(self, sync_store, change):
        """A read-model operation naming one of the store's tables is refused; nothing is lost."""
        sync_store.append("a", _deposits(1))
        with pytest.raises(ValueError, match="is one of the store's own tables"):
            sync_store.run_projection_transaction(change)
        assert [r.version for r in sync_store.read_all()] == [1]

    def test_an_event_id_stored_elsewhere_is_refused_as_by_append(self, sync_store):
        """Appending in a projection transaction an id another stream holds: the same error."""
        record = sync_store.codec.encode(_deposits(1)[0])
        sync_store.append_records([RecordWrite("s", (record,), ANY)])
        again = [RecordWrite("t", (record,), ANY)]
        with pytest.raises(DuplicateEventIdError, match="already used by an event in stream 's'"):
            sync_store.append_records(again)
        with pytest.raises(DuplicateEventIdError, match="already used by an event in stream 's'"):
            sync_store.run_projection_transaction(lambda tx: tx.append(again))
        assert sync_store.stream_version("t") == 0

    def test_an_append_past_the_position_space_is_refused_in_a_transaction(
        self, sync_store, monkeypatch
    ):
        """A projection transaction appending more events than positions allow rolls back."""
        # The real limit is about a million events; the same check, with a lower one.
        monkeypatch.setattr(sql_module, "MAX_EVENTS_PER_TRANSACTION", 2)
        records = tuple(sync_store.codec.encode(event) for event in _deposits(1, 2, 3))
        with pytest.raises(ValueError, match="holds at most 2 events, got 3"):
            sync_store.run_projection_transaction(
                lambda tx: tx.append([RecordWrite("s", records, ANY)])
            )
        assert sync_store.stream_version("s") == 0
