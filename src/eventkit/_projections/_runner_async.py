"""
`AsyncProjectionRunner`: feeds projections from the global log, in the foreground or a task.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

import abc
import contextlib
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self, cast

from eventkit._acompat import AEvent, asleep, await_event
from eventkit._projection_store_async import AsyncProjectionStore
from eventkit._projections._background_async import AsyncBackground
from eventkit._projections._checks import (
    check_deadline,
    check_number,
    check_projection,
    type_names,
)
from eventkit._projections._engine_async import AsyncEngine, CheckpointMoved, Slot
from eventkit._projections._plan import lag_seconds
from eventkit._projections._process import is_process_manager
from eventkit._projections._progress import ProgressBar
from eventkit._projections._status import ProjectionState, ProjectionStatus
from eventkit._storage import ProjectionLockLostError
from eventkit.exceptions import ArgumentError, ArgumentTypeError, ProjectionError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable
    from types import TracebackType
    from typing import TextIO

    from eventkit._projections._projection import Projection
    from eventkit._records import DeadLetter
    from eventkit._store_async import AsyncEventStore


def _never() -> bool:
    return False


class AsyncRunnerCore(abc.ABC):
    """
    What every runner of checkpointed consumers shares: slots, locks, waiting, status.

    The projection, process manager and subscriber runners differ in what they accept
    (`_slot`) and in the engine that applies a batch (`_engine_for`); the rest is here.
    """

    _kind = "projection"
    _needs = "projection checkpoints"

    def __init__(
        self,
        store: AsyncEventStore,
        consumers: tuple[Any, ...],
        *,
        batch_size: int,
        poll_interval: float,
    ) -> None:
        if not isinstance(store, AsyncProjectionStore):
            raise ArgumentTypeError(
                f"{type(store).__name__} keeps no {self._needs}; use a store that "
                "implements AsyncProjectionStore, such as AsyncInMemoryEventStore"
            )
        check_number("batch_size", batch_size, integer=True, minimum=1)
        check_number("poll_interval", poll_interval, integer=False, minimum=0.001)
        if not consumers:
            raise ArgumentError(f"{type(self).__name__} needs at least one {self._kind}")
        self.store = store
        self.poll_interval = float(poll_interval)
        self._storage = cast("AsyncProjectionStore", store)
        self._slots: dict[str, Slot] = {}
        for consumer in consumers:
            slot = self._slot(consumer)
            if slot.key in self._slots:
                raise ArgumentError(f"two {self._kind}s are named {slot.key!r}")
            self._slots[slot.key] = slot
        # Set (and replaced) after every commit, so that wait_for wakes at once.
        self._changed = AEvent()
        self._engine = self._engine_for(batch_size)
        self._background = AsyncBackground(
            self._engine,
            self._storage,
            list(self._slots.values()),
            poll_interval=self.poll_interval,
            on_change=self._committed,
        )

    @abc.abstractmethod
    def _slot(self, consumer: Any) -> Slot:
        """Check one consumer the runner was given, and return its slot."""

    def _engine_for(self, batch_size: int) -> AsyncEngine:
        return AsyncEngine(
            self.store,
            self._storage,
            batch_size=batch_size,
            pause=self._pause,
            clock=time.monotonic,
            on_commit=self._committed,
        )

    def __repr__(self) -> str:
        names = ", ".join(repr(name) for name in self._slots)
        return f"<{type(self).__name__} of {names}{' (running)' if self.running else ''}>"

    @property
    def running(self) -> bool:
        """Whether the background worker runs."""
        return self._background.running

    # -- foreground -----------------------------------------------------------------------

    async def run_until_caught_up(self, *, timeout: float | None = None) -> int:
        """
        Bring every projection (or subscriber) up to the events stored now, here; then return.

        Events appended meanwhile may be handled too. A projection whose lock another
        runner holds counts as caught up once that runner's checkpoint reaches the
        head; until then this call waits. When the background worker runs, this only
        waits for it (`wait_for`).

        Args:
            timeout: The most seconds to wait while another runner holds a
                projection's lock; no limit if None.

        Returns:
            How many events this call handled (a subscriber's events handed over again
            after a failure count again).

        Raises:
            ProjectionError: A projection stopped at an event (its checkpoint stays
                just before it). The other projections are caught up first.
            TimeoutError: *timeout* passed first.
        """
        target = await self.store.head_position()
        if self.running:
            await self._wait(target, None, timeout)
            return 0
        deadline = None if timeout is None else time.monotonic() + timeout
        handled = 0
        errors: list[ProjectionError] = []
        for slot in self._slots.values():
            slot.error = None
            try:
                handled += await self._catch_up_to(slot, target, deadline)
            except ProjectionError as error:
                slot.error = error
                errors.append(error)
        if errors:
            raise errors[0]
        return handled

    async def _catch_up_to(self, slot: Slot, target: int, deadline: float | None) -> int:
        handled = 0
        lock = await self._storage.lock_projection(slot.key)
        try:
            while lock is None:
                checkpoints = await self._storage.projection_checkpoints()
                stored = checkpoints.get(slot.key)
                if stored is not None and stored.position >= target:
                    return 0
                check_deadline(deadline, f"{self._kind} {slot.key!r} is locked by another runner")
                await asleep(self.poll_interval)
                lock = await self._storage.lock_projection(slot.key)
            slot.ready = False
            progress = ProgressBar(slot.key, None)
            while True:
                async with slot.mutex:
                    try:
                        if not slot.ready:
                            await self._engine.prepare(slot, progress, _never)
                        handled += await self._engine.step(slot)
                    except CheckpointMoved:
                        slot.ready = False
                        continue
                    except ProjectionLockLostError as lost:
                        lock = None  # taken over: nothing left to release
                        raise ProjectionError(
                            slot.key,
                            slot.position,
                            detail=f"another runner took the {self._kind} over",
                        ) from lost
                if slot.position >= target:
                    return handled
        finally:
            if lock is not None:
                await lock.release()
            slot.ready = False

    # -- background -----------------------------------------------------------------------

    def start(self) -> None:
        """
        Run the projections (or subscribers) in the background until `stop`: a loop task.

        The task catches up, then follows new events. A projection that stops at an
        event shows as failed in `status` (and `wait_for` raises its error); the others
        go on. Appends through this store object wake the worker at once.

        Raises:
            RuntimeError: The runner already runs.
        """
        if self.running:
            raise RuntimeError(f"the {type(self).__name__} is already running")
        self._background.start()

    async def stop(self, *, timeout: float | None = None) -> None:
        """
        Stop the background task and release the projections' (or subscribers') locks.

        The batch being applied finishes, or rolls back when it fails: it is never
        half applied. A standby runner takes the projections over. Stopping a runner
        that does not run does nothing.

        Args:
            timeout: The most seconds to wait for the worker; no limit if None.

        Raises:
            TimeoutError: The worker was still applying a batch after *timeout*.
        """
        await self._background.stop(timeout)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _pause(self, seconds: float) -> bool:
        return await self._background.pause(seconds)

    def _committed(self) -> None:
        # Wakes every waiter of the event that was current; later waiters take the new one.
        changed, self._changed = self._changed, AEvent()
        changed.set()

    # -- waiting and watching ---------------------------------------------------------------

    async def _wait(
        self, position: int, consumers: Iterable[str] | None, timeout: float | None
    ) -> None:
        check_number("position", position, integer=True, minimum=0)
        names = self._names(consumers)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            changed = self._changed
            checkpoints = await self._storage.projection_checkpoints()
            behind = {
                name: checkpoints[name].position if name in checkpoints else 0
                for name in names
                if name not in checkpoints or checkpoints[name].position < position
            }
            if not behind:
                return
            for name in behind:
                error = self._slots[name].error
                if error is not None:
                    raise error
            remaining = self.poll_interval
            if deadline is not None:
                remaining = min(remaining, deadline - time.monotonic())
                if remaining <= 0:
                    raise TimeoutError(
                        f"{self._kind}s did not reach position {position} within {timeout} "
                        f"seconds: {', '.join(f'{n!r} at {p}' for n, p in behind.items())}"
                    )
            await await_event(changed, remaining)

    async def status(self) -> dict[str, ProjectionStatus]:
        """
        Report each projection's (or subscriber's) position, lag and speed.

        Lag is counted in events: the events stored after the checkpoint that it
        wants (on PostgreSQL positions are not consecutive, so they are never
        subtracted). Positions come from the store, so a standby runner reports the
        active one's progress.

        Returns:
            A `ProjectionStatus` per name (a subscriber's ``version`` is always 1).
        """
        head = await self.store.head_position()
        checkpoints = await self._storage.projection_checkpoints()
        now, clock = datetime.now(UTC), time.monotonic()
        report = {}
        for name, slot in self._slots.items():
            checkpoint = checkpoints.get(name)
            position = checkpoint.position if checkpoint else 0
            oldest = None
            if position < head:
                async for first in self.store.read_all_records(after_position=position, limit=1):
                    oldest = first.recorded_at
            if slot.error is not None:
                state = ProjectionState.FAILED
            elif slot.lock is not None:
                state = ProjectionState.ACTIVE
            else:
                state = ProjectionState.STANDBY if self.running else ProjectionState.STOPPED
            report[name] = ProjectionStatus(
                name=name,
                version=checkpoint.version if checkpoint else 0,
                state=state,
                position=position,
                head=head,
                lag_events=await self.store.count_events(after_position=position, up_to=head),
                lag_seconds=lag_seconds(now, oldest),
                events_per_second=slot.meter.rate(clock),
                dead_letters=len(await self._storage.dead_letters(name)),
                error=slot.error,
            )
        return report

    # -- dead letters ---------------------------------------------------------------------

    async def dead_letters(self, name: str) -> list[DeadLetter]:
        """
        Return the events a projection (or subscriber) parked, in position order.

        Raises:
            ValueError: *name* is not one of this runner's.
        """
        return await self._storage.dead_letters(self._names([name])[0])

    async def retry_dead_letters(self, name: str, positions: Iterable[int] | None = None) -> int:
        """
        Handle (or hand over) parked events again, oldest first; unpark those that succeed.

        A parked event is handled after the events that followed it, so its handler
        must not rely on order. One that fails again stays parked, with its new error
        and one more attempt counted.

        Args:
            name: The projection or subscriber.
            positions: The parked events to retry; all of them if None.

        Returns:
            How many parked events succeeded this time.

        Raises:
            ProjectionError: Another runner holds it.
            ValueError: *name* is not one of this runner's.
        """
        slot = self._slots[self._names([name])[0]]
        wanted = None if positions is None else set(positions)
        succeeded = 0
        async with self._owning(slot):
            for letter in await self._storage.dead_letters(slot.key):
                if wanted is None or letter.position in wanted:
                    async with slot.mutex:
                        succeeded += await self._engine.retry_dead_letter(slot, letter)
        self._committed()
        return succeeded

    @contextlib.asynccontextmanager
    async def _owning(self, slot: Slot) -> AsyncIterator[None]:
        # The background worker may hold the lock already; otherwise take it here.
        lock = None
        if slot.lock is None:
            lock = await self._storage.lock_projection(slot.key)
            if lock is None:
                checkpoints = await self._storage.projection_checkpoints()
                checkpoint = checkpoints.get(slot.key)
                raise ProjectionError(
                    slot.key,
                    checkpoint.position if checkpoint else 0,
                    detail=f"another runner holds this {self._kind}; do this there",
                )
        try:
            yield
        finally:
            if lock is not None:
                await lock.release()
                slot.ready = False

    # -- helpers --------------------------------------------------------------------------

    def _names(self, names: Iterable[str] | None) -> list[str]:
        if names is None:
            return list(self._slots)
        if isinstance(names, str):
            names = [names]
        chosen = list(names)
        unknown = [name for name in chosen if name not in self._slots]
        if unknown:
            raise ArgumentError(
                f"no {self._kind} named {unknown[0]!r} in this runner (it runs "
                f"{', '.join(repr(n) for n in self._slots)})"
            )
        return chosen


class AsyncRunnerBase(AsyncRunnerCore):
    """
    What the projection and process manager runners share: they run `Projection` objects.

    Subclasses say what they accept (`_kind`, `_take`) and add what only they do.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        *projections: Projection,
        batch_size: int = 100,
        poll_interval: float = 0.2,
    ) -> None:
        super().__init__(store, projections, batch_size=batch_size, poll_interval=poll_interval)

    @abc.abstractmethod
    def _take(self, projection: Projection) -> Projection:
        """Check a projection the runner was given, and return it."""

    def _slot(self, consumer: Any) -> Slot:
        projection = self._take(consumer)
        types = type_names(self.store.registry, projection)
        return Slot(projection, projection.name, types, projection.version)

    async def wait_for(
        self,
        position: int,
        *,
        timeout: float | None = 10.0,
        projections: Iterable[str] | None = None,
    ) -> None:
        """
        Wait until the read models include every event up to *position*.

        Pass the position an append returned (`AppendResult.positions`) to read your
        own write. Progress made by any runner counts, in this process or another.

        Args:
            position: The global position to wait for.
            timeout: The most seconds to wait; no limit if None.
            projections: The names of the projections to wait for; all of this runner's
                if None.

        Raises:
            TimeoutError: A projection was still behind after *timeout*.
            ProjectionError: A projection that is behind stopped at an event.
            ValueError: *position* is negative, or a name is not one of this runner's.
        """
        await self._wait(position, projections, timeout)


