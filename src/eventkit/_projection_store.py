"""
What a backend keeps for projection runners: checkpoints, dead letters and locks.

`ProjectionStore` is the storage half of projections, beside the event store contract.
Like the event store's storage methods it sees only names, positions and records: a
checkpoint is a position and a projection version, a dead letter names the event it
parks. `ProjectionRunner` decides everything else (batching, error policies,
rebuilds), so a backend writes only storage code.

The transaction is the heart of it. A runner opens `ProjectionStore.projection_transaction`,
hands its `ProjectionTransaction.connection` to the projection's handler, and moves the
checkpoint inside the same transaction. Where the connection is the backend's own
database connection, the handler's writes and the checkpoint commit together (exactly
once); `ProjectionStore.exactly_once` says whether that holds.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from eventkit.exceptions import StoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager

    from eventkit._records import Checkpoint, DeadLetter


class ProjectionLock(Protocol):
    """
    The exclusive right to run one projection, held until released or its holder dies.

    .. versionadded:: 0.1.0
    """

    def release(self) -> None:
        """Give the lock up; releasing twice is harmless."""
        ...


class ProjectionTransaction(Protocol):
    """
    One open transaction of a `ProjectionStore`: everything in it commits, or nothing.

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


@runtime_checkable
class ProjectionStore(Protocol):
    """
    The storage a `ProjectionRunner` needs from a backend.

    A backend class implements this beside `EventStore`; `InMemoryEventStore` is the
    readable reference, and `eventkit.testing.ProjectionStoreContract` checks an
    implementation.

    .. versionadded:: 0.1.0
    """

    @property
    def exactly_once(self) -> bool:
        """Whether writes through the transaction's connection commit with the checkpoint."""
        ...

    def projection_transaction(self) -> AbstractContextManager[ProjectionTransaction]:
        """
        Open a write transaction: it commits when the block ends, rolls back on an exception.

        Transactions of one store never interleave: a second one waits for the first.
        """
        ...

    def projection_checkpoints(self) -> dict[str, Checkpoint]:
        """Return every committed checkpoint, by projection name."""
        ...

    def dead_letters(self, projection: str) -> list[DeadLetter]:
        """Return the projection's committed dead letters, in position order."""
        ...

    def lock_projection(self, projection: str) -> ProjectionLock | None:
        """
        Take the projection's lock without waiting; None when someone else holds it.

        A lock whose holder dies (its thread ends, or its process) must become free.
        """
        ...

    def on_append(self, callback: Callable[[], None]) -> Callable[[], None]:
        """
        Call *callback* after each append through this store object commits.

        Returns:
            A function that unsubscribes the callback.
        """
        ...


# -- shared helpers for backends ----------------------------------------------------------


class _ThreadLock:
    def __init__(self, owner: ThreadBoundLocks, projection: str) -> None:
        self._owner = owner
        self.projection = projection
        self.thread = threading.current_thread()
        self.released = False

    def release(self) -> None:
        self._owner._release(self)  # noqa: SLF001 (the lock and its table are one unit)

    def is_live(self) -> bool:
        return not self.released and self.thread.is_alive()


class ThreadBoundLocks:
    """
    Projection locks for backends whose data lives in one process.

    A lock belongs to the thread that took it: when that thread ends without
    releasing it, the lock is free again, as a file lock is when its process dies.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: dict[str, _ThreadLock] = {}

    def acquire(self, projection: str) -> ProjectionLock | None:
        """Take the lock of *projection*, or return None while a live holder has it."""
        with self._mutex:
            held = self._held.get(projection)
            if held is not None and held.is_live():
                return None
            lock = _ThreadLock(self, projection)
            self._held[projection] = lock
            return lock

    def _release(self, lock: _ThreadLock) -> None:
        with self._mutex:
            lock.released = True
            if self._held.get(lock.projection) is lock:
                del self._held[lock.projection]


class AppendListeners:
    """The callbacks of `ProjectionStore.on_append`, for a backend to call after commits."""

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
