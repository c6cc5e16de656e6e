"""
Where projection transactions run: a synchronous body on a synchronous connection.

`BodyRunner` serves the sync store, on its own pool. `AsyncBodyRunner` serves the
async store: psycopg's async connections cannot run a synchronous handler, so it keeps
a small pool of synchronous connections to the same database and runs each body in a
worker thread, off the event loop. A cancelled batch rolls back if it has not begun to
commit. The async store's source names `AsyncBodyRunner`; its generated sync twin
names `BodyRunner`: the two take the same arguments.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg_pool

from eventkit._backends.postgres.projections import PostgresProjectionTransaction
from eventkit._storage import TransactionAborted
from eventkit.exceptions import ArgumentTypeError, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import psycopg

    from eventkit._backends.postgres.projections import LeaseHeld
    from eventkit._backends.postgres.sql import Statements
    from eventkit._storage import ProjectionTransaction

T = TypeVar("T")

# Projection batches of one store at once: runners of several projections may share it.
_BODY_THREADS = 4


class BodyRunner:
    """Runs projection transaction bodies on the sync store's own connections."""

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool[Any],
        sql: Statements,
        *,
        name: str,
        schema: str,
        own_tables: frozenset[str],
        leases: Mapping[str, LeaseHeld],
        settings: Sequence[str] = (),  # noqa: ARG002 (the store's pool applies them)
    ) -> None:
        self._pool = pool
        self._sql = sql
        self._name = name
        self._schema = schema
        self._own = own_tables
        self._leases = leases

    def run(
        self, body: Callable[[ProjectionTransaction], T], abort: Callable[[], bool] | None = None
    ) -> T:
        """
        Call *body* inside one transaction; roll back if it raises, or if *abort* says so.

        Raises:
            StoreError: The connection broke meanwhile (the server ended the session, as
                it does one left idle in a transaction past its timeout, or went away).
        """
        with self._pool.connection() as conn:
            try:
                return self._transact(conn, body, abort)
            except Exception as exc:
                if not conn.broken:
                    raise
                # The store failed, not an event, whatever the body made of the error it
                # met: a handler whose statement fails on a dead session looks like a
                # handler that failed, and its event would be blamed (stopped at, or
                # parked). The transaction did not commit (unless it broke while
                # committing, which the next one's checkpoint check finds out).
                raise StoreError(
                    f"PostgreSQL event store {self._name}: the connection broke during a "
                    f"projection transaction: {_reason(conn)}"
                ) from exc

    def _transact(
        self,
        conn: Any,
        body: Callable[[ProjectionTransaction], T],
        abort: Callable[[], bool] | None,
    ) -> T:
        with conn.transaction():
            # Read models named without a schema live beside the store's tables.
            conn.execute(f'SET LOCAL search_path TO "{self._schema}", public')
            tx = PostgresProjectionTransaction(
                conn,
                self._sql,
                name=self._name,
                schema=self._schema,
                own_tables=self._own,
                leases=self._leases,
            )
            result = body(tx)
            if abort is not None and abort():
                raise TransactionAborted
            if tx.appended:
                # Delivered when the transaction commits: other stores' runners wake.
                conn.execute(self._sql.notify, (str(tx.appended),))
            return result

    def close(self) -> None:
        """Do nothing: the pool is the store's, and the store closes it."""


def _reason(conn: psycopg.Connection[Any]) -> str:
    # What the server or the library said when the connection broke: its first line.
    lines = conn.pgconn.error_message.decode(errors="replace").strip().splitlines()
    return (lines or ["the connection was lost"])[0]


class AsyncBodyRunner:
    """Runs projection transaction bodies for the async store, in worker threads."""

    def __init__(
        self,
        pool: psycopg_pool.AsyncConnectionPool[Any],
        sql: Statements,
        *,
        name: str,
        schema: str,
        own_tables: frozenset[str],
        leases: Mapping[str, LeaseHeld],
        settings: Sequence[str] = (),
    ) -> None:
        self._async_pool = pool
        self._sql = sql
        self._name = name
        self._schema = schema
        self._own = own_tables
        self._leases = leases
        self._settings = list(settings)
        self._runner: BodyRunner | None = None
        self._sync_pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _start(self) -> BodyRunner:
        # Opened on the first batch: stores that run no projections need no threads.
        with self._lock:
            if self._runner is None:
                conninfo = self._async_pool.conninfo
                kwargs = self._async_pool.kwargs
                if not isinstance(conninfo, str) or not isinstance(kwargs, dict):
                    raise ArgumentTypeError("the store's pool must have a connection string")
                self._sync_pool = psycopg_pool.ConnectionPool(
                    conninfo,
                    min_size=1,
                    max_size=_BODY_THREADS,
                    kwargs={**kwargs, "autocommit": True},
                    configure=self._configure,
                    open=True,
                )
                self._threads = ThreadPoolExecutor(
                    _BODY_THREADS, thread_name_prefix="eventkit-postgres-batch"
                )
                self._runner = BodyRunner(
                    self._sync_pool,
                    self._sql,
                    name=self._name,
                    schema=self._schema,
                    own_tables=self._own,
                    leases=self._leases,
                )
            return self._runner

    async def run(self, body: Callable[[ProjectionTransaction], T]) -> T:
        """Call *body* in a worker thread, inside one transaction on a sync connection."""
        loop = asyncio.get_running_loop()
        runner = await loop.run_in_executor(None, self._start)
        assert self._threads is not None  # noqa: S101 (set by _start)
        cancelled = threading.Event()
        call = functools.partial(runner.run, body, cancelled.is_set)
        try:
            return await loop.run_in_executor(self._threads, call)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def _configure(self, conn: Any) -> None:
        # The store's session settings, on the connections batches run on.
        for statement in self._settings:
            conn.execute(statement)

    async def close(self) -> None:
        """Close the synchronous connections and stop the threads."""
        if self._sync_pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._sync_pool.close)
        if self._threads is not None:
            self._threads.shutdown(wait=False)
