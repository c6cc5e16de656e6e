"""
Storage helpers shared by the sync and async forms of every backend.

`ProjectionTransaction` is what a projection runner's transaction bodies work through:
always synchronous, run wherever the backend's transactions run (the calling thread,
or a backend's worker thread when the store is async). `AppendListeners` are the
callbacks a store tells after each append, and `lock_file` is the OS file lock that
file-based backends hold per projection.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Protocol

from eventkit.exceptions import StoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventkit._records import AppendResult, Checkpoint, DeadLetter, EventRecord, RecordWrite


class ProjectionTransaction(Protocol):
    """
    One open transaction of a projection store: everything in it commits, or nothing.

    The runner reads and moves checkpoints through it while the projection's handler
    writes its read model through `connection`.

    .. versionadded:: 0.1.0
    """

    @property
    def connection(self) -> Any:
        """What the projection's handler writes through (the backend's connection, or None)."""
        ...

    def checkpoint(self, projection: str) -> Checkpoint | None:
        """Return the projection's checkpoint, or None when it has none."""
        ...

    def save_checkpoint(self, projection: str, checkpoint: Checkpoint) -> None:
        """Set the projection's checkpoint."""
        ...

    def forget(self, projection: str) -> None:
        """Delete the projection's checkpoint and dead letters."""
        ...

    def park(self, letter: DeadLetter) -> None:
        """Store *letter*, replacing a dead letter of the same projection and position."""
        ...

    def unpark(self, projection: str, position: int) -> None:
        """Delete the projection's dead letter at *position*, if there is one."""
        ...

    def move_projection(self, source: str, target: str) -> None:
        """Give *target* the checkpoint and dead letters of *source*, replacing its own."""
        ...

    def drop_tables(self, names: Sequence[str]) -> None:
        """Drop the named read-model tables that exist."""
        ...

    def replace_tables(self, moves: Sequence[tuple[str, str]]) -> None:
        """
        For each ``(source, target)``: drop *target*, then rename *source* to *target*.

        The indexes of *source* are dropped too, so that the projection's setup can
        create them again under their usual names.
        """
        ...

    def append(self, writes: Sequence[RecordWrite]) -> list[AppendResult]:
        """
        Append records to the event store inside this transaction.

        The events commit with the transaction (and the checkpoint it moves), or not at
        all; later reads through this transaction see them, other readers only once it
        commits. Process managers append through this. The writes are validated
        (`check_writes`); a backend decides them with `decide_append`, as its own
        appends do.

        Raises:
            ConcurrencyError, DuplicateEventIdError: As for an append outside.
            RetryTransaction: The backend cannot place these events here without
                breaking an ordering rule; run the whole transaction again.
        """
        ...

    def read_stream(self, stream_id: str) -> list[EventRecord]:
        """
        Return every stored record of *stream_id* in version order, as this transaction sees it.

        Events this transaction appended are included. A stream that does not exist
        reads as empty.
        """
        ...


class ProjectionLockLostError(StoreError):
    """
    A projection's lock was taken over by another runner while this one held it.

    Backends whose locks can expire (leases) raise it from a projection transaction
    that would move a checkpoint under a lock no longer held: the transaction rolls
    back, so a runner that was paused past its lease never commits after another took
    over. A runner that meets it gives the projection up and stands by.

    .. versionadded:: 0.1.0
    """


class RetryTransaction(Exception):  # noqa: N818 (it names what to do, not a failure)
    """
    Raised inside a transaction to ask for the whole transaction to be run again.

    A backend raises it when something outside the transaction's data got in the way
    and a fresh attempt will not meet it again: a deadlock the database broke, or (on
    PostgreSQL) an append that would place a stream's new events before events another
    transaction stored after this one began. Runners roll back and run the batch
    again after a short pause, up to ten times; a transaction still refused then fails
    as the store failing would (`StoreError`), never as a failure of the events: a
    background runner tries again later, and ``run_until_caught_up`` raises it.

    .. versionadded:: 0.1.0
    """


class TransactionAborted(Exception):  # noqa: N818 (it names what happened, not a failure)
    """
    A transaction was rolled back at the last moment because its caller gave up.

    Backends that run transactions in worker threads raise it, before committing,
    when the task that waits for the transaction was cancelled: a cancelled append or
    projection batch then leaves nothing behind. The cancelled caller never sees it.

    .. versionadded:: 0.1.0
    """


class AppendListeners:
    """The callbacks of a store's ``on_append``, told after each append commits."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def add(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Subscribe *callback*; return the function that unsubscribes it."""
        with self._mutex:
            self._callbacks.append(callback)

        def remove() -> None:
            with self._mutex:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove

    def notify(self) -> None:
        """Call every subscribed callback (outside any lock, so callbacks may append)."""
        with self._mutex:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()


class FileLock:
    """
    An exclusive OS lock on a file, held until released or its process dies.

    .. versionadded:: 0.1.0
    """

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def renew(self) -> bool:
        """Return True while the lock is held: an OS file lock is never taken away."""
        return self._fd is not None

    def release(self) -> None:
        """Give the lock up (by closing the file); releasing twice is harmless."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file gives the OS lock up


def lock_file(path: str) -> FileLock | None:
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
    return FileLock(fd)
