"""
How one projection's events are applied: batches in transactions, failures, rebuilds.

The runner (`_runner.py`) owns threads, locks and waiting; this module does the work
for one projection at a time, in the calling thread.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from eventkit._projections._plan import RateMeter, batch_target, checkpoint_before
from eventkit._projections._policies import Action, next_action
from eventkit._projections._projection import STAGING_SUFFIX
from eventkit._records import Checkpoint, DeadLetter
from eventkit.exceptions import ProjectionError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventkit._projection_store import (
        ProjectionLock,
        ProjectionStore,
        ProjectionTransaction,
    )
    from eventkit._projections._progress import ProgressBar
    from eventkit._projections._projection import Projection
    from eventkit._records import EventRecord
    from eventkit._store import EventStore

logger = logging.getLogger("eventkit.projections")


class Interrupted(Exception):  # noqa: N818 (a signal between two modules, never seen by users)
    """A stop was requested while the engine waited or rebuilt."""


class CheckpointMoved(Exception):  # noqa: N818 (a signal between two modules, never seen by users)
    """The stored checkpoint is not where this runner left it: reload before going on."""


class _RollBack(Exception):  # noqa: N818 (control flow inside this module)
    pass


def _roll_back() -> NoReturn:
    # Leaving a transaction's block by an exception is how it rolls back.
    raise _RollBack


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
        self.lock: ProjectionLock | None = None
        self.ready = False
        self.error: ProjectionError | None = None
        self.meter = RateMeter()
        # Held while a batch is applied; reentrant because an automatic rebuild swaps
        # its tables in from inside the batch loop.
        self.mutex = threading.RLock()


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


class Engine:
    """Applies events to projections through one store."""

    def __init__(
        self,
        store: EventStore,
        storage: ProjectionStore,
        *,
        batch_size: int,
        pause: Callable[[float], bool],
        clock: Callable[[], float],
        on_commit: Callable[[], None],
    ) -> None:
        self.store = store
        self.storage = storage
        self.batch_size = batch_size
        self.pause = pause  # sleeps; returns False when a stop cuts the sleep short
        self.clock = clock
        self.on_commit = on_commit

    # -- taking a projection on -------------------------------------------------------------

    def prepare(self, slot: Slot, progress: ProgressBar, should_stop: Callable[[], bool]) -> None:
        """Set the read model up and load the checkpoint; rebuild a read model that is too old."""
        projection = slot.projection
        outdated = False
        with self.storage.projection_transaction() as tx:
            stored = tx.checkpoint(slot.key)
            if stored is not None and stored.version > slot.version:
                raise ProjectionError(
                    projection.name,
                    stored.position,
                    detail=f"the read model was built by version {stored.version} of the "
                    f"projection, newer than this code's version {slot.version}",
                )
            if stored is not None and stored.version < slot.version:
                outdated = True
            else:
                self._setup(projection, tx, stored.position if stored else 0)
                if stored is None:
                    tx.save_checkpoint(slot.key, Checkpoint(0, slot.version))
                slot.position = stored.position if stored else 0
        if outdated:
            logger.info(
                "projection %r: read model of an older version found; rebuilding",
                projection.name,
            )
            self.rebuild(slot, progress, should_stop)
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

    def step(self, slot: Slot) -> int:
        """Apply the next batch of *slot*; return how many events it held (0: caught up)."""
        slot.head = head = self.store.head_position()
        if slot.position >= head:
            return 0
        records = list(
            self.store.read_all_records(
                after_position=slot.position, limit=self.batch_size, event_types=slot.types
            )
        )
        target = batch_target(
            slot.position, [record.position for record in records], self.batch_size, head
        )
        self._apply(slot, records, target)
        slot.meter.add(self.clock(), len(records))
        return len(records)

    def _apply(self, slot: Slot, records: Sequence[EventRecord], target: int) -> None:
        while True:
            failed = self._transact(slot, records, target)
            if failed is None:
                slot.position = target
                self.on_commit()
                return
            index, exc = failed
            record = records[index]
            slot.position = checkpoint_before(record.position)
            self.on_commit()
            self._on_failure(slot, record, exc)
            records = records[index + 1 :]
            if not records and slot.position >= target:
                return

    def _transact(
        self, slot: Slot, records: Sequence[EventRecord], target: int
    ) -> tuple[int, Exception] | None:
        """Handle *records* and move the checkpoint to *target*, in one transaction."""
        failed: tuple[int, Exception] | None = None
        version = slot.version
        try:
            with self.storage.projection_transaction() as tx:
                self._check(tx, slot)
                failed = self._handle_all(slot.projection, records, tx.connection)
                if failed is None:
                    tx.save_checkpoint(slot.key, Checkpoint(target, version))
                elif self.storage.exactly_once:
                    _roll_back()
                else:
                    # The handler's earlier writes cannot be undone: keep them, and stop
                    # the checkpoint just before the event that failed.
                    before = checkpoint_before(records[failed[0]].position)
                    tx.save_checkpoint(slot.key, Checkpoint(before, version))
        except _RollBack:
            assert failed is not None  # noqa: S101 (only raised after a failure)
            index = failed[0]
            # Everything, the failing event's partial writes included, was rolled back:
            # apply the events before it again, on their own.
            before = checkpoint_before(records[index].position)
            return self._transact(slot, records[:index], before) or failed
        return failed

    def _handle_all(
        self, projection: Projection, records: Sequence[EventRecord], connection: Any
    ) -> tuple[int, Exception] | None:
        decode, handle = self.store.codec.decode, projection.handle
        for index, record in enumerate(records):
            try:
                handle(decode(record), connection)
            except Exception as exc:  # noqa: BLE001 (any failure goes to the error policy)
                return index, exc
        return None

    def _check(self, tx: ProjectionTransaction, slot: Slot) -> None:
        stored = tx.checkpoint(slot.key)
        if stored != Checkpoint(slot.position, slot.version):
            raise CheckpointMoved(slot.key)

    # -- failures -------------------------------------------------------------------------

    def _on_failure(self, slot: Slot, record: EventRecord, exc: Exception) -> None:
        name = slot.projection.name
        retries = 0
        while True:
            action, delay = next_action(slot.projection.error_policy, retries)
            if action is Action.STOP:
                raise failure(name, record, exc)
            if action is Action.PARK:
                self._park(slot, record, exc, retries + 1)
                return
            logger.info(
                "projection %r: retrying the event at position %d in %.3gs after %s: %s",
                name,
                record.position,
                delay,
                type(exc).__name__,
                exc,
            )
            if not self.pause(delay):
                raise Interrupted
            retries += 1
            failed = self._transact(slot, [record], record.position)
            if failed is None:
                slot.position = record.position
                self.on_commit()
                return
            exc = failed[1]

    def _park(self, slot: Slot, record: EventRecord, exc: Exception, attempts: int) -> None:
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
        with self.storage.projection_transaction() as tx:
            self._check(tx, slot)
            tx.park(letter)
            tx.save_checkpoint(slot.key, Checkpoint(record.position, slot.version))
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

    def retry_dead_letter(self, slot: Slot, letter: DeadLetter) -> bool:
        """Handle a parked event again; unpark it on success, count the attempt otherwise."""
        records = self.store.read_all_records(after_position=checkpoint_before(letter.position))
        record = next(iter(records), None)
        if record is None or record.position != letter.position:
            raise ProjectionError(
                slot.projection.name, letter.position, detail="the parked event is not stored"
            )
        error: Exception | None = None
        try:
            with self.storage.projection_transaction() as tx:
                failed = self._handle_all(slot.projection, [record], tx.connection)
                if failed is None:
                    tx.unpark(slot.key, letter.position)
                    return True
                error = failed[1]
                if self.storage.exactly_once:
                    _roll_back()
                tx.park(_again(letter, error))
        except _RollBack:
            assert error is not None  # noqa: S101 (only raised after a failure)
            with self.storage.projection_transaction() as tx:
                tx.park(_again(letter, error))
        return False

    # -- rebuilding -----------------------------------------------------------------------

    def catch_up(self, slot: Slot, progress: ProgressBar, should_stop: Callable[[], bool]) -> None:
        """Apply batches until *slot* reaches the head, reporting progress."""
        while True:
            if should_stop():
                raise Interrupted
            with slot.mutex:
                handled = self.step(slot)
            progress.update(slot.position, slot.head, handled)
            if handled == 0 and slot.position >= slot.head:
                progress.finish(slot.position)
                return

    def start_over(self, slot: Slot) -> None:
        """Empty the read model of *slot* and move its checkpoint back to 0."""
        projection = slot.projection
        with slot.mutex, self.storage.projection_transaction() as tx:
            tx.drop_tables([projection.table(name) for name in projection.tables])
            projection.teardown(tx.connection)
            tx.forget(slot.key)
            self._setup(projection, tx, 0)
            tx.save_checkpoint(slot.key, Checkpoint(0, slot.version))
            slot.position = 0
        self.on_commit()

    def rebuild(self, slot: Slot, progress: ProgressBar, should_stop: Callable[[], bool]) -> None:
        """Build a fresh copy of the read model beside the live one, then swap it in."""
        live = slot.projection
        staged = live.staged()
        shadow = Slot(staged, live.name + STAGING_SUFFIX, slot.types, slot.version)
        shadow.lock = self.storage.lock_projection(shadow.key)
        if shadow.lock is None:
            raise ProjectionError(
                live.name, slot.position, detail="another runner is rebuilding this projection"
            )
        try:
            self.start_over(shadow)
            self.catch_up(shadow, progress, should_stop)
            with slot.mutex:
                # The live read model is paused from here: take the last few events.
                while self.step(shadow):
                    pass
                with self.storage.projection_transaction() as tx:
                    self._check(tx, shadow)
                    tx.replace_tables(
                        [(staged.table(name), live.table(name)) for name in live.tables]
                    )
                    tx.move_projection(shadow.key, slot.key)
                    self._setup(live, tx, shadow.position)
                live.adopt(staged)
                slot.position = shadow.position
            self.on_commit()
        finally:
            shadow.lock.release()
        logger.info("projection %r: rebuilt up to position %d", live.name, slot.position)


def _again(letter: DeadLetter, error: Exception) -> DeadLetter:
    return letter._replace(
        error=f"{type(error).__name__}: {error}",
        attempts=letter.attempts + 1,
        parked_at=datetime.now(UTC),
    )
