"""
The PostgreSQL event store: many processes on many machines sharing one database.

Writers run in parallel: an append takes a transaction-level advisory lock per stream
it writes (sorted, before its transaction has an id), reads the streams' versions,
lets `decide_append` decide, and inserts all its events in one statement. Positions
are ``((transaction id + offset) << 20) | n``, so they grow in the order in which
transactions *started writing*, and a reader that reads only below the oldest running
transaction's id (the horizon) never skips a late commit and sees positions strictly
increase. The advisory locks make a stream's versions follow that order too. See
:doc:`/explanation/ordering-and-no-skip`.

Projection batches run as synchronous bodies on a synchronous connection (in the
async store, in a worker thread), with fenced leases for one active runner per
projection across machines (see `_backends.postgres.projections`).

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import UTC
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import psycopg
import psycopg_pool
from psycopg import errors

from eventkit._acompat import AEvent, ALock, ajoin, asleep, aspawn, await_event
from eventkit._backends.postgres import schema as _schema
from eventkit._backends.postgres.bodies import AsyncBodyRunner
from eventkit._backends.postgres.connections import Boundary, safe_conninfo, stream_lock_key
from eventkit._backends.postgres.projections import LeaseHeld, dead_letter
from eventkit._backends.postgres.sql import Statements, event_records, insert_columns
from eventkit._records import Checkpoint, SnapshotRecord, StoredEventRef
from eventkit._rules import decide_append
from eventkit._store_async import AsyncBaseEventStore
from eventkit.exceptions import ArgumentError, ArgumentTypeError, ConcurrencyError, StoreError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from contextlib import AbstractAsyncContextManager

    import cattrs

    from eventkit._events import EventRegistry
    from eventkit._records import AppendResult, DeadLetter, EventRecord, RecordWrite
    from eventkit._rules import AppendPlan
    from eventkit._storage import ProjectionTransaction

T = TypeVar("T")

logger = logging.getLogger("eventkit.postgres")

# read_all fetches this many rows per query.
_PAGE_SIZE = 1000
# While a notified event is not yet readable, the listener looks again this often.
_NOTIFY_POLL = 0.02
# An append whose insert meets an event id stored meanwhile is decided again, once.
_APPEND_ATTEMPTS = 2


@attrs.frozen
class FeedDelay:
    """
    How far readers of the store are held back, and by what.

    Readers see an event only once every transaction that started writing before it has
    ended, in any database of the cluster: one long transaction holds the feed back
    (it never loses an event). Watch `seconds`; PostgreSQL's
    ``idle_in_transaction_session_timeout`` bounds how long a forgotten transaction
    can hold it.

    Attributes:
        events: Committed events that readers cannot see yet.
        seconds: How long the oldest of them has waited (0 when none waits).
        oldest_transaction_pid: The server process of the oldest transaction with an
            id in the cluster, when the server shows it (None for a prepared
            transaction, or when there is none).
        oldest_transaction_database: Its database, when known.
        oldest_transaction_seconds: How long it has run (None when hidden or absent).

    .. versionadded:: 0.1.0
    """

    events: int
    seconds: float
    oldest_transaction_pid: int | None = None
    oldest_transaction_database: str | None = None
    oldest_transaction_seconds: float | None = None


class AsyncPostgresEventStore(AsyncBaseEventStore):
    """
    An event store in PostgreSQL, for many processes on many machines.

    Writers of different streams append in parallel; writers of one stream are
    ordered. `AsyncEventStore.read_all` never skips or reorders an event, however
    transactions interleave: it reads only events below the *horizon*, the oldest
    transaction still running anywhere in the cluster, and positions grow in the order
    transactions began writing. A long open transaction delays readers (never loses
    events): `feed_delay` tells by how much. Runners on other machines are woken by
    ``LISTEN``/``NOTIFY`` after each commit.

    Projection checkpoints, dead letters and read models live in the same database;
    a runner that writes its read model through the transaction it is given applies
    each event exactly once. One runner holds a projection at a time, under a lease
    on the database's clock that every batch renews and checks (fencing): a runner
    paused past its lease cannot commit after another took over.

    The tables are created on first use (or by `create_tables`), in *schema* (created
    if missing), under names that start with *table_prefix*.

    Example:
        .. code-block:: python

            store = AsyncPostgresEventStore("postgresql://app@db.example/bank")
            await store.append("account-42", [MoneyDeposited(Decimal(10))])

    Args:
        conninfo: A connection string (``postgresql://user@host/db`` or
            ``host=... dbname=...``), or a psycopg ``AsyncConnectionPool`` that the
            store uses and does not close (give its connections ``autocommit=True``).
        registry: Where event type names are looked up; `default_registry` if omitted.
        converter: The cattrs converter for event data; `make_converter()` if omitted.
        schema: The PostgreSQL schema that holds the store's tables.
        table_prefix: Prefix of the store's table names, so that several stores can
            share a schema.
        pool_size: The most connections the store opens (when given a connection
            string).
        lease_seconds: How long a projection runner's lease lasts without renewal:
            how soon a standby takes over from a runner that died or was paused.
        idle_in_transaction_timeout: Seconds after which the server ends a session
            of this store that sits idle inside a transaction (a process paused or
            hung mid-batch), releasing its locks and the feed; None leaves the server's
            setting. Applies to the connections the store opens.
        connect_timeout: How long opening the store waits for its first connection
            before it gives up with `StoreError`.
        own_writes_timeout: How long a read through this store object waits for the
            events this object appended to become readable (they are once the
            transactions that began writing before them have ended, which is at once
            unless one of those is still open); after that it reads what it can. 0
            never waits.

    Raises:
        ValueError, TypeError: An option is invalid.
        StoreError: (On first use) the server cannot be reached, or the tables were
            written by a newer eventkit.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        conninfo: str | psycopg_pool.AsyncConnectionPool[Any],
        *,
        registry: EventRegistry | None = None,
        converter: cattrs.Converter | None = None,
        schema: str = "public",
        table_prefix: str = "eventkit_",
        pool_size: int = 10,
        lease_seconds: float = 10.0,
        idle_in_transaction_timeout: float | None = 60.0,
        connect_timeout: float = 10.0,
        own_writes_timeout: float = 5.0,
    ) -> None:
        super().__init__(registry=registry, converter=converter)
        self.schema = _schema.check_name("schema", schema)
        self._prefix = _schema.check_prefix(table_prefix)
        _check_positive("pool_size", pool_size, integer=True)
        _check_positive("lease_seconds", lease_seconds, integer=False)
        _check_positive("connect_timeout", connect_timeout, integer=False)
        _check_positive("own_writes_timeout", own_writes_timeout, integer=False, zero=True)
        self._own_writes_timeout = float(own_writes_timeout)
        self._connect_timeout = float(connect_timeout)
        if idle_in_transaction_timeout is not None:
            _check_positive(
                "idle_in_transaction_timeout", idle_in_transaction_timeout, integer=False
            )
        self.lease_seconds = float(lease_seconds)
        self._idle_timeout = idle_in_transaction_timeout
        namespace = f"{self.schema}.{self._prefix}"
        self._namespace = namespace
        channel = "eventkit_" + hashlib.blake2b(namespace.encode(), digest_size=8).hexdigest()
        self._sql = Statements(self.schema, self._prefix, channel)
        self._own_tables = _schema.own_tables(self._prefix)
        if isinstance(conninfo, str):
            self._conninfo = conninfo
            self._pool = psycopg_pool.AsyncConnectionPool(
                conninfo,
                min_size=1,
                max_size=pool_size,
                open=False,
                kwargs={"autocommit": True},
                configure=self._configure,
                name=f"eventkit {safe_conninfo(conninfo)}",
            )
            self._owns_pool = True
        elif isinstance(conninfo, psycopg_pool.AsyncConnectionPool):
            if not isinstance(conninfo.conninfo, str):
                raise ArgumentTypeError("a pool given to the store must have a connection string")
            self._conninfo = conninfo.conninfo
            self._pool = conninfo
            self._owns_pool = False
        else:
            raise ArgumentTypeError(
                "conninfo must be a connection string or an AsyncConnectionPool, got "
                f"{type(conninfo).__qualname__}"
            )
        self._name = safe_conninfo(self._conninfo) + f" (schema {self.schema!r})"
        self._boundary = Boundary(self._name)
        self._ready_lock = ALock()
        self._ready = False
        self._closed = False
        # The leases this store object holds, by projection: its transactions check them.
        self._leases: dict[str, LeaseHeld] = {}
        # The newest position this store object wrote, and the newest horizon it saw: a
        # read through the same object waits (briefly) until its own writes are readable.
        self._written = 0
        self._horizon = 0
        self._bodies = AsyncBodyRunner(
            self._pool,
            self._sql,
            name=self._name,
            schema=self.schema,
            own_tables=self._own_tables,
            leases=self._leases,
            settings=self._settings(),
        )
        self._listener: Any = None  # the task (or thread) that listens for appends
        self._listening = AEvent()
        self._stop_listening = AEvent()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"prefix {self._prefix!r}"
        return f"<{type(self).__name__} {self._name}, {state}>"

    def _settings(self) -> list[str]:
        # Times read back are UTC; a session forgotten inside a transaction (a process
        # paused mid-batch) must not hold locks, or the feed, for ever.
        # JIT compiling costs more than the short statements of an event store save.
        settings = ["SET TIME ZONE 'UTC'", "SET jit = off"]
        if self._idle_timeout is not None:
            millis = max(1, int(self._idle_timeout * 1000))
            settings.append(f"SET idle_in_transaction_session_timeout = {millis}")
        return settings

    async def _configure(self, conn: Any) -> None:
        for statement in self._settings():
            await conn.execute(statement)

    # -- opening, and the tables -------------------------------------------------------------

    async def open(self) -> None:
        """
        Connect, and create or upgrade the store's tables if needed.

        Every method does this on first use; call it at start-up to fail early.

        Raises:
            StoreError: The server cannot be reached, or the tables were written by a
                newer eventkit.
        """
        await self._prepare()

    async def create_tables(self) -> None:
        """Create the store's schema and tables, or upgrade them: the same as `open`."""
        await self._prepare()

    async def _prepare(self) -> None:
        if self._ready:
            return
        if self._closed:
            raise StoreError(f"PostgreSQL event store {self._name} is closed")
        async with self._ready_lock:
            if self._is_ready():  # another task opened the store while this one waited
                return
            if self._owns_pool:
                try:
                    await self._pool.open(wait=True, timeout=self._connect_timeout)
                except psycopg_pool.PoolTimeout as exc:
                    raise StoreError(
                        f"cannot connect to PostgreSQL event store {self._name} within "
                        f"{self._connect_timeout:g} seconds"
                    ) from exc
            async with self._boundary, self._pool.connection() as conn:
                await self._migrate(conn)
                await self._raise_offset(conn)
            self._ready = True

    def _is_ready(self) -> bool:
        return self._ready

    async def _migrate(self, conn: Any) -> None:
        sql = self._sql
        async with conn.transaction():
            # Stores that start at once in several processes migrate one after another.
            key = stream_lock_key(self._namespace, "\x00migrate")
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute(sql.meta_table)
            row = await (await conn.execute(sql.get_meta, ("schema_version",))).fetchone()
            found = _stored_int(row, self._name, "schema_version")
            _schema.check_version(found, self._name)
            if found == _schema.SCHEMA_VERSION:
                return
            for statement in _schema.migration_statements(self.schema, self._prefix, found):
                await conn.execute(statement)
            await conn.execute(sql.put_meta, ("schema_version", str(_schema.SCHEMA_VERSION)))
            if found == 0:
                await conn.execute(sql.put_meta, ("xid_offset", "0"))

    async def _raise_offset(self, conn: Any) -> None:
        # After a logical restore the server hands out transaction ids below those in the
        # stored positions: new events would sort before old ones, and readers whose
        # checkpoints are past them would never see them. Raise the offset first.
        sql = self._sql
        if not await self._behind(conn):
            return
        async with conn.transaction():
            await conn.execute(sql.lock_for_offset)  # waits for appends in flight
            if not await self._behind(conn):
                return
            top = await (await conn.execute(sql.max_position)).fetchone()
            next_xid = await (await conn.execute(sql.next_xid)).fetchone()
            offset = (top[0] >> _schema.POSITION_BITS) - next_xid[0] + 1
            await conn.execute(sql.put_meta, ("xid_offset", str(offset)))
        logger.warning(
            "PostgreSQL event store %s: transaction ids are behind the stored positions "
            "(was the database restored from a dump?); new positions now start after them",
            self._name,
        )

    async def _behind(self, conn: Any) -> bool:
        sql = self._sql
        top = await (await conn.execute(sql.max_position)).fetchone()
        if top is None or top[0] is None:
            return False
        offset_row = await (await conn.execute(sql.get_meta, ("xid_offset",))).fetchone()
        offset = _stored_int(offset_row, self._name, "xid_offset")
        next_xid = await (await conn.execute(sql.next_xid)).fetchone()
        return bool((top[0] >> _schema.POSITION_BITS) >= next_xid[0] + offset)

    def _connection(self) -> AbstractAsyncContextManager[Any]:
        if self._closed:
            raise StoreError(f"PostgreSQL event store {self._name} is closed")
        return self._pool.connection()

    async def _broken(self) -> None:
        # A lost connection: the pool's other idle connections may be dead too (the
        # server restarted, an administrator ended the sessions). Check them, so that
        # the next call gets a working one.
        await self._pool.check()

    # -- appending ----------------------------------------------------------------------

    async def _append(self, writes: list[RecordWrite]) -> list[AppendResult]:
        await self._prepare()
        last = _APPEND_ATTEMPTS - 1
        for attempt in range(_APPEND_ATTEMPTS):
            with self._boundary:
                try:
                    async with self._connection() as conn:
                        results = await self._append_on(conn, writes, look_up=attempt > 0)
                        # After the commit, naming the newest position written: listeners
                        # wake at once, and again once the event has become readable.
                        top = max((max(r.positions, default=0) for r in results), default=0)
                        await conn.execute(self._sql.notify, (str(top),))
                except errors.UniqueViolation:
                    # An event id is stored already (in another stream, or by a writer of
                    # another stream meanwhile): look the ids up this time, and decide.
                    if attempt == last:  # pragma: no cover (a race within a race)
                        raise
                    continue
                except psycopg.OperationalError:
                    await self._broken()
                    raise
            return results
        raise AssertionError  # pragma: no cover (the loop returns or raises)

    async def _append_on(
        self, conn: Any, writes: list[RecordWrite], *, look_up: bool = False
    ) -> list[AppendResult]:
        sql = self._sql
        stream_ids = [write.stream_id for write in writes]
        keys = sorted({stream_lock_key(self._namespace, stream_id) for stream_id in stream_ids})
        event_ids = [record.event_id for write in writes for record in write.records]
        async with conn.transaction():
            await conn.execute(sql.lock_streams, (keys,))
            rows = await (await conn.execute(sql.versions, (stream_ids,))).fetchall()
            stored = dict(rows)
            versions = [stored.get(stream_id, 0) for stream_id in stream_ids]
            try:
                found = await self._find(conn, event_ids) if look_up else {}
                plan = decide_append(writes, versions, found)
            except ConcurrencyError:
                # Maybe a retry of an append that succeeded, after the stream moved on.
                plan = decide_append(writes, versions, await self._find(conn, event_ids))
            # New ids are checked by the unique index: looking every id up first would
            # cost each append what only retries need.
            positions = await self._insert(conn, plan) if plan.rows else []
        if positions:
            self._written = max(self._written, positions[-1])
        return plan.results(positions)

    async def _find(self, conn: Any, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, StoredEventRef]:
        cursor = await conn.execute(self._sql.find_ids, (event_ids,))
        return {row[0]: StoredEventRef(row[1], row[2], row[3]) for row in await cursor.fetchall()}

    async def _insert(self, conn: Any, plan: AppendPlan) -> list[int]:
        columns = insert_columns(plan)
        cursor = await conn.execute(self._sql.insert, columns)
        # One transaction's positions share their high bits: sorted, they follow n.
        return sorted(row[0] for row in await cursor.fetchall())

    # -- reading ------------------------------------------------------------------------

    async def _fetch(self, statement: str, params: Sequence[Any]) -> list[Any]:
        await self._prepare()
        try:
            async with self._boundary, self._connection() as conn:
                cursor = await conn.execute(statement, params)
                rows: list[Any] = await cursor.fetchall()
                return rows
        except StoreError as exc:
            if isinstance(exc.__cause__, psycopg.OperationalError):
                await self._broken()
            raise

    async def _read_stream(
        self, stream_id: str, low: int, high: int | None, *, backwards: bool, limit: int | None
    ) -> list[EventRecord]:
        sql = self._sql.read_stream_backwards if backwards else self._sql.read_stream
        params = (
            stream_id,
            min(low, _MAX_INT4),
            _MAX_INT4 if high is None else min(high, _MAX_INT4),
            limit,
        )
        return _utc(event_records(await self._fetch(sql, params)))

    async def _read_all(
        self, after_position: int, limit: int | None, event_types: frozenset[str] | None
    ) -> AsyncIterator[EventRecord]:
        remaining = limit
        after = min(after_position, _MAX_INT8)
        while remaining is None or remaining > 0:
            size = _PAGE_SIZE if remaining is None else min(_PAGE_SIZE, remaining)
            page = await self.read_page(after, size, event_types)
            for record in page:
                yield record
            if len(page) < size:
                return
            after = page[-1].position
            if remaining is not None:
                remaining -= size

    async def read_page(
        self, after_position: int, size: int, event_types: frozenset[str] | None
    ) -> list[EventRecord]:
        """Return one page of `read_all`: at most *size* records after *after_position*."""
        await self._see_own_writes()
        if event_types is None:
            rows = await self._fetch(self._sql.read_all, (after_position, size))
        else:
            params = (list(event_types), after_position, size)
            rows = await self._fetch(self._sql.read_all_of_types, params)
        return _utc(event_records(rows))

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's version: 0 when it does not exist."""
        rows = await self._fetch(self._sql.version, (stream_id,))
        return int(rows[0][0])

    async def head_position(self) -> int:
        """Return the position of the newest event readers can see: 0 when none."""
        await self._see_own_writes()
        rows = await self._fetch(self._sql.head, ())
        return int(rows[0][0])

    async def _see_own_writes(self) -> None:
        # Read your writes through the same store object: an event this object appended
        # is readable once every transaction older than it has ended, which is at once
        # unless another transaction is still open (an autovacuum, a long writer). Wait
        # for that a little, never long: the event is not lost, only not yet readable.
        if self._written < self._horizon:
            return
        deadline = time.monotonic() + self._own_writes_timeout
        pause = 0.001
        while True:
            rows = await self._fetch(self._sql.horizon, ())
            self._horizon = int(rows[0][0])
            if self._written < self._horizon or time.monotonic() >= deadline:
                return
            await asleep(pause)
            pause = min(pause * 2, 0.05)

    async def _count_events(self, after_position: int, up_to: int | None) -> int:
        upper = _MAX_INT8 if up_to is None else min(up_to, _MAX_INT8)
        rows = await self._fetch(self._sql.count, (min(after_position, _MAX_INT8), upper))
        return int(rows[0][0])

    async def _stream_ids(self, prefix: str, after: str | None, limit: int) -> list[str]:
        params = (prefix, after or "", prefix, limit)
        return [row[0] for row in await self._fetch(self._sql.stream_ids, params)]

    async def feed_delay(self) -> FeedDelay:
        """
        Report how far readers are held back by transactions still running.

        Returns:
            The committed events readers cannot see yet, how long the oldest has
            waited, and the oldest transaction of the cluster that holds them back.
        """
        held = await self._fetch(self._sql.held_events, ())
        count, oldest, now = held[0]
        seconds = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
        rows = await self._fetch(self._sql.oldest_transaction, ())
        if not rows:
            return FeedDelay(int(count), seconds)
        pid, database, running = rows[0]
        running_seconds = None if running is None else running.total_seconds()
        return FeedDelay(int(count), seconds, pid, database, running_seconds)

    # -- snapshots ----------------------------------------------------------------------

    async def _save_snapshot(self, record: SnapshotRecord) -> None:
        await self._fetch_none(self._sql.save_snapshot, tuple(record))

    async def _load_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        rows = await self._fetch(self._sql.load_snapshot, (stream_id,))
        if not rows:
            return None
        record = SnapshotRecord(*rows[0])
        return record._replace(taken_at=record.taken_at.astimezone(UTC))

    async def _fetch_none(self, statement: str, params: Sequence[Any]) -> None:
        await self._prepare()
        async with self._boundary, self._connection() as conn:
            await conn.execute(statement, params)

    # -- projection storage -------------------------------------------------------------

    @property
    def exactly_once(self) -> bool:
        """True: handlers write through the transaction that moves the checkpoint."""
        return True

    async def run_projection_transaction(self, body: Callable[[ProjectionTransaction], T]) -> T:
        """
        Call *body* in one transaction on a synchronous connection, and return its result.

        Read-model tables a handler names without a schema live in the store's schema.
        A checkpoint moved under a lease this store no longer holds raises
        `ProjectionLockLostError`, and the transaction rolls back.
        """
        await self._prepare()
        appended = 0

        def watched(tx: ProjectionTransaction) -> T:
            nonlocal appended
            result = body(tx)
            appended = getattr(tx, "appended", 0)
            return result

        result = await self._bodies.run(watched)
        if appended:  # events appended in the transaction (by a process manager)
            self._written = max(self._written, appended)
            self._listeners.notify()
        return result

    async def projection_checkpoints(self) -> dict[str, Checkpoint]:
        """Return every committed checkpoint, by projection name."""
        rows = await self._fetch(self._sql.checkpoints, ())
        return {name: Checkpoint(position, version) for name, position, version in rows}

    async def dead_letters(self, projection: str) -> list[DeadLetter]:
        """Return the projection's committed dead letters, in position order."""
        rows = await self._fetch(self._sql.dead_letters, (projection,))
        return [dead_letter(row) for row in rows]

    async def lock_projection(self, projection: str) -> AsyncLease | None:
        """
        Take the projection's lease, when it is free (never taken, released, or expired).

        The lease lasts *lease_seconds* on the database's clock; every checkpoint the
        holder commits renews it, and so does the lease's ``renew`` between batches.
        """
        owner = uuid.uuid4()
        rows = await self._fetch(self._sql.take_lease, (projection, owner, self.lease_seconds))
        if not rows:
            return None
        held = LeaseHeld(owner, int(rows[0][0]), self.lease_seconds)
        self._leases[projection] = held
        return AsyncLease(self, projection, held)

    def on_append(self, callback: Callable[[], None]) -> Callable[[], None]:
        """
        Call *callback* after each append through this store, and on other processes' too.

        Appends made through other store objects, in this process or on other machines,
        are heard of through ``LISTEN``/``NOTIFY``: the first subscriber starts a
        listener, and `close` stops it.
        """
        unsubscribe = super().on_append(callback)
        if self._listener is None and not self._closed:
            self._stop_listening.clear()
            self._listener = aspawn(self._listen, name="eventkit-postgres-listener")
        return unsubscribe

    async def _listen(self) -> None:
        # Reconnects after a failure: a listener that gave up would leave runners polling.
        while not self._stop_listening.is_set():
            try:
                await self._listen_once()
            except psycopg.Error:
                logger.warning(
                    "PostgreSQL event store %s: listening for appends failed; retrying",
                    self._name,
                    exc_info=True,
                )
                await await_event(self._stop_listening, 1.0)

    async def _listen_once(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        try:
            await conn.execute(self._sql.listen)
            self._listening.set()
            # Appends committed while no one listened are looked for by the runners.
            self._listeners.notify()
            # An event is readable once every transaction older than it has ended: when
            # one has not yet, wake the runners again, briefly polling, once it has.
            pending = 0
            while not self._stop_listening.is_set():
                async for notify in conn.notifies(timeout=_NOTIFY_POLL if pending else 0.5):
                    pending = max(pending, _notified_position(notify.payload))
                    self._listeners.notify()
                if pending:
                    cursor = await conn.execute(self._sql.horizon)
                    row = await cursor.fetchone()
                    if row is not None and row[0] > pending:
                        pending = 0
                        self._listeners.notify()
        finally:
            self._listening.clear()
            await conn.close()

    async def close(self) -> None:
        """
        Stop listening and close the connections the store opened; closing again does nothing.

        A pool passed to the constructor is left open.
        """
        if self._closed:
            return
        self._closed = True
        self._stop_listening.set()
        if self._listener is not None:
            await ajoin(self._listener, 5.0)
            self._listener = None
        await self._bodies.close()
        if self._owns_pool:
            await self._pool.close()


class AsyncLease:
    """
    A projection runner's lease on a projection, in the store's lease table.

    .. versionadded:: 0.1.0
    """

    def __init__(self, store: AsyncPostgresEventStore, projection: str, held: LeaseHeld) -> None:
        self._store = store
        self.projection = projection
        self._held = held
        self._renewed = time.monotonic()

    @property
    def generation(self) -> int:
        """How many times the projection was taken: this lease's fencing token."""
        return self._held.generation

    async def renew(self) -> bool:
        """
        Extend the lease; return False when it was lost (expired, or taken over).

        Renewals more frequent than a third of the lease are skipped: they would only
        cost round trips.
        """
        if self._store._leases.get(self.projection) is not self._held:  # noqa: SLF001 (the store's own record)
            return False
        if time.monotonic() - self._renewed < self._held.seconds / 3:
            return True
        params = (self._held.seconds, self.projection, self._held.owner, self._held.generation)
        rows = await self._store._fetch(self._store._sql.renew_lease, params)  # noqa: SLF001 (the lease and its store are one unit)
        if not rows:
            self._forget()
            return False
        self._renewed = time.monotonic()
        return True

    async def release(self) -> None:
        """Give the lease up, so that a standby takes over at once; twice is harmless."""
        if self._store._leases.get(self.projection) is not self._held:  # noqa: SLF001 (the store's own record)
            return
        self._forget()
        params = (self.projection, self._held.owner, self._held.generation)
        await self._store._fetch_none(self._store._sql.release_lease, params)  # noqa: SLF001 (the lease and its store are one unit)

    def _forget(self) -> None:
        if self._store._leases.get(self.projection) is self._held:  # noqa: SLF001 (the store's own record)
            del self._store._leases[self.projection]  # noqa: SLF001 (the store's own record)


def _notified_position(payload: str) -> int:
    # A position that another process named: anything else (an older release, a
    # NOTIFY sent by hand) wakes the runners without a position to wait for.
    try:
        return int(payload)
    except ValueError:
        return 0


_MAX_INT4 = 2**31 - 1
_MAX_INT8 = 2**63 - 1


def _utc(records: list[EventRecord]) -> list[EventRecord]:
    # The store's own connections speak UTC; a pool given by the caller may not.
    if records and records[0].recorded_at.utcoffset():
        return [r._replace(recorded_at=r.recorded_at.astimezone(UTC)) for r in records]
    return records


def _stored_int(row: Any, name: str, key: str) -> int:
    if row is None:
        return 0
    try:
        return int(row[0])
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"PostgreSQL event store {name}: the {key} in its meta table is damaged: {row[0]!r}"
        ) from exc


def _check_positive(what: str, value: object, *, integer: bool, zero: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if (
        isinstance(value, bool)
        or not isinstance(value, kinds)
        or not (value >= 0 if zero else value > 0)
    ):
        kind = "an integer" if integer else "a number"
        raise ArgumentError(f"{what} must be {kind} {'>=' if zero else '>'} 0, got {value!r}")
