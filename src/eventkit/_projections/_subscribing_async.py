"""
How subscribers are fed: the projection engine, with the work outside the transaction.

`AsyncSubscriberEngine` is the projection runner's engine with one difference: a
batch's work (`AsyncSubscriber.handle_records`) runs first, outside any transaction,
and only then does a short transaction move the checkpoint. Everything else, reading
batches, error policies, dead letters and the background worker with its locks and
standby, is the projection runner's own.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from eventkit._projections._engine_async import AsyncEngine, Failure, Pause, Slot
from eventkit._projections._plan import checkpoint_before
from eventkit._records import Checkpoint
from eventkit.exceptions import ProjectionError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from eventkit._projection_store_async import AsyncProjectionStore
    from eventkit._projections._progress import ProgressBar
    from eventkit._projections._subscriber_async import AsyncSubscriber
    from eventkit._records import DeadLetter, EventRecord
    from eventkit._storage import ProjectionTransaction
    from eventkit._store_async import AsyncEventStore

SUBSCRIBER_VERSION = 1
"""The version in a subscriber's checkpoint: subscribers have none, and are never rebuilt."""


class AsyncSubscriberEngine(AsyncEngine):
    """Hands batches to subscribers, then commits their checkpoints."""

    def __init__(
        self,
        store: AsyncEventStore,
        storage: AsyncProjectionStore,
        subscribers: Mapping[str, AsyncSubscriber],
        *,
        batch_size: int,
        pause: Pause,
        clock: Callable[[], float],
        on_commit: Callable[[], None],
    ) -> None:
        super().__init__(
            store, storage, batch_size=batch_size, pause=pause, clock=clock, on_commit=on_commit
        )
        self.subscribers = subscribers  # by slot key

    async def prepare(
        self,
        slot: Slot,
        progress: ProgressBar,  # noqa: ARG002 (the engine's signature: no rebuild to report)
        should_stop: Callable[[], bool],  # noqa: ARG002 (nor one to interrupt)
    ) -> None:
        """Load (or create) the checkpoint, then let the subscriber set itself up."""

        def body(tx: ProjectionTransaction) -> int:
            stored = tx.checkpoint(slot.key)
            if stored is None:
                tx.save_checkpoint(slot.key, Checkpoint(0, slot.version))
                return 0
            return stored.position

        slot.position = await self.storage.run_projection_transaction(body)
        self.on_commit()
        await self.subscribers[slot.key].setup()
        slot.ready = True

    async def _deliver(self, slot: Slot, records: Sequence[EventRecord]) -> None:
        await self.subscribers[slot.key].handle_records(records, self.store.codec.decode)

    async def _commit(self, slot: Slot, position: int) -> None:
        def body(tx: ProjectionTransaction) -> None:
            self._check(tx, slot)
            tx.save_checkpoint(slot.key, Checkpoint(position, slot.version))

        await self.storage.run_projection_transaction(body)
        slot.position = position
        self.on_commit()

    async def _transact(
        self, slot: Slot, records: Sequence[EventRecord], target: int
    ) -> Failure | None:
        """Hand *records* over, then move the checkpoint to *target*."""
        if records:
            try:
                await self._deliver(slot, records)
            except Exception as exc:  # noqa: BLE001 (any failure goes to the error policy)
                if len(records) > 1:
                    return await self._one_by_one(slot, records, target)
                await self._commit(slot, checkpoint_before(records[0].position))
                return 0, exc
        await self._commit(slot, target)
        return None

    async def _one_by_one(
        self, slot: Slot, records: Sequence[EventRecord], target: int
    ) -> Failure | None:
        # A batch failed: find the event that fails, handing the events over alone and
        # moving the checkpoint past each that succeeds (those before it go again).
        for index, record in enumerate(records):
            try:
                await self._deliver(slot, [record])
            except Exception as exc:  # noqa: BLE001 (any failure goes to the error policy)
                await self._commit(slot, checkpoint_before(record.position))
                return index, exc
            await self._commit(slot, record.position)
        await self._commit(slot, target)
        return None

    async def retry_dead_letter(self, slot: Slot, letter: DeadLetter) -> bool:
        """Hand a parked event over again; unpark it on success, count the attempt otherwise."""
        record = None
        async for found in self.store.read_all_records(
            after_position=checkpoint_before(letter.position), limit=1
        ):
            record = found
        if record is None or record.position != letter.position:
            raise ProjectionError(
                slot.projection.name, letter.position, detail="the parked event is not stored"
            )
        try:
            await self._deliver(slot, [record])
        except Exception as exc:  # noqa: BLE001 (a failure is recorded in the dead letter)
            again = letter._replace(
                error=f"{type(exc).__name__}: {exc}",
                attempts=letter.attempts + 1,
                parked_at=datetime.now(UTC),
            )

            def park_again(tx: ProjectionTransaction) -> None:
                tx.park(again)

            await self.storage.run_projection_transaction(park_again)
            return False

        def unpark(tx: ProjectionTransaction) -> None:
            tx.unpark(slot.key, letter.position)

        await self.storage.run_projection_transaction(unpark)
        return True
