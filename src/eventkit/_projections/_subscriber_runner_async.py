"""
`AsyncSubscriberRunner`: feeds subscribers from the global log, in the foreground or a task.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Self, cast

from eventkit._acompat import AEvent, asleep, await_event
from eventkit._projection_store_async import AsyncProjectionStore
from eventkit._projections._background_async import AsyncBackground
from eventkit._projections._checks import check_deadline, check_number
from eventkit._projections._engine_async import CheckpointMoved, Slot
from eventkit._projections._plan import lag_seconds
from eventkit._projections._progress import ProgressBar
from eventkit._projections._status import ProjectionState, ProjectionStatus
from eventkit._projections._subscriber_async import check_subscriber
from eventkit._projections._subscribing_async import SUBSCRIBER_VERSION, AsyncSubscriberEngine
from eventkit._storage import ProjectionLockLostError
from eventkit.exceptions import ArgumentError, ArgumentTypeError, ProjectionError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import TracebackType

    from eventkit._projections._projection import Projection
    from eventkit._projections._subscriber_async import AsyncSubscriber
    from eventkit._records import DeadLetter
    from eventkit._store_async import AsyncEventStore


def _never() -> bool:
    return False


class AsyncSubscriberRunner:
    """
    Feeds subscribers with the store's events: catches them up, then follows new ones.

    The sibling of `AsyncProjectionRunner` for `AsyncSubscriber` objects, with the same
    locks, standby and takeover, status figures, error policies and dead letters. The
    difference is where the work happens: a batch is handed to the subscriber outside
    any store transaction, and the checkpoint moves in a short transaction after the
    batch succeeded. At least once; and no automatic rebuild.

    Only one runner feeds a subscriber at a time (the subscriber's lock in the store),
    so two relays started for one store never both publish: the second stands by.

    Example:
        .. code-block:: python

            runner = AsyncSubscriberRunner(store, Relay(NatsPublisher()))
            async with runner:                    # follow in the background
                ...
            print((await runner.status())["relay"].lag_events)

    Args:
        store: The event store; it must also keep checkpoints (`AsyncProjectionStore`),
            as every eventkit backend does.
        subscribers: The subscribers to run, with distinct names.
        batch_size: The most events handed over in one batch.
        poll_interval: Seconds between looks at the store for new events and for lock
            takeovers. Appends through this store object wake the runner at once.

    Raises:
        TypeError: *store* keeps no checkpoints, or a subscriber is not an
            `AsyncSubscriber` (or implements neither handler).
        ValueError: No subscribers, two with one name, or a bad name, *batch_size*
            or *poll_interval*.
        UnknownEventType: A class in a subscriber's ``event_types`` is not registered.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        store: AsyncEventStore,
        *subscribers: AsyncSubscriber,
        batch_size: int = 100,
        poll_interval: float = 0.2,
    ) -> None:
        if not isinstance(store, AsyncProjectionStore):
            raise ArgumentTypeError(
                f"{type(store).__name__} keeps no checkpoints; use a store that implements "
                "AsyncProjectionStore, such as AsyncInMemoryEventStore"
            )
        check_number("batch_size", batch_size, integer=True, minimum=1)
        check_number("poll_interval", poll_interval, integer=False, minimum=0.001)
        if not subscribers:
            raise ArgumentError("SubscriberRunner needs at least one subscriber")
        self.store = store
        self.poll_interval = float(poll_interval)
        self._storage = cast("AsyncProjectionStore", store)
        self._subscribers: dict[str, AsyncSubscriber] = {}
        self._slots: dict[str, Slot] = {}
        for subscriber in map(check_subscriber, subscribers):
            if subscriber.name in self._subscribers:
                raise ArgumentError(f"two subscribers are named {subscriber.name!r}")
            wanted = subscriber.event_types
            types = None if wanted is None else store.registry.stored_names(wanted)
            self._subscribers[subscriber.name] = subscriber
            # The engine's shared paths (failures, parking) read only the name and the
            # error policy of what a slot runs, which a subscriber has as a projection does.
            self._slots[subscriber.name] = Slot(
                cast("Projection", subscriber), subscriber.name, types, SUBSCRIBER_VERSION
            )
        self._changed = AEvent()
        self._engine = AsyncSubscriberEngine(
            store,
            self._storage,
            self._subscribers,
            batch_size=batch_size,
            pause=self._pause,
            clock=time.monotonic,
            on_commit=self._committed,
        )
        self._background = AsyncBackground(
            self._engine,
            self._storage,
            list(self._slots.values()),
            poll_interval=self.poll_interval,
            on_change=self._committed,
        )

    def __repr__(self) -> str:
        names = ", ".join(repr(name) for name in self._slots)
        return f"<SubscriberRunner of {names}{' (running)' if self.running else ''}>"

    @property
    def subscribers(self) -> tuple[AsyncSubscriber, ...]:
        """The subscribers this runner feeds, in the order given."""
        return tuple(self._subscribers.values())

    @property
    def running(self) -> bool:
        """Whether the background worker runs."""
        return self._background.running

    # -- foreground -----------------------------------------------------------------------

    async def run_until_caught_up(self, *, timeout: float | None = None) -> int:
        """
        Hand every event stored now to every subscriber, here; then return.

        A subscriber whose lock another runner holds counts as caught up once that
        runner's checkpoint reaches the head; until then this call waits. When the
        background worker runs, this only waits for it (`wait_for`).

        Args:
            timeout: The most seconds to wait while another runner holds a
                subscriber's lock; no limit if None.

        Returns:
            How many events this call handed over (events handed over again after a
            failure count again).

        Raises:
            ProjectionError: A subscriber stopped at an event (its checkpoint stays
                just before it). The other subscribers are caught up first.
            TimeoutError: *timeout* passed first.
        """
        target = await self.store.head_position()
        if self.running:
            await self.wait_for(target, timeout=timeout)
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
                check_deadline(deadline, f"subscriber {slot.key!r} is locked by another runner")
                await asleep(self.poll_interval)
                lock = await self._storage.lock_projection(slot.key)
            slot.ready = False
            while True:
                async with slot.mutex:
                    try:
                        if not slot.ready:
                            await self._engine.prepare(slot, ProgressBar(slot.key, None), _never)
                        handled += await self._engine.step(slot)
                    except CheckpointMoved:
                        slot.ready = False
                        continue
                    except ProjectionLockLostError as lost:
                        lock = None  # taken over: nothing left to release
                        raise ProjectionError(
                            slot.key,
                            slot.position,
                            detail="another runner took the subscriber over",
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
        Run the subscribers in the background until `stop`: a task of the running loop.

        The task catches up, then follows new events. A subscriber that stops at an
        event shows as failed in `status`; the others go on. A subscriber whose
        `AsyncSubscriber.setup` fails, or whose store fails, is tried again after a
        pause.

        Raises:
            RuntimeError: The runner already runs.
        """
        if self.running:
            raise RuntimeError("the subscriber runner is already running")
        self._background.start()

    async def stop(self, *, timeout: float | None = None) -> None:
        """
        Stop the background task and release the subscribers' locks.

        The batch being handled finishes first (a retry pause ends at once); its
        checkpoint moves only if it succeeded. A standby runner takes over. Stopping a
        runner that does not run does nothing.

        Args:
            timeout: The most seconds to wait for the worker; no limit if None.

        Raises:
            TimeoutError: The worker was still handling a batch after *timeout*.
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
        changed, self._changed = self._changed, AEvent()
        changed.set()

    # -- waiting and watching ---------------------------------------------------------------

    async def wait_for(
        self,
        position: int,
        *,
        timeout: float | None = 10.0,
        subscribers: Iterable[str] | None = None,
    ) -> None:
        """
        Wait until the subscribers have handled every event up to *position*.

        Progress made by any runner counts, in this process or another.

        Args:
            position: The global position to wait for.
            timeout: The most seconds to wait; no limit if None.
            subscribers: The names of the subscribers to wait for; all of this
                runner's if None.

        Raises:
            TimeoutError: A subscriber was still behind after *timeout*.
            ProjectionError: A subscriber that is behind stopped at an event.
            ValueError: *position* is negative, or a name is not one of this runner's.
        """
        check_number("position", position, integer=True, minimum=0)
        names = self._names(subscribers)
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
                        f"subscribers did not reach position {position} within {timeout} "
                        f"seconds: {', '.join(f'{n!r} at {p}' for n, p in behind.items())}"
                    )
            await await_event(changed, remaining)

    async def status(self) -> dict[str, ProjectionStatus]:
        """
        Report each subscriber's position, lag and speed.

        Lag is counted in events: the events stored after the checkpoint that the
        subscriber wants (on PostgreSQL positions are not consecutive, so they are
        never subtracted). Positions come from the store, so a standby runner reports
        the active one's progress.

        Returns:
            A `ProjectionStatus` per subscriber name (``version`` is always 1).
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
            behind = await self.store.count_events(after_position=position, up_to=head)
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
                lag_events=behind,
                lag_seconds=lag_seconds(now, oldest),
                events_per_second=slot.meter.rate(clock),
                dead_letters=len(await self._storage.dead_letters(name)),
                error=slot.error,
            )
        return report

    # -- dead letters -----------------------------------------------------------------------

    async def dead_letters(self, name: str) -> list[DeadLetter]:
        """
        Return the events a subscriber parked, in position order.

        Raises:
            ValueError: *name* is not one of this runner's subscribers.
        """
        return await self._storage.dead_letters(self._names([name])[0])

    async def retry_dead_letters(self, name: str, positions: Iterable[int] | None = None) -> int:
        """
        Hand parked events over again, one at a time, oldest first; unpark those that succeed.

        Args:
            name: The subscriber.
            positions: The parked events to retry; all of them if None.

        Returns:
            How many parked events succeeded this time.

        Raises:
            ProjectionError: Another runner holds the subscriber.
            ValueError: *name* is not one of this runner's subscribers.
        """
        slot = self._slots[self._names([name])[0]]
        wanted = None if positions is None else set(positions)
        succeeded = 0
        lock = None
        if slot.lock is None:
            lock = await self._storage.lock_projection(slot.key)
            if lock is None:
                raise ProjectionError(
                    slot.key, 0, detail="another runner holds this subscriber; do this there"
                )
        try:
            for letter in await self._storage.dead_letters(slot.key):
                if wanted is None or letter.position in wanted:
                    async with slot.mutex:
                        succeeded += await self._engine.retry_dead_letter(slot, letter)
        finally:
            if lock is not None:
                await lock.release()
        self._committed()
        return succeeded

    def _names(self, names: Iterable[str] | None) -> list[str]:
        if names is None:
            return list(self._slots)
        if isinstance(names, str):
            names = [names]
        chosen = list(names)
        unknown = [name for name in chosen if name not in self._slots]
        if unknown:
            raise ArgumentError(
                f"no subscriber named {unknown[0]!r} in this runner (it runs "
                f"{', '.join(repr(n) for n in self._slots)})"
            )
        return chosen