class AsyncProjectionRunner(AsyncRunnerBase):
    """
    Feeds projections with the store's events: catches them up, then follows new ones.

    For each projection the runner reads the stored records after its checkpoint
    (`AsyncBaseEventStore.read_all_records`), in batches of the projection's event types,
    decodes each event as its handler takes it, and applies each batch in one store
    transaction that also moves the checkpoint. An event that cannot be decoded fails
    like a handler would, under the projection's error policy. Run it in the
    foreground (`run_until_caught_up`) or in the background (`start` and `stop`, or a
    ``with`` block), where it follows new events: in a task of the running event loop
    in the async form, in a thread in the sync one. Handlers are synchronous in both
    forms and run where the store runs its transactions.

    Only one runner applies a projection's events at a time: a runner takes the
    projection's lock in the store first. A runner that finds the lock taken waits as a
    hot standby and takes over when the holder stops or dies, so runners can be started
    on several machines (or processes) for failover.

    Example:
        .. code-block:: python

            runner = AsyncProjectionRunner(store, Balances(), batch_size=500)
            await runner.run_until_caught_up()    # here, then return
            async with runner:                    # or: follow in the background
                result = await accounts.save(account)
                await runner.wait_for(result.positions[-1])

    Args:
        store: The event store; it must also keep projection checkpoints
            (`AsyncProjectionStore`), as every eventkit backend does.
        projections: The projections to run, with distinct names.
        batch_size: The most events applied in one transaction.
        poll_interval: Seconds between looks at the store for new events, for lock
            takeovers and for appends that other processes make. Appends through this
            store object wake the runner at once.

    Raises:
        ArgumentTypeError: *store* keeps no projection checkpoints, or a projection is
            not a `Projection` (or is a `ProcessManager`, which
            `AsyncProcessManagerRunner` runs).
        ArgumentError: No projections, two with one name, or a bad name, version,
            *batch_size* or *poll_interval*.
        UnknownEventType: A class in a projection's ``event_types`` is not registered.

    .. versionadded:: 0.1.0
    """

    @property
    def projections(self) -> tuple[Projection, ...]:
        """The projections this runner feeds, in the order given."""
        return tuple(slot.projection for slot in self._slots.values())

    def _take(self, projection: Projection) -> Projection:
        checked = check_projection(projection)
        if is_process_manager(checked):
            raise ArgumentTypeError(
                f"{checked.name!r} is a process manager: run it with a ProcessManagerRunner "
                "(a projection runner may rebuild and replay, which would append its events "
                "again)"
            )
        return checked

    # -- rebuilds -------------------------------------------------------------------------

    async def rebuild(self, name: str, *, quiet: bool = False, out: TextIO | None = None) -> None:
        """
        Rebuild a projection's read model from the first event, then swap it in atomically.

        The rebuild writes fresh tables (`Projection.table` names them) while readers
        keep querying the old read model, which a running runner keeps up to date
        meanwhile. When the fresh copy has caught up, one transaction replaces the old
        tables, checkpoint and dead letters with the new ones: readers see the old
        read model or the new one, never a half-built one. A runner also does this by
        itself when it finds a read model built by an older `Projection.version`.

        Args:
            name: The projection to rebuild.
            quiet: Draw no progress bar.
            out: Where to draw the progress bar; standard error if None.

        Raises:
            ProjectionError: An event failed during the rebuild (the old read model
                stays in place), or another runner holds the projection.
            ValueError: *name* is not one of this runner's projections.
        """
        slot = self._slots[self._names([name])[0]]
        async with self._owning(slot):
            progress = ProgressBar(f"{name} (rebuild)", None if quiet else out or sys.stderr)
            await self._engine.rebuild(slot, progress, _never)

    async def replay(self, name: str, *, quiet: bool = False, out: TextIO | None = None) -> None:
        """
        Empty a projection's read model and apply every event to it again, in place.

        Drops the projection's tables, calls `Projection.teardown`, deletes its
        checkpoint and dead letters, then catches up from the first event. Readers see
        the read model fill up again; use `rebuild` to keep serving the old one.

        Args:
            name: The projection to replay.
            quiet: Draw no progress bar.
            out: Where to draw the progress bar; standard error if None.

        Raises:
            ProjectionError: An event failed (the checkpoint stays just before it), or
                another runner holds the projection.
            ValueError: *name* is not one of this runner's projections.
        """
        slot = self._slots[self._names([name])[0]]
        async with self._owning(slot):
            progress = ProgressBar(f"{name} (replay)", None if quiet else out or sys.stderr)
            await self._engine.start_over(slot)
            await self._engine.catch_up(slot, progress, _never)
