"""
`AsyncSubscriberRunner`: feeds subscribers from the global log, in the foreground or a task.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from eventkit._projections._engine_async import AsyncEngine, Slot
from eventkit._projections._runner_async import AsyncRunnerCore
from eventkit._projections._subscriber_async import check_subscriber
from eventkit._projections._subscribing_async import SUBSCRIBER_VERSION, AsyncSubscriberEngine

if TYPE_CHECKING:
    from collections.abc import Iterable

    from eventkit._projections._projection import Projection
    from eventkit._projections._subscriber_async import AsyncSubscriber
    from eventkit._store_async import AsyncEventStore


class AsyncSubscriberRunner(AsyncRunnerCore):
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

    _kind = "subscriber"
    _needs = "checkpoints"

    def __init__(
        self,
        store: AsyncEventStore,
        *subscribers: AsyncSubscriber,
        batch_size: int = 100,
        poll_interval: float = 0.2,
    ) -> None:
        self._subscribers: dict[str, AsyncSubscriber] = {}
        super().__init__(store, subscribers, batch_size=batch_size, poll_interval=poll_interval)

    def _slot(self, consumer: Any) -> Slot:
        subscriber = check_subscriber(consumer)
        wanted = subscriber.event_types
        types = None if wanted is None else self.store.registry.stored_names(wanted)
        if subscriber.name not in self._subscribers:
            self._subscribers[subscriber.name] = subscriber
        # The engine's shared paths (failures, parking) read only the name and the
        # error policy of what a slot runs, which a subscriber has as a projection does.
        return Slot(cast("Projection", subscriber), subscriber.name, types, SUBSCRIBER_VERSION)

    def _engine_for(self, batch_size: int) -> AsyncEngine:
        return AsyncSubscriberEngine(
            self.store,
            self._storage,
            self._subscribers,
            batch_size=batch_size,
            pause=self._pause,
            clock=time.monotonic,
            on_commit=self._committed,
        )

    @property
    def subscribers(self) -> tuple[AsyncSubscriber, ...]:
        """The subscribers this runner feeds, in the order given."""
        return tuple(self._subscribers.values())

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
        await self._wait(position, subscribers, timeout)
