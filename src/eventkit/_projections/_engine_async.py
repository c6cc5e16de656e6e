"""
How one projection's events are applied: batches in transactions, failures, rebuilds.

The runner owns tasks, locks and waiting; this module does the work for one projection
at a time. Every transaction is a synchronous body handed to the store's
``run_projection_transaction``, which runs it wherever the store's transactions run:
the projection's handler is plain synchronous code in both forms.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NoReturn, Protocol, TypeVar

from eventkit._acompat import ARLock, yield_to_loop
from eventkit._projections._plan import RateMeter, batch_target, checkpoint_before
from eventkit._projections._policies import Action, next_action
from eventkit._projections._process import ProcessContext, is_process_manager
from eventkit._projections._projection import STAGING_SUFFIX
from eventkit._records import Checkpoint, DeadLetter
from eventkit._storage import RetryTransaction
from eventkit.exceptions import ProjectionError, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventkit._projection_store_async import AsyncProjectionLock, AsyncProjectionStore
    from eventkit._projections._progress import ProgressBar
    from eventkit._projections._projection import Projection
    from eventkit._records import EventRecord
    from eventkit._storage import ProjectionTransaction
    from eventkit._store_async import AsyncEventStore

logger = logging.getLogger("eventkit.projections")

T = TypeVar("T")

# How often a transaction a backend asked to run again is tried, and the pause that
# grows between tries (seconds).
_TRANSACTION_ATTEMPTS = 10
_RETRY_PAUSE = 0.01

Failure = tuple[int, Exception]
"""A batch's first failing event: its index in the batch, and what its handler raised."""


class Pause(Protocol):
    """Sleeps *seconds*; returns False when a stop cut the sleep short."""

    async def __call__(self, seconds: float) -> bool: ...


class Interrupted(Exception):  # noqa: N818 (a signal between two modules, never seen by users)
    """A stop was requested while the engine waited or rebuilt."""


class CheckpointMoved(Exception):  # noqa: N818 (a signal between two modules, never seen by users)
    """The stored checkpoint is not where this runner left it: reload before going on."""


class _RollBack(Exception):  # noqa: N818 (control flow inside this module)
    def __init__(self, failed: Failure) -> None:
        super().__init__()
        self.failed = failed


def _roll_back(failed: Failure) -> NoReturn:
    # Leaving a transaction's body by an exception is how it rolls back.
    raise _RollBack(failed)


class Slot:
    """One projection's state in a runner."""

    def __init__(
        self, projection: Projection, key: str, types: frozenset[str] | None, version: int
    ) -> None:
        self.projection = projection
        self.key = key  # the checkpoint, lock and dead-letter name
        self.types = types
        # Fixed when the runner is made: a rebuild's staged copy builds the same version.
        self.version = version
        self.position = 0
        self.head = 0
        self.lock: AsyncProjectionLock | None = None
        self.ready = False
        self.error: ProjectionError | None = None
        self.meter = RateMeter()
        # A process manager: its handler appends events, so its batches always roll
        # back whole, and it is never rebuilt.
        self.emits = is_process_manager(projection)
        # Held while a batch is applied; reentrant because an automatic rebuild swaps
        # its tables in from inside the batch loop.
        self.mutex = ARLock()


def failure(projection: str, record: EventRecord, exc: BaseException) -> ProjectionError:
    """Return the `ProjectionError` for *exc*, raised while handling *record*."""
    error = ProjectionError(
        projection,
        record.position,
        stream_id=record.stream_id,
        version=record.version,
        event_type=record.event_type,
        detail=f"{type(exc).__name__}: {exc}",
    )
    error.__cause__ = exc
    return error


