"""
The SQLite event store: the embedded default, durable, safe for many threads and processes.

How connections are used
------------------------
A file store has one *writer* connection, used under a lock by one thread at a time,
and a pool of *reader* connections, each used by one thread at a time. Every append
runs in ``BEGIN IMMEDIATE``, which takes SQLite's write lock for the file before the
stream's version is read, so the version check and the insert are atomic against
other threads (the lock) and other processes (SQLite's lock). A process that finds the
file locked waits in SQLite's busy handler for up to *busy_timeout*, then retries a few
times; only then does it give up, with `StoreError`.

In WAL mode readers never wait for the writer, nor the writer for readers. Each read,
and each page of `read_all`, is one query in its own short read transaction, so a
caller's loop over `read_all` never holds a transaction open (which would stop WAL
checkpoints and grow the WAL file).

An in-memory store, or one made from a caller's connection, has only that connection:
reads and writes take turns under the lock.

Why read_all never skips an event
---------------------------------
A new event's position is one more than the largest position, read inside the write
transaction. SQLite lets one write transaction run at a time, so positions are handed
out in commit order: by the time a reader can see position n, every position below n
is committed, and no later commit can appear below a position a reader has passed.
Rows are never deleted, so the largest position only grows.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from eventkit._backends.sqlite import schema
from eventkit._backends.sqlite.connections import (
    Boundary,
    Pool,
    Readers,
    Shared,
    check_folder,
    check_synchronous,
    check_timeout,
    configure,
    connection_name,
    fetch_all,
    file_is_read_only,
    open_file,
    retry_busy,
    rollback,
)
from eventkit._backends.sqlite.projections import SQLiteProjectionStorage
from eventkit._backends.sqlite.snapshots import snapshot_record, snapshot_row
from eventkit._backends.sqlite.sql import (
    MAX_INT,
    Statements,
    check_versions,
    records,
    stored_version,
    stream_ids_params,
    uuid_from_bytes,
)
from eventkit._records import StoredEventRef
from eventkit._rules import AppendPlan, decide_append
from eventkit._storage import TransactionAborted
from eventkit._store import BaseEventStore
from eventkit.exceptions import ArgumentError, ConcurrencyError, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from uuid import UUID

    import cattrs

    from eventkit._events import EventRegistry
    from eventkit._projection_store import ProjectionLock
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

# read_all fetches this many rows per query: big enough that a page's query costs little
# per event, small enough that memory stays flat and a page's read transaction is short.
_PAGE_SIZE = 1000
# Any read of the file starts a read transaction's snapshot; this one reads one page.
_START_READ = "SELECT 1 FROM sqlite_master LIMIT 1"
# Ids looked up per query when an append repeats stored ids (SQLite allows 999 variables
# in a statement on old builds).
_ID_CHUNK = 500


class SQLiteEventStore(BaseEventStore):
    """
    An event store in an SQLite file: durable, and safe for many threads and processes.

    The tables are created on first use. Appends are atomic and durable: with the
    default ``synchronous="FULL"``, an append that returned survives a power loss.
    Several threads may share one store, and several processes may open the same file:
    appends are checked and ordered across all of them. `BaseEventStore.read_all`
    streams in pages, in constant memory, and filters by event type through an index.
    Each aggregate's latest snapshot is kept in the same file.

    It keeps projection checkpoints and dead letters in the same file, so a
    `ProjectionRunner` whose projections write their read models through the
    transaction they are handed applies each event exactly once; a projection's lock
    is an OS file lock beside the database, freed when its process dies.

    Example:
        .. code-block:: python

            store = SQLiteEventStore("bank.db")
            store.append("account-42", [MoneyDeposited(Decimal(10))])

    Args:
        path: The database file (created if missing, in a folder that must exist);
            ``":memory:"`` for a private in-memory database; or an open
            ``sqlite3.Connection``, which the store configures (WAL, *synchronous*,
            *busy_timeout*) and uses as its only connection, and does not close. A
            connection shared by several threads must be opened with
            ``check_same_thread=False``.
        registry: Where event type names are looked up; `default_registry` if omitted.
        converter: The cattrs converter for event data; `make_converter()` if omitted.
        table_prefix: Prefix of the store's table names, so that several stores, or
            the store and your own tables, can share a file. A letter or underscore
            followed by letters, digits and underscores.
        synchronous: ``"FULL"`` (the default): an append that returned survives a
            power loss. ``"NORMAL"``: faster appends that survive a crash of the
            process, but a power loss may lose the last appends (never corrupt the file).
        busy_timeout: Seconds an append waits for another process's write transaction
            before retrying; after a few retries it fails with `StoreError`.
        read_only: Open the file for reading only; appends raise `StoreError`. By
            default a file that cannot be written, or is marked read-only, is opened
            read-only.
        tracer: A callable given the text of every SQL statement the store runs.

    Raises:
        StoreError: The file cannot be opened (naming it and why: its folder does not
            exist, it is not a database, it is read-only and has no event tables) or
            was written by a newer eventkit.
        ArgumentError: An option is invalid.

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
        self._prefix = schema.check_prefix(table_prefix)
        self._sql = Statements(self._prefix)
        self._synchronous = check_synchronous(synchronous)
        timeout = check_timeout(busy_timeout)
        # Reentrant so that reads on the one connection of an in-memory store can run
        # inside that thread's transaction(); nested writes are refused (_writer_for).
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._closed = False
        self._writer: sqlite3.Connection | None = None
        self._owns_writer = True
        self._readers: Readers
        if isinstance(path, sqlite3.Connection):
            self._name = connection_name(path)
            self._boundary = Boundary(self._name)
            self._projections = self._projection_storage()
            self._owns_writer = False
            self._read_only = bool(read_only)
            self._open_single(path, timeout, tracer)
            return
        self._name = os.fspath(path)
        self._boundary = Boundary(self._name)
        self._projections = self._projection_storage()
        if not self._name:
            # SQLite would make a private temporary database: an empty setting read from
            # the environment would silently lose every event.
            raise ArgumentError("path must not be empty; use ':memory:' for an in-memory store")
        if self._name == ":memory:":
            if read_only:
                raise ArgumentError("an in-memory SQLite event store cannot be read-only")
            self._read_only = False
            conn = open_file(":memory:", read_only=False, busy_timeout=timeout, tracer=tracer)
            self._open_single(conn, timeout, tracer)
        else:
            self._read_only = file_is_read_only(self._name) if read_only is None else read_only
            self._open_file(timeout, tracer)

    def _projection_storage(self) -> SQLiteProjectionStorage:
        return SQLiteProjectionStorage(
            name=self._name,
            prefix=self._prefix,
            sql=self._sql,
            transaction=self.transaction,
            fetch=self._fetch,
            append=self._store,
            read_stream=self._stream_on,
            notify=self._listeners.notify,
        )

    def _stream_on(self, conn: sqlite3.Connection, stream_id: str) -> list[EventRecord]:
        # A whole stream, read inside a transaction on *conn*: it sees that one's writes.
        found = records(conn.execute(self._sql.read_stream_to_end, (stream_id, 1, -1)).fetchall())
        check_versions(stream_id, 1, found, backwards=False)
        return found

    def _open_single(
        self, conn: sqlite3.Connection, timeout: float, tracer: Callable[[str], object] | None
    ) -> None:
        if conn.in_transaction:
            raise ArgumentError(
                f"the SQLite connection to {self._name!r} is inside a transaction; "
                "commit or roll it back before making a store of it"
            )
        if tracer is not None and not self._owns_writer:
            conn.set_trace_callback(tracer)
        self._readers = Shared(conn, self._lock)
        try:
            if self._read_only:
                self._check_schema(conn)
            else:
                self._writer = conn
                self._prepare(conn, timeout)
        except BaseException:
            if self._owns_writer:
                conn.close()
            raise

    def _open_file(self, timeout: float, tracer: Callable[[str], object] | None) -> None:
        name, read_only = self._name, self._read_only
        if read_only:
            if not pathlib.Path(name).exists():
                raise StoreError(f"cannot open SQLite event store {name!r}: no such file")
        else:
            check_folder(name)

        def opener() -> sqlite3.Connection:
            return open_file(name, read_only=read_only, busy_timeout=timeout, tracer=tracer)

        conn = opener()
        try:
            if read_only:
                self._check_schema(conn)
            else:
                self._prepare(conn, timeout)
        except BaseException:
            conn.close()
            raise
        if read_only:
            self._readers = Pool(opener)
            self._readers.release(conn)
        else:
            self._writer = conn
            self._readers = Pool(opener)

    def _prepare(self, conn: sqlite3.Connection, timeout: float) -> None:
        with Boundary(self._name):
            configure(conn, synchronous=self._synchronous, busy_timeout=timeout)
            found = retry_busy(lambda: schema.stored_version(conn, self._prefix, self._name))
            if found == schema.SCHEMA_VERSION:
                return
            schema.check_version(found, self._name, self._prefix)
            self._begin(conn)
            try:
                schema.migrate(conn, self._name, self._prefix)
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        with Boundary(self._name):
            found = retry_busy(lambda: schema.stored_version(conn, self._prefix, self._name))
        schema.check_version(found, self._name, self._prefix)
        if found < schema.SCHEMA_VERSION:
            what = "has no event tables" if found == 0 else f"is at schema version {found}"
            raise StoreError(
                f"SQLite event store {self._name!r} is read-only and {what} with prefix "
                f"{self._prefix!r}; open it once for writing to create or upgrade them"
            )

    def __repr__(self) -> str:
        mode = "read-only, " if self._read_only else ""
        state = "closed" if self._closed else f"{mode}synchronous={self._synchronous}"
        return f"<SQLiteEventStore {self._name!r} ({state})>"

    @property
    def path(self) -> str:
        """The database file's path, or ``":memory:"``."""
        return self._name

    @property
    def synchronous(self) -> Literal["FULL", "NORMAL"]:
        """The durability setting, ``"FULL"`` or ``"NORMAL"``."""
        return self._synchronous

    @property
    def read_only(self) -> bool:
        """True if the store was opened for reading only."""
        return self._read_only

    # -- writing ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"SQLite event store {self._name!r} is closed")

    def _writer_for(self, action: str) -> sqlite3.Connection:
        # *action* says what was refused, in the error.
        self._check_open()
        if self._writer is None:
            raise StoreError(f"SQLite event store {self._name!r} is read-only: cannot {action}")
        if self._owner == threading.get_ident():
            raise StoreError(
                f"SQLite event store {self._name!r}: cannot {action} inside this thread's "
                "store.transaction(); use the connection it yields, or append after it"
            )
        return self._writer

    def _begin(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            raise StoreError(
                f"SQLite event store {self._name!r}: the connection is inside a transaction "
                "that the store did not begin; commit or roll it back first"
            )
        retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))

    def _append(
        self, writes: list[RecordWrite], abort: Callable[[], bool] | None = None
    ) -> list[AppendResult]:
        conn = self._writer
        if conn is None or self._closed or self._owner == threading.get_ident():
            # Formatted only to refuse: appends are the hot path.
            conn = self._writer_for(
                f"append to stream {writes[0].stream_id!r}" if writes else "append"
            )
        if not writes:
            return []
        with self._boundary, self._lock:
            self._check_open()
            self._owner = threading.get_ident()
            try:
                self._begin(conn)
                try:
                    results = self._store(conn, writes)
                    _unless_aborted(abort)
                    conn.execute("COMMIT")
                except BaseException:
                    rollback(conn)
                    raise
            finally:
                self._owner = None
        return results

    def _store(self, conn: sqlite3.Connection, writes: list[RecordWrite]) -> list[AppendResult]:
        sql = self._sql
        # One statement for the first stream's version and the head: most appends write
        # one stream, and every statement counts when a transaction is this small.
        head, version = conn.execute(sql.head_and_version, (writes[0].stream_id,)).fetchone()
        head = head or 0
        versions = [stored_version(writes[0].stream_id, version)]
        versions.extend(
            stored_version(
                write.stream_id, conn.execute(sql.version, (write.stream_id,)).fetchone()[0]
            )
            for write in writes[1:]
        )
        try:
            plan = decide_append(writes, versions)
        except ConcurrencyError:
            # Maybe a retry of an append that succeeded, after the stream moved on.
            plan = decide_append(writes, versions, self._find(conn, writes))
        # Taken under the write lock, so that recorded_at never decreases along the positions
        # of events recorded here (copied events keep the time given with them).
        stamp = datetime.now(UTC).isoformat(timespec="microseconds")
        try:
            self._insert_rows(conn, plan, head, stamp)
        except sqlite3.IntegrityError:
            # An id is stored already: an idempotent retry, or a collision. Ids are not
            # looked up before inserting, because appends of new ids (nearly all of
            # them) would pay for it; instead the rows are undone here, and the append
            # is decided again knowing where its ids are.
            conn.execute(sql.undo, (head,))
            found = self._find(conn, writes)
            if not found:  # pragma: no cover (a defence: versions come from max(version))
                raise
            plan = decide_append(writes, versions, found)
            self._insert_rows(conn, plan, head, stamp)
        return plan.results(range(head + 1, head + 1 + len(plan.rows)))

    def _insert_rows(
        self, conn: sqlite3.Connection, plan: AppendPlan, head: int, stamp: str
    ) -> None:
        conn.executemany(
            self._sql.insert,
            [
                (
                    position,
                    stream_id,
                    version,
                    record.event_id.bytes,
                    record.event_type,
                    record.schema_version,
                    record.data,
                    record.metadata,
                    stamp if record.recorded_at is None else _stamp(record.recorded_at),
                )
                for position, (stream_id, version, record) in enumerate(plan.rows, start=head + 1)
            ],
        )

    def _find(
        self, conn: sqlite3.Connection, writes: list[RecordWrite]
    ) -> dict[UUID, StoredEventRef]:
        found = {}
        ids = [record.event_id.bytes for write in writes for record in write.records]
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            for event_id, stream_id, version, position in conn.execute(
                self._sql.find(len(chunk)), chunk
            ):
                found[uuid_from_bytes(event_id)] = StoredEventRef(stream_id, version, position)
        return found

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """
        Run a block of SQL in one write transaction on the store's database.

        Yields the store's ``sqlite3.Connection`` inside ``BEGIN IMMEDIATE``: the
        block's statements commit together when it ends normally and roll back when it
        raises (the exception propagates unchanged). While the block runs, appends
        from other threads and processes wait for it. This is how a projection keeps
        a read model in the same file and commits its checkpoint with it: exactly once.

        Example:
            .. code-block:: python

                with store.transaction() as conn:
                    conn.execute("UPDATE balances SET amount = ? WHERE id = ?", (...))
                    conn.execute("UPDATE checkpoints SET position = ? WHERE name = ?", (...))

        Do not commit or roll back on the connection yourself, and do not append to
        the store inside the block from the same thread (it raises `StoreError`).
        Reads through the store inside the block do not see the block's writes.

        Raises:
            StoreError: The store is read-only or closed, the transaction could not
                begin (the database stayed locked) or commit, or the block ended the
                transaction itself.

        .. versionadded:: 0.1.0
        """
        conn = self._writer_for("open a transaction")
        with self._lock:
            self._check_open()
            self._owner = threading.get_ident()
            try:
                with self._boundary:
                    self._begin(conn)
                try:
                    yield conn
                except BaseException:
                    rollback(conn)
                    raise
                if not conn.in_transaction:
                    raise StoreError(
                        f"SQLite event store {self._name!r}: the transaction was committed "
                        "or rolled back inside store.transaction(); its writes may be "
                        "partly committed"
                    )
                with self._boundary:
                    try:
                        conn.execute("COMMIT")
                    except BaseException:  # pragma: no cover (COMMIT fails on I/O errors only)
                        rollback(conn)
                        raise
            finally:
                self._owner = None

    # -- reading ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """
        Query the store's database in one read transaction, without taking the write lock.

        Yields an ``sqlite3.Connection`` from the store's pool of readers inside a read
        transaction: every query in the block sees the database as it was when the
        block began (a consistent snapshot, say of a read model and the checkpoint
        that goes with it), however many appends and projection batches commit
        meanwhile. Writes through it fail (``sqlite3.OperationalError``: the connection
        is query-only). Use it to read the tables that projections keep in the file.

        Example:
            .. code-block:: python

                with store.reader() as conn:
                    rows = conn.execute("SELECT id, amount FROM balances").fetchall()

        On a file, readers never wait for writers, nor writers for readers. An
        in-memory store, or one made from a caller's connection, has one connection:
        appends from other threads wait until the block ends.

        Raises:
            StoreError: The store is closed, or the read transaction could not begin.

        .. versionadded:: 0.1.0
        """
        self._check_open()
        readers = self._readers
        conn = readers.acquire()
        try:
            with self._boundary:
                self._begin_read(conn)
            try:
                # The block's own errors propagate unchanged, as in transaction().
                yield conn
            finally:
                with self._boundary:
                    rollback(conn)
                    conn.execute("PRAGMA query_only = OFF")
        finally:
            readers.release(conn)

    def _begin_read(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            raise StoreError(
                f"SQLite event store {self._name!r}: cannot read in a separate "
                "transaction inside this thread's store.transaction()"
            )
        conn.execute("PRAGMA query_only = ON")
        try:
            conn.execute("BEGIN")
            # BEGIN takes no snapshot until the first read: read at once, so that the
            # block's first query sees what the block began with.
            retry_busy(lambda: conn.execute(_START_READ).fetchall())
        except BaseException:
            rollback(conn)
            conn.execute("PRAGMA query_only = OFF")
            raise

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        self._check_open()
        readers = self._readers
        conn = readers.acquire()
        try:
            with self._boundary:
                return fetch_all(conn, sql, params)
        finally:
            readers.release(conn)

    def _read_stream(
        self, stream_id: str, low: int, high: int | None, *, backwards: bool, limit: int | None
    ) -> list[EventRecord]:
        count = -1 if limit is None else min(limit, MAX_INT)
        if high is None:
            sql = self._sql.read_stream_from_end if backwards else self._sql.read_stream_to_end
            params: tuple[Any, ...] = (stream_id, min(low, MAX_INT), count)
        else:
            sql = self._sql.read_stream_backwards if backwards else self._sql.read_stream
            params = (stream_id, min(low, MAX_INT), min(high, MAX_INT), count)
        found = records(self._fetch(sql, params))
        check_versions(stream_id, low, found, backwards=backwards)
        return found

    def _read_all(
        self, after_position: int, limit: int | None, event_types: frozenset[str] | None
    ) -> Iterator[EventRecord]:
        pages = PageCursor(after_position, limit)
        while size := pages.size():
            page = self.read_page(pages.after, size, event_types)
            yield from page
            pages.advance(page, size)

    def read_page(
        self, after_position: int, size: int, event_types: frozenset[str] | None
    ) -> list[EventRecord]:
        """Return one page of `read_all`: at most *size* records after *after_position*."""
        types: tuple[str, ...] = ()
        if event_types is not None:
            # A name SQLite cannot bind is the name of no stored event.
            types = tuple(name for name in event_types if _encodable(name))
            if not types:
                return []
        sql = self._sql.read_all_of(len(types)) if types else self._sql.read_all
        return records(self._fetch(sql, (*types, after_position, size)))

    def _count_events(self, after_position: int, up_to: int | None) -> int:
        upper = MAX_INT if up_to is None else min(up_to, MAX_INT)
        counted: int = self._fetch(self._sql.count, (min(after_position, MAX_INT), upper))[0][0]
        return counted

    def stream_version(self, stream_id: str) -> int:
        """Return the stream's version: 0 when it does not exist."""
        given: object = stream_id  # what was passed, whatever the annotation says
        if isinstance(given, str) and not _encodable(given):
            return 0  # no stream has this id: appends refuse it (check_stream_id)
        return stored_version(stream_id, self._fetch(self._sql.version, (stream_id,))[0][0])

    def head_position(self) -> int:
        """Return the highest position in the store: 0 when it is empty."""
        head: int | None = self._fetch(self._sql.head, ())[0][0]
        return head or 0

    def _stream_ids(self, prefix: str, after: str | None, limit: int) -> list[str]:
        if not _encodable(prefix):
            return []  # SQLite cannot bind it, and no stream id can start with it
        params = stream_ids_params(prefix, after, limit)
        return [row[0] for row in self._fetch(self._sql.stream_ids, params)]

    # -- snapshots --------------------------------------------------------------------------

    def _save_snapshot(self, record: SnapshotRecord) -> None:
        conn = self._writer_for(f"save a snapshot of stream {record.stream_id!r}")
        row = snapshot_row(record)
        # One statement in autocommit mode is its own atomic, durable transaction.
        with self._boundary, self._lock:
            self._check_open()
            retry_busy(lambda: conn.execute(self._sql.save_snapshot, row))

    def _load_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        rows = self._fetch(self._sql.load_snapshot, (stream_id,))
        return snapshot_record(rows[0]) if rows else None

    # -- projection storage (see SQLiteProjectionStorage) -----------------------------------

    @property
    def exactly_once(self) -> bool:
        """True: handlers write through the transaction that moves the checkpoint."""
        return True

    def run_projection_transaction(
        self, body: Callable[[ProjectionTransaction], T], abort: Callable[[], bool] | None = None
    ) -> T:
        """
        Call *body* inside `transaction` for a projection's batch, and return its result.

        *abort*, when given, is asked after *body* returned: if it says so, the
        transaction rolls back with `TransactionAborted` instead of committing.
        """
        return self._projections.run_projection_transaction(body, abort)

    def projection_checkpoints(self) -> dict[str, Checkpoint]:
        """Return every committed checkpoint, by projection name."""
        return self._projections.projection_checkpoints()

    def dead_letters(self, projection: str) -> list[DeadLetter]:
        """Return the projection's committed dead letters, in position order."""
        return self._projections.dead_letters(projection)

    def lock_projection(self, projection: str) -> ProjectionLock | None:
        """Take the projection's lock: a file lock beside the database, or a thread's."""
        return self._projections.lock_projection(projection)

    def close(self) -> None:
        """
        Close the store's connections; closing again does nothing.

        Waits for an append or transaction in progress in another thread. A
        connection passed to the constructor is left open.

        Raises:
            StoreError: Called inside this thread's `transaction`.
        """
        if self._owner == threading.get_ident():
            raise StoreError(
                f"SQLite event store {self._name!r}: cannot close inside store.transaction()"
            )
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._readers.close()
            if self._writer is not None and self._owns_writer:
                self._writer.close()


def _stamp(recorded_at: datetime) -> str:
    # A copied event keeps the time it was first recorded, in the text form of the rest.
    return recorded_at.astimezone(UTC).isoformat(timespec="microseconds")


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _unless_aborted(abort: Callable[[], bool] | None) -> None:
    # Asked just before COMMIT: a cancelled caller's append leaves nothing behind.
    if abort is not None and abort():
        raise TransactionAborted


class PageCursor:
    """Where the next page of a `read_all` starts, and how many records it asks for."""

    __slots__ = ("after", "remaining")

    def __init__(self, after_position: int, limit: int | None) -> None:
        self.after = min(after_position, MAX_INT)
        self.remaining = MAX_INT if limit is None else limit

    def size(self) -> int:
        """Return how many records to ask for next: 0 when the read is over."""
        return min(_PAGE_SIZE, self.remaining)

    def advance(self, page: list[EventRecord], size: int) -> None:
        """Move past *page*, which was asked for *size* records."""
        # A short page is the end of the log (or of the filtered records).
        self.remaining = 0 if len(page) < size else self.remaining - size
        if page:
            self.after = page[-1].position
