"""
Projection storage in the SQLite file: checkpoints, dead letters, locks.

Checkpoints and dead letters are tables beside the events (see `schema`), written
inside `SQLiteEventStore.transaction`, the same transaction in which a projection's
handler writes its read model: the read model and its checkpoint commit together.

A projection's lock is an exclusive OS lock (``flock``) on a small file in the folder
``.eventkit-locks`` beside the database, ``<database>-<prefix>projection-<name>.lock``.
The folder is found from the database file's real path, so every process that opens
the file agrees on it, whatever its working directory or the symlink it came through;
it holds a ``.gitignore`` that ignores everything in it, so that version control, as
for pytest's or mypy's caches, never shows it. The OS frees a lock when the process
holding it dies, however it dies, so a standby runner takes over. An in-memory
database lives in one process; its locks are held by threads instead.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from eventkit._backends.sqlite import schema
from eventkit._backends.sqlite.connections import Boundary
from eventkit._projection_store import ProjectionLock, ThreadBoundLocks
from eventkit._records import Checkpoint, DeadLetter
from eventkit._storage import TransactionAborted, lock_file
from eventkit.exceptions import ArgumentError, StoreError

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager

    from eventkit._backends.sqlite.sql import Statements
    from eventkit._records import AppendResult, EventRecord, RecordWrite
    from eventkit._storage import ProjectionTransaction

T = TypeVar("T")

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
LOCK_FOLDER = ".eventkit-locks"
"""The folder beside a database file that holds its projections' lock files."""
_IGNORE_ALL = "# Projection lock files of eventkit, created and held while runners run.\n*\n"
# The store's own tables: those its migrations create, and the schema's bookkeeping.
_OWN_TABLES = frozenset(
    re.findall(
        r"CREATE TABLE \{prefix\}(\w+)",
        " ".join(" ".join(migration.statements) for migration in schema.MIGRATIONS),
    )
) | {"meta"}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SQLiteProjectionTransaction:
    """A projection transaction on the store's connection, inside ``BEGIN IMMEDIATE``."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        sql: Statements,
        name: str,
        prefix: str,
        *,
        append: Callable[[sqlite3.Connection, list[RecordWrite]], list[AppendResult]],
        read_stream: Callable[[sqlite3.Connection, str], list[EventRecord]],
    ) -> None:
        self.connection = conn
        self._sql = sql
        self._name = name
        self._prefix = prefix
        self._append = append
        self._read_stream = read_stream
        self.appended = False

    def append(self, writes: Sequence[RecordWrite]) -> list[AppendResult]:
        """Append records in this transaction: the store's own append, without its COMMIT."""
        with Boundary(self._name):
            results = self._append(self.connection, list(writes))
        self.appended = self.appended or any(result.positions for result in results)
        return results

    def read_stream(self, stream_id: str) -> list[EventRecord]:
        """Return the stream's records as this transaction sees them."""
        with Boundary(self._name):
            return self._read_stream(self.connection, stream_id)

    def _run(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with Boundary(self._name):
            return self.connection.execute(statement, params).fetchall()

    def checkpoint(self, projection: str) -> Checkpoint | None:
        """Return the projection's checkpoint, or None."""
        rows = self._run(self._sql.get_checkpoint, (projection,))
        return Checkpoint(*rows[0]) if rows else None

    def save_checkpoint(self, projection: str, checkpoint: Checkpoint) -> None:
        """Set the projection's checkpoint."""
        self._run(self._sql.put_checkpoint, (projection, checkpoint.position, checkpoint.version))

    def forget(self, projection: str) -> None:
        """Delete the projection's checkpoint and dead letters."""
        self._run(self._sql.delete_checkpoint, (projection,))
        self._run(self._sql.forget_dead_letters, (projection,))

    def park(self, letter: DeadLetter) -> None:
        """Store a dead letter, replacing one at the same position."""
        self._run(self._sql.park, (*letter[:7], letter.parked_at.isoformat()))

    def unpark(self, projection: str, position: int) -> None:
        """Delete the dead letter at *position*."""
        self._run(self._sql.unpark, (projection, position))

    def move_projection(self, source: str, target: str) -> None:
        """Give *target* the checkpoint and dead letters of *source*."""
        self.forget(target)
        self._run(self._sql.rename_checkpoint, (target, source))
        self._run(self._sql.move_dead_letters, (target, source))

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
            if not self._run(self._sql.table_exists, (source,)):
                continue  # the new version of the projection has no such table
            for (index,) in self._run(self._sql.table_indexes, (source,)):
                self._run(f"DROP INDEX {_quote(index)}")
            self._run(f"ALTER TABLE {_quote(source)} RENAME TO {_quote(target)}")

    def _check_table(self, name: str) -> None:
        # A read model's table can be dropped: the store's own tables never.
        if name in {self._prefix + own for own in _OWN_TABLES} or (
            self._prefix and name.startswith(self._prefix)
        ):
            raise ArgumentError(
                f"SQLite event store {self._name!r}: {name!r} is one of the store's own "
                f"tables (prefix {self._prefix!r}); a projection cannot drop or replace it"
            )


class SQLiteProjectionStorage:
    """
    The `ProjectionStore` half of `SQLiteEventStore`, which owns one and hands it calls.

    Exactly once: a handler writes through the connection of the transaction that
    moves its checkpoint.
    """

    def __init__(
        self,
        *,
        name: str,
        prefix: str,
        sql: Statements,
        transaction: Callable[[], AbstractContextManager[sqlite3.Connection]],
        fetch: Callable[[str, tuple[Any, ...]], list[Any]],
        append: Callable[[sqlite3.Connection, list[RecordWrite]], list[AppendResult]],
        read_stream: Callable[[sqlite3.Connection, str], list[EventRecord]],
        notify: Callable[[], None],
    ) -> None:
        self._name = name
        self._prefix = prefix
        self._sql = sql
        self._transaction = transaction
        self._fetch = fetch
        self._append = append
        self._read_stream = read_stream
        self._notify = notify
        self._thread_locks = ThreadBoundLocks()

    def run_projection_transaction(
        self, body: Callable[[ProjectionTransaction], T], abort: Callable[[], bool] | None = None
    ) -> T:
        """Call *body* in a write transaction (``BEGIN IMMEDIATE``); see `SQLiteEventStore`."""
        with self._transaction() as conn:
            tx = SQLiteProjectionTransaction(
                conn,
                self._sql,
                self._name,
                self._prefix,
                append=self._append,
                read_stream=self._read_stream,
            )
            result = body(tx)
            if abort is not None and abort():
                raise TransactionAborted
        if tx.appended:
            self._notify()
        return result

    def projection_checkpoints(self) -> dict[str, Checkpoint]:
        """Return every committed checkpoint, by projection name."""
        rows = self._fetch(self._sql.checkpoints, ())
        return {name: Checkpoint(position, version) for name, position, version in rows}

    def dead_letters(self, projection: str) -> list[DeadLetter]:
        """Return the projection's committed dead letters, in position order."""
        rows = self._fetch(self._sql.dead_letters, (projection,))
        return [_dead_letter(row) for row in rows]

    def lock_projection(self, projection: str) -> ProjectionLock | None:
        """Take the projection's lock: a file lock beside the database, or a thread's."""
        if self._name in (":memory:", ""):
            return self._thread_locks.acquire(projection)
        return lock_file(lock_path(self._name, self._prefix, projection))


def lock_path(database: str, prefix: str, projection: str) -> str:
    """
    Return the lock file of *projection* in the store with *prefix* in *database*.

    Creates the lock folder, with its ``.gitignore``, if it does not exist.

    Raises:
        StoreError: The folder cannot be created.
    """
    real = pathlib.Path(database).resolve()
    folder = real.parent / LOCK_FOLDER
    safe = projection if _SAFE_NAME.fullmatch(projection) else _digest(projection)
    try:
        folder.mkdir(exist_ok=True)
        ignore = folder / ".gitignore"
        if not ignore.exists():
            # Written whole under a temporary name, so no process reads it half written.
            partial = folder / f".gitignore.{os.getpid()}"
            partial.write_text(_IGNORE_ALL, encoding="utf-8")
            partial.replace(ignore)
    except OSError as exc:
        raise StoreError(
            f"SQLite event store {database!r}: cannot create the folder for projection "
            f"locks {str(folder)!r}: {exc}"
        ) from exc
    return str(folder / f"{real.name}-{prefix}projection-{safe}.lock")


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