class AsyncEngine:
    """Applies events to projections through one store."""

    def __init__(
        self,
        store: AsyncEventStore,
        storage: AsyncProjectionStore,
        *,
        batch_size: int,
        pause: Pause,
        clock: Callable[[], float],
        on_commit: Callable[[], None],
    ) -> None:
        self.store = store
        self.storage = storage
        self.batch_size = batch_size
        self.pause = pause
        self.clock = clock
        self.on_commit = on_commit

    # -- taking a projection on -------------------------------------------------------------

    async def prepare(
        self, slot: Slot, progress: ProgressBar, should_stop: Callable[[], bool]
    ) -> None:
        """Set the read model up and load the checkpoint; rebuild a read model that is too old."""
        projection = slot.projection
        # Where a process manager that never ran starts, when it must not react to the past.
        start = 0
        if slot.emits and not getattr(projection, "from_beginning", True):
            start = await self.store.head_position()

        def body(tx: ProjectionTransaction) -> bool:
            stored = tx.checkpoint(slot.key)
            if stored is not None and stored.version > slot.version:
                raise ProjectionError(
                    projection.name,
                    stored.position,
                    detail=f"the read model was built by version {stored.version} of the "
                    f"projection, newer than this code's version {slot.version}",
                )
            if stored is not None and stored.version < slot.version:
                return True
            self._setup(projection, tx, stored.position if stored else start)
            if stored is None:
                tx.save_checkpoint(slot.key, Checkpoint(start, slot.version))
            slot.position = stored.position if stored else start
            return False

        outdated = await self.storage.run_projection_transaction(body)
        self.on_commit()  # a first checkpoint may have been saved: wait_for looks again
        if outdated:
            logger.info(
                "projection %r: read model of an older version found; rebuilding",
                projection.name,
            )
            await self.rebuild(slot, progress, should_stop)
        slot.ready = True

    @staticmethod
    def _setup(projection: Projection, tx: ProjectionTransaction, position: int) -> None:
        try:
            projection.setup(tx.connection)
        except Exception as exc:
            raise ProjectionError(
                projection.name, position, detail=f"setup failed: {type(exc).__name__}: {exc}"
            ) from exc

    # -- applying batches -------------------------------------------------------------------

    async def step(self, slot: Slot) -> int:
        """Apply the next batch of *slot*; return how many events it held (0: caught up)."""
        slot.head = head = await self.store.head_position()
        if slot.position >= head:
            return 0
        records = [
            record
            async for record in self.store.read_all_records(
                after_position=slot.position, limit=self.batch_size, event_types=slot.types
            )
        ]
        target = batch_target(
            slot.position, [record.position for record in records], self.batch_size, head
        )
        await self._apply(slot, records, target)
        slot.meter.add(self.clock(), len(records))
        await yield_to_loop()  # between batches, even when the store never suspends
        return len(records)

    async def _apply(self, slot: Slot, records: Sequence[EventRecord], target: int) -> None:
        while True:
            failed = await self._transact(slot, records, target)
            if failed is None:
                slot.position = target
                self.on_commit()
                return
            index, exc = failed
            record = records[index]
            slot.position = checkpoint_before(record.position)
            self.on_commit()
            await self._on_failure(slot, record, exc)
            records = records[index + 1 :]
            if not records and slot.position >= target:
                return

    async def _transact(
        self, slot: Slot, records: Sequence[EventRecord], target: int
    ) -> Failure | None:
        """Handle *records* and move the checkpoint to *target*, in one transaction."""
        # A process manager's appends roll back with its transaction on every store: a
        # failed event must leave none of them behind.
        exactly_once = self.storage.exactly_once or slot.emits

        def body(tx: ProjectionTransaction) -> Failure | None:
            self._check(tx, slot)
            failed = self._handle_all(slot, records, tx)
            if failed is None:
                tx.save_checkpoint(slot.key, Checkpoint(target, slot.version))
            elif exactly_once:
                _roll_back(failed)
            else:
                # The handler's earlier writes cannot be undone: keep them, and stop
                # the checkpoint just before the event that failed.
                before = checkpoint_before(records[failed[0]].position)
                tx.save_checkpoint(slot.key, Checkpoint(before, slot.version))
            return failed

        try:
            return await self._run_retrying(body)
        except _RollBack as rollback:
            index = rollback.failed[0]
            # Everything, the failing event's partial writes included, was rolled back:
            # apply the events before it again, on their own.
            before = checkpoint_before(records[index].position)
            return await self._transact(slot, records[:index], before) or rollback.failed

    async def _run_retrying(self, body: Callable[[ProjectionTransaction], T]) -> T:
        # A backend may ask for a transaction to run again (a deadlock it broke, an
        # ordering rule): that is no fault of the events, so it is not theirs to fail.
        for attempt in range(_TRANSACTION_ATTEMPTS):
            try:
                return await self.storage.run_projection_transaction(body)
            except RetryTransaction as exc:
                if attempt == _TRANSACTION_ATTEMPTS - 1:
                    # Not the events' fault: fail as the store failing would, typed.
                    raise StoreError(
                        f"the store asked {_TRANSACTION_ATTEMPTS} times in a row to run a "
                        f"projection transaction again: {exc}"
                    ) from exc
                logger.debug("running a projection transaction again: %s", exc)
                if not await self.pause(_RETRY_PAUSE * (attempt + 1)):
                    raise Interrupted from exc
        raise AssertionError  # pragma: no cover (the loop returns or raises)

    def _handle_all(
        self, slot: Slot, records: Sequence[EventRecord], tx: ProjectionTransaction
    ) -> Failure | None:
        decode, handle = self.store.codec.decode, slot.projection.handle
        if slot.emits:
            name, codec = slot.projection.name, self.store.codec
            for index, record in enumerate(records):
                try:
                    recorded = decode(record)
                    handle(recorded, ProcessContext(name, recorded, tx, codec))
                except RetryTransaction:
                    raise
                except Exception as exc:  # noqa: BLE001 (any failure goes to the error policy)
                    return index, exc
            return None
        connection = tx.connection
        for index, record in enumerate(records):
            try:
                handle(decode(record), connection)
            except Exception as exc:  # noqa: BLE001 (any failure goes to the error policy)
                return index, exc
        return None

    @staticmethod
    def _check(tx: ProjectionTransaction, slot: Slot) -> None:
        stored = tx.checkpoint(slot.key)
        if stored != Checkpoint(slot.position, slot.version):
            raise CheckpointMoved(slot.key)

    # -- failures -------------------------------------------------------------------------

    async def _on_failure(self, slot: Slot, record: EventRecord, exc: Exception) -> None:
        name = slot.projection.name
        retries = 0
        while True:
            action, delay = next_action(slot.projection.error_policy, retries)
            if action is Action.STOP:
                raise failure(name, record, exc)
            if action is Action.PARK:
                await self._park(slot, record, exc, retries + 1)
                return
            logger.info(
                "projection %r: retrying the event at position %d in %.3gs after %s: %s",
                name,
                record.position,
                delay,
                type(exc).__name__,
                exc,
            )
            if not await self.pause(delay):
                raise Interrupted
            retries += 1
            failed = await self._transact(slot, [record], record.position)
            if failed is None:
                slot.position = record.position
                self.on_commit()
                return
            exc = failed[1]

    async def _park(self, slot: Slot, record: EventRecord, exc: Exception, attempts: int) -> None:
        letter = DeadLetter(
            slot.key,
            record.position,
            record.stream_id,
            record.version,
            record.event_type,
            f"{type(exc).__name__}: {exc}",
            attempts,
            datetime.now(UTC),
        )

        def body(tx: ProjectionTransaction) -> None:
            self._check(tx, slot)
            tx.park(letter)
            tx.save_checkpoint(slot.key, Checkpoint(record.position, slot.version))

        await self.storage.run_projection_transaction(body)
        slot.position = record.position
        self.on_commit()
        logger.warning(
            "projection %r: parked the event at position %d (stream %r version %d): %s",
            slot.projection.name,
            record.position,
            record.stream_id,
            record.version,
            letter.error,
        )

    async def retry_dead_letter(self, slot: Slot, letter: DeadLetter) -> bool:
        """Handle a parked event again; unpark it on success, count the attempt otherwise."""
        record = None
        async for found in self.store.read_all_records(
            after_position=checkpoint_before(letter.position), limit=1
        ):
            record = found
        if record is None or record.position != letter.position:
            raise ProjectionError(
                slot.projection.name, letter.position, detail="the parked event is not stored"
            )
        exactly_once = self.storage.exactly_once or slot.emits
        stored = record

        def body(tx: ProjectionTransaction) -> Failure | None:
            failed = self._handle_all(slot, [stored], tx)
            if failed is None:
                tx.unpark(slot.key, letter.position)
                return None
            if exactly_once:
                _roll_back(failed)
            tx.park(_again(letter, failed[1]))
            return failed

        try:
            failed = await self._run_retrying(body)
        except _RollBack as rollback:
            error = rollback.failed[1]

            def park_again(tx: ProjectionTransaction) -> None:
                tx.park(_again(letter, error))

            await self.storage.run_projection_transaction(park_again)
            return False
        return failed is None

    # -- rebuilding -----------------------------------------------------------------------

    async def catch_up(
        self, slot: Slot, progress: ProgressBar, should_stop: Callable[[], bool]
    ) -> None:
        """Apply batches until *slot* reaches the head, reporting progress."""
        while True:
            if should_stop():
                raise Interrupted
            async with slot.mutex:
                handled = await self.step(slot)
            progress.update(slot.position, slot.head, handled)
            if handled == 0 and slot.position >= slot.head:
                progress.finish(slot.position)
                return

    async def start_over(self, slot: Slot) -> None:
        """Empty the read model of *slot* and move its checkpoint back to 0."""
        projection = slot.projection

        def body(tx: ProjectionTransaction) -> None:
            tx.drop_tables([projection.table(name) for name in projection.tables])
            projection.teardown(tx.connection)
            tx.forget(slot.key)
            self._setup(projection, tx, 0)
            tx.save_checkpoint(slot.key, Checkpoint(0, slot.version))

        async with slot.mutex:
            await self.storage.run_projection_transaction(body)
            slot.position = 0
        self.on_commit()

    async def rebuild(
        self, slot: Slot, progress: ProgressBar, should_stop: Callable[[], bool]
    ) -> None:
        """Build a fresh copy of the read model beside the live one, then swap it in."""
        live = slot.projection
        staged = live.staged()
        shadow = Slot(staged, live.name + STAGING_SUFFIX, slot.types, slot.version)
        shadow.lock = await self.storage.lock_projection(shadow.key)
        if shadow.lock is None:
            raise ProjectionError(
                live.name, slot.position, detail="another runner is rebuilding this projection"
            )

        def swap(tx: ProjectionTransaction) -> None:
            self._check(tx, shadow)
            tx.replace_tables([(staged.table(name), live.table(name)) for name in live.tables])
            tx.move_projection(shadow.key, slot.key)
            self._setup(live, tx, shadow.position)

        try:
            await self.start_over(shadow)
            await self.catch_up(shadow, progress, should_stop)
            async with slot.mutex:
                # The live read model is paused from here: take the last few events.
                while await self.step(shadow):
                    pass
                await self.storage.run_projection_transaction(swap)
                live.adopt(staged)
                slot.position = shadow.position
            self.on_commit()
        finally:
            await shadow.lock.release()
        logger.info("projection %r: rebuilt up to position %d", live.name, slot.position)


def _again(letter: DeadLetter, error: Exception) -> DeadLetter:
    return letter._replace(
        error=f"{type(error).__name__}: {error}",
        attempts=letter.attempts + 1,
        parked_at=datetime.now(UTC),
    )
