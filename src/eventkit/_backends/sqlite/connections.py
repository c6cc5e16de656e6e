"""
Connections to one SQLite file: opening them, sharing them, and translating their errors.

`Boundary` is the one place where ``sqlite3`` exceptions become eventkit errors.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import random
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, TypeVar

from eventkit.exceptions import ArgumentError, SerializationError, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

T = TypeVar("T")

# After SQLite's own busy handler has waited busy_timeout, an operation is tried this many
# times in all before the store gives up with StoreError. SQLite can also report busy
# without waiting (while another connection recovers the WAL), which these retries cover.
BUSY_ATTEMPTS = 4
# Idle reader connections kept for reuse; more are opened under load and closed after.
_IDLE_READERS = 8


def is_busy(exc: sqlite3.Error) -> bool:
    """Return True if *exc* says the database was locked by another connection."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def retry_busy(operation: Callable[[], T]) -> T:
    """Run *operation*, again after a short pause while it fails with 'database is locked'."""
    for attempt in range(1, BUSY_ATTEMPTS + 1):  # pragma: no branch (the loop returns or raises)
        try:
            return operation()
        except sqlite3.OperationalError as exc:
            if attempt == BUSY_ATTEMPTS or not is_busy(exc):
                raise
            # Jittered, so processes that woke together do not collide again.
            time.sleep(random.uniform(0.005, 0.02) * attempt)  # noqa: S311 (not crypto)
    raise AssertionError  # pragma: no cover (unreachable)


class Boundary:
    """
    Turn ``sqlite3`` exceptions raised inside a ``with`` block into eventkit errors.

    Stateless: text that SQLite cannot store becomes `SerializationError`; every other
    driver error becomes `StoreError`, with the driver's exception as ``__cause__``.
    Eventkit's own errors pass through. Conflicts are decided by the store itself,
    where it knows the stream (`decide_append`), never guessed from a driver error.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, UnicodeEncodeError):
            raise SerializationError(
                f"text with a lone surrogate cannot be stored in SQLite: {exc}"
            ) from exc
        if isinstance(exc, sqlite3.Error):
            if is_busy(exc):
                detail = "the database stayed locked by another connection; retry later"
            else:
                detail = f"{type(exc).__name__}: {exc}"
            raise StoreError(f"SQLite event store {self.name!r}: {detail}") from exc


def check_synchronous(value: object) -> Literal["FULL", "NORMAL"]:
    """Return *value* if it is a durability level the store offers, else raise ValueError."""
    if value == "FULL" or value == "NORMAL":  # noqa: PLR1714 (narrows the Literal for mypy)
        return value
    raise ArgumentError(f"synchronous must be 'FULL' or 'NORMAL', got {value!r}")


def check_timeout(value: object) -> float:
    """Return *value* as seconds if it is a number >= 0, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ArgumentError(f"busy_timeout must be a number of seconds >= 0, got {value!r}")
    return float(value)


def connection_name(conn: sqlite3.Connection) -> str:
    """Return the file *conn* is open on, or ``":memory:"``; raise StoreError if unusable."""
    try:
        rows = conn.execute("PRAGMA database_list").fetchall()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot use the SQLite connection {conn!r}: {exc}") from exc
    main = next((row[2] for row in rows if row[1] == "main"), "")
    return main or ":memory:"


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the transaction *conn* is in, if any, hiding a failure to do so."""
    # A rollback that fails (the connection broke) must not hide the error that caused it.
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def check_folder(path: str) -> None:
    """
    Raise unless the folder that would hold the file *path* exists.

    Raises:
        StoreError: The folder does not exist, naming the path.
    """
    folder = pathlib.Path(path).absolute().parent
    if not folder.is_dir():
        raise StoreError(
            f"cannot open SQLite event store {path!r}: the folder {str(folder)!r} does not exist"
        )


def file_is_read_only(path: str) -> bool:
    """Return True if *path* exists and is not writable, or marked read-only for everyone."""
    try:
        mode = pathlib.Path(path).stat().st_mode
    except FileNotFoundError:
        return False
    # The mode bits too: root may write any file, but a file marked read-only is a
    # statement of intent that the store honours.
    return not os.access(path, os.W_OK) or not mode & 0o222


def open_file(
    path: str,
    *,
    read_only: bool,
    busy_timeout: float,
    tracer: Callable[[str], object] | None,
) -> sqlite3.Connection:
    """
    Open a connection to the file *path* for the store.

    The connection is in autocommit mode (the store begins and ends its transactions
    itself) and may be used by any thread, one at a time.

    Raises:
        StoreError: The file cannot be opened, naming the path.
    """
    # A URI is the only way to ask SQLite for a read-only connection.
    target = pathlib.Path(path).absolute().as_uri() + "?mode=ro" if read_only else path
    try:
        conn = sqlite3.connect(
            target,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            uri=read_only,
        )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open SQLite event store {path!r}: {exc}") from exc
    if tracer is not None:
        conn.set_trace_callback(tracer)
    return conn


def configure(conn: sqlite3.Connection, *, synchronous: str, busy_timeout: float) -> None:
    """Put *conn* (and its file) in WAL mode with the given durability and busy timeout."""
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchall())
    conn.execute(f"PRAGMA synchronous = {synchronous}")


class Readers(Protocol):
    """
    Hands out connections for reading, each to one thread at a time.

    `Pool` opens as many as threads read at once and keeps a few idle ones; `Shared`
    hands out the single connection of an in-memory or caller-provided database under
    the store's lock.
    """

    def acquire(self) -> sqlite3.Connection:
        """Return a connection that only the calling thread uses until `release`."""
        ...

    def release(self, conn: sqlite3.Connection) -> None:
        """Give back a connection from `acquire`."""
        ...

    def close(self) -> None:
        """Close the connections this object opened."""
        ...


class Shared:
    """Reads on the store's one connection, under the store's lock."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self._conn = conn
        self._lock = lock

    def acquire(self) -> sqlite3.Connection:
        """Take the store's lock and return its connection."""
        self._lock.acquire()
        return self._conn

    def release(self, conn: sqlite3.Connection) -> None:  # noqa: ARG002 (the one connection)
        """Release the store's lock."""
        self._lock.release()

    def close(self) -> None:
        """Do nothing: the store closes its one connection itself."""


class Pool:
    """Reader connections to one file, opened on demand and reused."""

    def __init__(self, opener: Callable[[], sqlite3.Connection]) -> None:
        self._opener = opener
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False

    def acquire(self) -> sqlite3.Connection:
        """Return an idle connection, or a new one."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._opener()

    def release(self, conn: sqlite3.Connection) -> None:
        """Keep *conn* for reuse, or close it if enough are idle or the pool is closed."""
        with self._lock:
            if not self._closed and len(self._idle) < _IDLE_READERS:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections; those in use are closed when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def fetch_all(conn: sqlite3.Connection, sql: str, params: Any) -> list[Any]:
    """Run one query in its own short read transaction and return every row."""
    return retry_busy(lambda: conn.execute(sql, params).fetchall())
