"""
What a backend keeps for projection runners: checkpoints, dead letters and locks.

`AsyncProjectionStore` is the storage half of projections, beside the event store
contract. Like the event store's storage methods it sees only names, positions and
records: a checkpoint is a position and a projection version, a dead letter names the
event it parks. `AsyncProjectionRunner` decides everything else (batching, error
policies, rebuilds), so a backend writes only storage code.

The transaction is the heart of it. A runner hands a body to
`AsyncProjectionStore.run_projection_transaction`: the body reads and moves the
checkpoint through the `ProjectionTransaction` it is given, and passes its
``connection`` to the projection's handler, inside one transaction. Where that
connection is the backend's own database connection, the handler's writes and the
checkpoint commit together (exactly once); `AsyncProjectionStore.exactly_once` says
whether that holds. Bodies are plain synchronous code in both forms: the async form
runs them wherever the backend's transactions run.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from eventkit._acompat import current_owner, owner_alive

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventkit._records import Checkpoint, DeadLetter
    from eventkit._storage import ProjectionTransaction

T = TypeVar("T")


class AsyncProjectionLock(Protocol):
    """
    The exclusive right to run one projection, held until released or its holder dies.

    .. versionadded:: 0.1.0
    """

    async def release(self) -> None:
        """Give the lock up; releasing twice is harmless."""
        ...

    async def renew(self) -> bool:
        """
        Keep the lock: return True while it is held, False once another holder has it.

        A runner calls this between batches. Locks that cannot be lost while held
        (an OS file lock, a lock held by a task or thread) just say True; a lease that
        expires extends itself here, and a lease that expired says False.
        """
        ...


@runtime_checkable
class AsyncProjectionStore(Protocol):
    """
    The storage an `AsyncProjectionRunner` needs from a backend.

    A backend class implements this beside its event store; `AsyncInMemoryEventStore`
    is the readable reference, and `eventkit.testing.ProjectionStoreContract`
    checks an implementation.

    .. versionadded:: 0.1.0
    """

    @property
    def exactly_once(self) -> bool:
        """Whether writes through the transaction's connection commit with the checkpoint."""
        ...

    async def run_projection_transaction(self, body: Callable[[ProjectionTransaction], T]) -> T:
        """
        Call *body* inside a write transaction and return what it returns.

        The transaction commits when *body* returns and rolls back when it raises (the
        exception propagates). Transactions of one store never interleave: a second
        one waits for the first.
        """
        ...

    async def projection_checkpoints(self) -> dict[str, Checkpoint]:
        """Return every committed checkpoint, by projection name."""
        ...

    async def dead_letters(self, projection: str) -> list[DeadLetter]:
        """Return the projection's committed dead letters, in position order."""
        ...

    async def lock_projection(self, projection: str) -> AsyncProjectionLock | None:
        """
        Take the projection's lock without waiting; None when someone else holds it.

        A lock whose holder dies (its task or thread ends, or its process) must become
        free.
        """
        ...

    def on_append(self, callback: Callable[[], None]) -> Callable[[], None]:
        """
        Call *callback* after each append through this store object commits.

        Returns:
            A function that unsubscribes the callback.
        """
        ...


class _HeldLock:
    def __init__(self, owner: TaskBoundLocks, projection: str) -> None:
        self._owner = owner
        self.projection = projection
        self.holder = current_owner()
        self.released = False

    async def release(self) -> None:
        self._owner._release(self)  # noqa: SLF001 (the lock and its table are one unit)

    async def renew(self) -> bool:
        return not self.released

    def is_live(self) -> bool:
        return not self.released and owner_alive(self.holder)


class TaskBoundLocks:
    """
    Projection locks for backends whose data lives in one process.

    A lock belongs to whoever took it, a task of the async form or a thread of the sync
    one: when that ends without releasing it, the lock is free again, as a file lock is
    when its process dies.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: dict[str, _HeldLock] = {}

    def acquire(self, projection: str) -> AsyncProjectionLock | None:
        """Take the lock of *projection*, or return None while a live holder has it."""
        with self._mutex:
            held = self._held.get(projection)
            if held is not None and held.is_live():
                return None
            lock = _HeldLock(self, projection)
            self._held[projection] = lock
            return lock

    def _release(self, lock: _HeldLock) -> None:
        with self._mutex:
            lock.released = True
            if self._held.get(lock.projection) is lock:
                del self._held[lock.projection]
