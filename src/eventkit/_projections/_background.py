"""The runner's background thread: catch up, follow, stand by, take over."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from eventkit._projections._engine import CheckpointMoved, Interrupted, logger
from eventkit._projections._progress import ProgressBar
from eventkit.exceptions import ProjectionError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventkit._projection_store import ProjectionStore
    from eventkit._projections._engine import Engine, Slot


class Background:
    """
    Runs projections in one thread: a batch per projection in turn, then a nap.

    The nap ends early when the store reports an append (`wake`) or a stop. Each
    round it also tries the locks it lacks, which is how a standby takes over.
    """

    def __init__(
        self,
        engine: Engine,
        storage: ProjectionStore,
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
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def running(self) -> bool:
        """Whether the thread runs."""
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> None:
        """Start the thread."""
        self.stopping.clear()
        for slot in self.slots:
            slot.error = None
        self._unsubscribe = self.storage.on_append(self.wake.set)
        self.thread = threading.Thread(target=self._run, name="eventkit-projections", daemon=True)
        self.thread.start()

    def stop(self, timeout: float | None) -> None:
        """Ask the thread to stop after its batch and wait for it."""
        thread = self.thread
        if thread is None:
            return
        self.stopping.set()
        self.wake.set()
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"the projection runner did not stop within {timeout} seconds")
        self.thread = None
        self.stopping.clear()  # retry pauses in the foreground must not look interrupted
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def pause(self, seconds: float) -> bool:
        """Sleep *seconds*; return False when a stop cut the sleep short."""
        return not self.stopping.wait(seconds)

    def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                self.wake.clear()
                busy = False
                for slot in self.slots:
                    if self.stopping.is_set():
                        break
                    busy = self._tick(slot) or busy
                if not busy:
                    self.wake.wait(self.poll_interval)
        finally:
            for slot in self.slots:
                with slot.mutex:
                    if slot.lock is not None:
                        slot.lock.release()
                    slot.lock, slot.ready = None, False
            self.on_change()

    def _tick(self, slot: Slot) -> bool:
        if slot.error is not None:
            return False
        if slot.lock is None:
            slot.lock = self.storage.lock_projection(slot.key)
            if slot.lock is None:
                return False
        with slot.mutex:
            try:
                if not slot.ready:
                    self.engine.prepare(slot, ProgressBar(slot.key, None), self.stopping.is_set)
                return self.engine.step(slot) > 0
            except ProjectionError as error:
                logger.error("%s", error)
                slot.error = error
                self.on_change()
            except CheckpointMoved:
                slot.ready = False
                return True
            except Interrupted:
                pass
            except Exception:  # noqa: BLE001 (whatever the store raised, the thread must go on)
                # A store failure (disk, connection, lock timeout): try again after a pause.
                logger.exception("projection %r: the store failed", slot.key)
                slot.ready = False
                self.stopping.wait(self.poll_interval)
        return False
