"""
Projection storage in the SQLite file: checkpoints, dead letters, locks.

Checkpoints and dead letters are tables beside the events (see `schema`), written
inside `SQLiteEventStore.transaction`, the same transaction in which a projection's
handler writes its read model: the read model and its checkpoint commit together.

A projection's lock is an exclusive OS lock (``flock``) on a small file beside the
database, ``<database>-<prefix>projection-<name>.lock``. The OS frees it when the
process holding it dies, however it dies, so a standby runner takes over. An
in-memory database lives in one process; its locks are held by threads instead.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from eventkit._backends.sqlite import schema
from eventkit._backends.sqlite.connections import Boundary
from eventkit._projection_store import (
    AppendListeners,
    Checkpoint,
    DeadLetter,
    ProjectionLock,
    ThreadBoundLocks,
)
from eventkit.exceptions import StoreError

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterator, Sequence
    from contextlib import AbstractContextManager

    from eventkit._store import AppendResult, RecordWrite

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# The store's own tables: those its migrations create, and the schema's bookkeeping.
_OWN_TABLES = frozenset(
    re.findall(
        r"CREATE TABLE \{prefix\}(\w+)",
        " ".join(" ".join(migration.statements) for migration in schema.MIGRATIONS),
    )
) | {"meta"}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Statements:
    get = "SELECT position, version FROM {p}projection_checkpoints WHERE name = ?"
    put = "INSERT OR REPLACE INTO {p}projection_checkpoints (name, position, version) VALUES (?, ?, ?)"  # noqa: E501 (one statement)
    delete = "DELETE FROM {p}projection_checkpoints WHERE name = ?"
    rename = "UPDATE {p}projection_checkpoints SET name = ? WHERE name = ?"
    all = "SELECT name, position, version FROM {p}projection_checkpoints"
    park = (
        "INSERT OR REPLACE INTO {p}projection_dead_letters (projection, position, stream_id, "
        "version, event_type, error, attempts, parked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    unpark = "DELETE FROM {p}projection_dead_letters WHERE projection = ? AND position = ?"
    forget = "DELETE FROM {p}projection_dead_letters WHERE projection = ?"
    move = "UPDATE {p}projection_dead_letters SET projection = ? WHERE projection = ?"
    letters = (
        "SELECT projection, position, stream_id, version, event_type, error, attempts, "
        "parked_at FROM {p}projection_dead_letters WHERE projection = ? ORDER BY position"
    )
    table = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    indexes = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL"
    )

    def __init__(self, prefix: str) -> None:
        for attribute, template in vars(_Statements).items():
            if not attribute.startswith("_") and isinstance(template, str):
                setattr(self, attribute, template.format(p=prefix))


class SQLiteProjectionTransaction:
    """A projection transaction on the store's connection, inside ``BEGIN IMMEDIATE``."""

    def __init__(self, conn: sqlite3.Connection, sql: _Statements, name: str, prefix: str) -> None:
        self.connection = conn
        self._sql = sql
        self._name = name
        self._prefix = prefix

    def _run(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with Boundary(self._name):
            return self.connection.execute(statement, params).fetchall()

    def checkpoint(self, projection: str) -> Checkpoint | None:
        """Return the projection's checkpoint, or None."""
        rows = self._run(self._sql.get, (projection,))
        return Checkpoint(*rows[0]) if rows else None

    def save_checkpoint(self, projection: str, checkpoint: Checkpoint) -> None:
        """Set the projection's checkpoint."""
        self._run(self._sql.put, (projection, checkpoint.position, checkpoint.version))

    def forget(self, projection: str) -> None:
        """Delete the projection's checkpoint and dead letters."""
        self._run(self._sql.delete, (projection,))
        self._run(self._sql.forget, (projection,))

    def park(self, letter: DeadLetter) -> None:
        """Store a dead letter, replacing one at the same position."""
        self._run(self._sql.park, (*letter[:7], letter.parked_at.isoformat()))

    def unpark(self, projection: str, position: int) -> None:
        """Delete the dead letter at *position*."""
        self._run(self._sql.unpark, (projection, position))

    def move_projection(self, source: str, target: str) -> None:
        """Give *target* the checkpoint and dead letters of *source*."""
        self.forget(target)
        self._run(self._sql.rename, (target, source))
        self._run(self._sql.move, (target, source))

    def drop_tables(self, names: Sequence[str]) -> None:
        """Drop the named tables that exist."""
        for name in names:
            self._check_table(name)
            self._run(f"DROP TABLE IF EXISTS {_quote(name)}")

    def replace_tables(self, moves: Sequence[tuple[str, str]]) -> None:
        """Drop each target, then rename its source to it, without the source's indexes."""
        for source, target in moves:
            self._check_table(source)
            self._check_table(target)
            self._run(f"DROP TABLE IF EXISTS {_quote(target)}")
            if not self._run(self._sql.table, (source,)):
                continue  # the new version of the projection has no such table
            for (index,) in self._run(self._sql.indexes, (source,)):
                self._run(f"DROP INDEX {_quote(index)}")
            self._run(f"ALTER TABLE {_quote(source)} RENAME TO {_quote(target)}")

    def _check_table(self, name: str) -> None:
        # A read model's table can be dropped: the store's own tables never.
        if name in {self._prefix + own for own in _OWN_TABLES} or (
            self._prefix and name.startswith(self._prefix)
        ):
            raise ValueError(
                f"SQLite event store {self._name!r}: {name!r} is one of the store's own "
                f"tables (prefix {self._prefix!r}); a projection cannot drop or replace it"
            )


class _FileLock:
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file gives the OS lock up


def lock_file(path: str) -> ProjectionLock | None:
    """
    Take an exclusive OS lock on the file *path* without waiting; None if it is taken.

    Raises:
        StoreError: The lock file cannot be opened.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open the projection lock file {path!r}: {exc}") from exc
    try:
        if sys.platform == "win32":  # pragma: no cover (Windows only)
            import msvcrt  # noqa: PLC0415 (exists on Windows only)

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl  # noqa: PLC0415 (exists on POSIX only)

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return _FileLock(fd)


class SQLiteProjectionStorage:
    """
    The `ProjectionStore` half of `SQLiteEventStore`: a mixin over its connection.

    Exactly once: a handler writes through the connection of the transaction that
    moves its checkpoint.
    """

    if TYPE_CHECKING:
        _prefix: str
        _name: str

        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any]: ...

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._append_listeners = AppendListeners()
        self._thread_locks = ThreadBoundLocks()

    @functools.cached_property
    def _projection_sql(self) -> _Statements:
        # Not in __init__: the store sets its prefix after the mixin's __init__ ran.
        return _Statements(self._prefix)

    def append_records(self, writes: Sequence[RecordWrite]) -> list[AppendResult]:
        """Append already-encoded records; see `BaseEventStore.append_records`."""
        # mypy cannot see that the store class puts BaseEventStore after this mixin.
        results: list[AppendResult] = super().append_records(writes)  # type: ignore[misc]
        self._append_listeners.notify()
        return results

    @property
    def exactly_once(self) -> bool:
        """True: handlers write through the transaction that moves the checkpoint."""
        return True

    @contextlib.contextmanager
    def projection_transaction(self) -> Iterator[SQLiteProjectionTransaction]:
        """Open a write transaction (``BEGIN IMMEDIATE``) for a projection's batch."""
        with self.transaction() as conn:
            yield SQLiteProjectionTransaction(conn, self._projection_sql, self._name, self._prefix)

    def projection_checkpoints(self) -> dict[str, Checkpoint]:
        """Return every committed checkpoint, by projection name."""
        rows = self._fetch(self._projection_sql.all, ())
        return {name: Checkpoint(position, version) for name, position, version in rows}

    def dead_letters(self, projection: str) -> list[DeadLetter]:
        """Return the projection's committed dead letters, in position order."""
        rows = self._fetch(self._projection_sql.letters, (projection,))
        return [_dead_letter(row) for row in rows]

    def lock_projection(self, projection: str) -> ProjectionLock | None:
        """Take the projection's lock: a file lock beside the database, or a thread's."""
        if self._name in (":memory:", ""):
            return self._thread_locks.acquire(projection)
        safe = projection if _SAFE_NAME.fullmatch(projection) else _digest(projection)
        return lock_file(f"{self._name}-{self._prefix}projection-{safe}.lock")

    def on_append(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call *callback* after each append through this store object."""
        return self._append_listeners.add(callback)


def _dead_letter(row: Sequence[Any]) -> DeadLetter:
    projection, position, stream_id, version, event_type, error, attempts, parked_at = row
    return DeadLetter(
        projection,
        position,
        stream_id,
        version,
        event_type,
        error,
        attempts,
        datetime.fromisoformat(parked_at),
    )


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]
