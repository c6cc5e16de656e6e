"""
The runner's background worker: catch up, follow, stand by, take over.

In the async form the worker is an asyncio task; in the sync form, a thread. The async
and the sync form of this module come from one source: the sync one is generated from
the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventkit._acompat import AEvent, ajoin, aspawn, await_event, owner_alive
from eventkit._projections._engine_async import CheckpointMoved, Interrupted, logger
from eventkit._projections._progress import ProgressBar
from eventkit._storage import ProjectionLockLostError
from eventkit.exceptions import ProjectionError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventkit._projection_store_async import AsyncProjectionStore
    from eventkit._projections._engine_async import AsyncEngine, Slot


class AsyncBackground:
    """
    Runs projections in one worker: a batch per projection in turn, then a nap.

    The nap ends early when the store reports an append (`wake`) or a stop. Each
    round it also tries the locks it lacks, which is how a standby takes over.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        storage: AsyncProjectionStore,
        slots: Sequence[Slot],
        *,
        poll_interval: float,
        on_change: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.storage = storage
        self.slots = slots
        self.poll_interval = poll_interval
        self.on_change = on_change
        self.stopping = AEvent()
        self.wake = AEvent()
        self.worker: Any = None  # the task (or thread) that runs the projections
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def running(self) -> bool:
        """Whether the worker runs."""
        return self.worker is not None and owner_alive(self.worker)

    def start(self) -> None:
        """Start the worker."""
        self.stopping.clear()
        for slot in self.slots:
            slot.error = None
        self._unsubscribe = self.storage.on_append(self.wake.set)
        self.worker = aspawn(self._run, name="eventkit-projections")

    async def stop(self, timeout: float | None) -> None:
        """Ask the worker to stop after its batch and wait for it."""
        worker = self.worker
        if worker is None:
            return
        self.stopping.set()
        self.wake.set()
        if not await ajoin(worker, timeout):
            raise TimeoutError(f"the projection runner did not stop within {timeout} seconds")
        self.worker = None
        self.stopping.clear()  # retry pauses in the foreground must not look interrupted
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def pause(self, seconds: float) -> bool:
        """Sleep *seconds*; return False when a stop cut the sleep short."""
        return not await await_event(self.stopping, seconds)

    async def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                self.wake.clear()
                busy = False
                for slot in self.slots:
                    if self.stopping.is_set():
                        break
                    busy = await self._tick(slot) or busy
                if not busy:
                    await await_event(self.wake, self.poll_interval)
        finally:
            for slot in self.slots:
                async with slot.mutex:
                    if slot.lock is not None:
                        await slot.lock.release()
                    slot.lock, slot.ready = None, False
            self.on_change()

    async def _tick(self, slot: Slot) -> bool:
        if slot.error is not None:
            return False
        if not await self._hold(slot):
            return False
        async with slot.mutex:
            try:
                if not slot.ready:
                    progress = ProgressBar(slot.key, None)
                    await self.engine.prepare(slot, progress, self.stopping.is_set)
                return await self.engine.step(slot) > 0
            except ProjectionError as error:
                logger.error("%s", error)
                slot.error = error
                self.on_change()
            except CheckpointMoved:
                slot.ready = False
                return True
            except ProjectionLockLostError:
                self._lost(slot)
            except Interrupted:
                pass
            except Exception:  # noqa: BLE001 (whatever the store raised, the worker must go on)
                # A store failure (disk, connection, lock timeout): try again after a pause.
                logger.exception("projection %r: the store failed", slot.key)
                slot.ready = False
                await await_event(self.stopping, self.poll_interval)
        return False

    async def _hold(self, slot: Slot) -> bool:
        # Take the projection's lock, or keep the one held; False while another has it.
        if slot.lock is None:
            slot.lock = await self.storage.lock_projection(slot.key)
            return slot.lock is not None
        if await slot.lock.renew():
            return True
        self._lost(slot)
        return False

    @staticmethod
    def _lost(slot: Slot) -> None:
        # Another runner holds the projection now: stand by, and take it again when free.
        logger.warning("projection %r: another runner took it over; standing by", slot.key)
        slot.lock, slot.ready = None, False
