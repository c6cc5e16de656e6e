"""
`AsyncSQLiteEventStore`: the SQLite store for asyncio applications, off the event loop.

SQLite's driver blocks, so the async store runs the sync store's storage methods in
its own threads: appends, snapshots and projection transactions in one writer thread
(SQLite admits one writer at a time anyway, so nothing is lost by queueing them), and
reads in a few reader threads, which WAL lets run beside the writer. Each storage call
is one hop to a thread: a whole append, a whole page of `read_all`, a whole
projection batch. The loop only waits.

Cancelling a task that waits for an append or a projection batch rolls it back if it
has not committed yet (the thread checks just before COMMIT), so a cancelled call
leaves nothing half-written; one that was already committing completes, whole.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from eventkit._backends.sqlite.store import PageCursor, SQLiteEventStore
from eventkit._projection_store_async import TaskBoundLocks
from eventkit._store_async import AsyncBaseEventStore

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator, Callable

    import cattrs

    from eventkit._events import EventRegistry
    from eventkit._projection_store import ProjectionLock
    from eventkit._projection_store_async import AsyncProjectionLock
    from eventkit._records import (
        AppendResult,
        Checkpoint,
        DeadLetter,
        EventRecord,
        RecordWrite,
        SnapshotRecord,
    )
    from eventkit._storage import ProjectionTransaction

T = TypeVar("T")

# Reader threads: enough for a few reads at once; more would only contend for the file.
_READER_THREADS = 4


class AsyncSQLiteEventStore(AsyncBaseEventStore):
    """
    An event store in an SQLite file, for asyncio applications.

    The same file format, guarantees and options as `SQLiteEventStore` (it may share a
    file with sync stores and other processes), with every method a coroutine and
    `AsyncEventStore.read_all` an async iterator. No call blocks the event loop: the
    work runs in the store's writer thread (appends, snapshots, projection
    transactions) or its reader threads. Projection handlers run in the writer thread,
    inside the transaction that moves their checkpoint: exactly once, as with the sync
    store.

    Cancelling a task that awaits an append or a projection batch rolls the
    transaction back if it has not begun to commit: a cancelled call leaves nothing
    half-written, and the store stays usable.

    Opening the file (and creating or upgrading its tables) happens in the
    constructor, in the calling thread: build the store at start-up.

    Example:
        .. code-block:: python

            store = AsyncSQLiteEventStore("bank.db")
            await store.append("account-42", [MoneyDeposited(Decimal(10))])
            async for recorded in store.read_all():
                ...
            await store.close()

    Args:
        path: As for `SQLiteEventStore`.
        registry: Where event type names are looked up; `default_registry` if omitted.
        converter: The cattrs converter for event data; `make_converter()` if omitted.
        table_prefix: As for `SQLiteEventStore`.
        synchronous: As for `SQLiteEventStore`.
        busy_timeout: As for `SQLiteEventStore`.
        read_only: As for `SQLiteEventStore`.
        tracer: As for `SQLiteEventStore`; called in the store's threads.

    Raises:
        StoreError: The file cannot be opened, as for `SQLiteEventStore`.
        ValueError: An option is invalid.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | sqlite3.Connection,
        *,
        registry: EventRegistry | None = None,
        converter: cattrs.Converter | None = None,
        table_prefix: str = "eventkit_",
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout: float = 5.0,
        read_only: bool | None = None,
        tracer: Callable[[str], object] | None = None,
    ) -> None:
        super().__init__(registry=registry, converter=converter)
        self._core = SQLiteEventStore(
            path,
            registry=self.registry,
            converter=self.codec.converter,
            table_prefix=table_prefix,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            read_only=read_only,
            tracer=tracer,
        )
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="eventkit-sqlite-writer")
        # A store with one connection (in memory, or the caller's) reads through it too.
        single = isinstance(path, sqlite3.Connection) or self._core.path == ":memory:"
        self._readers = (
            self._writer
            if single
            else ThreadPoolExecutor(_READER_THREADS, thread_name_prefix="eventkit-sqlite-reader")
        )
        # An in-memory database lives in one process: its projection locks belong to tasks.
        self._task_locks = TaskBoundLocks() if self._core.path == ":memory:" else None
        self._closed = False

    def __repr__(self) -> str:
        return repr(self._core).replace("<SQLiteEventStore", "<AsyncSQLiteEventStore", 1)

    @property
    def path(self) -> str:
        """The database file's path, or ``":memory:"``."""
        return self._core.path

    @property
    def synchronous(self) -> Literal["FULL", "NORMAL"]:
        """The durability setting, ``"FULL"`` or ``"NORMAL"``."""
        return self._core.synchronous

    @property
    def read_only(self) -> bool:
        """True if the store was opened for reading only."""
        return self._core.read_only

    # -- running work in the store's threads -------------------------------------------------

    async def _read(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        call = functools.partial(function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._readers, call)

    async def _write(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        call = functools.partial(function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._writer, call)

    async def _write_unless_cancelled(self, function: Callable[..., T], *args: Any) -> T:
        # *function* takes abort=: it asks it just before COMMIT, and rolls back if the
        # caller was cancelled meanwhile. Task.cancel() cancels the awaited future at
        # once, while the task itself hears of it only when it next runs, which may be
        # after this thread reached COMMIT: so the thread asks the future.
        future: asyncio.Future[T] | None = None

        def abort() -> bool:
            return future is not None and future.cancelled()

        call = functools.partial(function, *args, abort=abort)
        future = asyncio.get_running_loop().run_in_executor(self._writer, call)
        return await future

    async def run_in_transaction(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """
        Call *function* with the store's connection inside one write transaction.

        The async counterpart of `SQLiteEventStore.transaction`: *function* runs in the
        store's writer thread, inside ``BEGIN IMMEDIATE``; its statements commit
        together when it returns and roll back when it raises (the exception
        propagates). Do not append to the store from inside *function*.

        Returns:
            What *function* returned.

        Raises:
            StoreError: As for `SQLiteEventStore.transaction`.

        .. versionadded:: 0.1.0
        """

        def transact() -> T:
            with self._core.transaction() as conn:
                return function(conn)

        return await self._write(transact)

    # -- the storage methods --------------------------------------------------------------

    async def _append(self, writes: list[RecordWrite]) -> list[AppendResult]:
        return await self._write_unless_cancelled(self._core._append, writes)  # noqa: SLF001 (the core is this store's own)

    async def _read_stream(
        self, stream_id: str, low: int, high: int | None, *, backwards: bool, limit: int | None
    ) -> list[EventRecord]:
        return await self._read(
            self._core._read_stream,  # noqa: SLF001 (the core is this store's own)
            stream_id,
            low,
            high,
            backwards=backwards,
            limit=limit,
        )

    async def _read_all(
        self, after_position: int, limit: int | None, event_types: frozenset[str] | None
    ) -> AsyncIterator[EventRecord]:
        pages = PageCursor(after_position, limit)
        while size := pages.size():
            page = await self._read(self._core.read_page, pages.after, size, event_types)
            for record in page:
                yield record
            pages.advance(page, size)

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's version: 0 when it does not exist."""
        return await self._read(self._core.stream_version, stream_id)

    async def head_position(self) -> int:
        """Return the highest position in the store: 0 when it is empty."""
        return await self._read(self._core.head_position)

    async def _count_events(self, after_position: int, up_to: int | None) -> int:
        return await self._read(self._core._count_events, after_position, up_to)  # noqa: SLF001 (the core is this store's own)

    async def _stream_ids(self, prefix: str, after: str | None, limit: int) -> list[str]:
        return await self._read(self._core._stream_ids, prefix, after, limit)  # noqa: SLF001 (the core is this store's own)

    async def _save_snapshot(self, record: SnapshotRecord) -> None:
        await self._write(self._core._save_snapshot, record)  # noqa: SLF001 (the core is this store's own)

    async def _load_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        return await self._read(self._core._load_snapshot, stream_id)  # noqa: SLF001 (the core is this store's own)

    # -- projection storage ---------------------------------------------------------------

    @property
    def exactly_once(self) -> bool:
        """True: handlers write through the transaction that moves the checkpoint."""
        return True

    async def run_projection_transaction(self, body: Callable[[ProjectionTransaction], T]) -> T:
        """Call *body* in a write transaction in the writer thread; see `SQLiteEventStore`."""
        appended = False

        def watched(tx: ProjectionTransaction) -> T:
            nonlocal appended
            result = body(tx)
            appended = bool(getattr(tx, "appended", False))
            return result

        result: T = await self._write_unless_cancelled(
            self._core.run_projection_transaction, watched
        )
        if appended:  # events appended in the transaction: wake this store's listeners too
            self._listeners.notify()
        return result

    async def projection_checkpoints(self) -> dict[str, Checkpoint]:
        """Return every committed checkpoint, by projection name."""
        return await self._read(self._core.projection_checkpoints)

    async def dead_letters(self, projection: str) -> list[DeadLetter]:
        """Return the projection's committed dead letters, in position order."""
        return await self._read(self._core.dead_letters, projection)

    async def lock_projection(self, projection: str) -> AsyncProjectionLock | None:
        """Take the projection's lock: a file lock beside the database, or a task's."""
        if self._task_locks is not None:
            return self._task_locks.acquire(projection)
        # A file lock is taken without waiting (and given up by closing a file).
        lock = self._core.lock_projection(projection)
        return None if lock is None else _Released(lock)

    async def close(self) -> None:
        """
        Close the store's connections and stop its threads; closing again does nothing.

        Waits for the work already handed to the threads.
        """
        if self._closed:
            return  # the threads are gone: nothing could be handed to them
        self._closed = True
        await self._write(self._core.close)
        self._writer.shutdown(wait=False)
        self._readers.shutdown(wait=False)


class _Released:
    # An async face for a lock whose release and renewal do not block.
    def __init__(self, lock: ProjectionLock) -> None:
        self._release = lock.release
        self._renew = lock.renew

    async def release(self) -> None:
        self._release()

    async def renew(self) -> bool:
        return self._renew()
