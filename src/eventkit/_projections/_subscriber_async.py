"""
The `AsyncSubscriber` base class: reads the log in batches, outside the store's transaction.

A `Projection` handles each event inside the store's write transaction, and its
checkpoint commits with it. A subscriber is the other shape, for work that waits on
I/O (publish to a broker, call a service): it is handed a whole batch, does what it
does, and the runner commits the checkpoint after the batch succeeded. At least once.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventkit._projections._policies import ErrorPolicy, ParkOnError, RetryOnError, StopOnError
from eventkit._projections._projection import STAGING_SUFFIX
from eventkit.exceptions import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventkit._envelope import RecordedEvent
    from eventkit._records import EventRecord


class AsyncSubscriber:
    """
    Handles batches of recorded events outside the store's transaction: subclass it.

    Implement `handle_batch` and give the subscriber to a runner (`AsyncSubscriberRunner`),
    which reads the store's log after the subscriber's checkpoint, hands it each batch,
    and moves the checkpoint once the batch was handled:

    .. code-block:: python

        class Mailer(AsyncSubscriber):
            name = "welcome-mails"
            event_types = (AccountOpened,)

            async def handle_batch(self, batch):
                for recorded in batch:
                    await mail.send(recorded.event.owner, idempotency_key=recorded.event_id)

    Guarantees: batches arrive in the order of the global log, and the checkpoint moves
    only past a batch that `handle_batch` returned from. A crash (or a failure) between
    the work and the checkpoint hands the batch over again: at least once, so make the
    work idempotent, keyed by `RecordedEvent.event_id`. Unlike a projection, a
    subscriber is never rebuilt by itself: it has no version, and its past work (mails
    sent, messages published) cannot be taken back.

    When a batch fails, the runner hands its events over one at a time, moving the
    checkpoint past each that succeeds, and the failing event goes to the
    subscriber's `error_policy`.

    Attributes:
        name: The subscriber's stable name: its checkpoint, lock and dead letters are
            kept under it, beside the projections' (so it must differ from theirs).
        event_types: The event classes or type names wanted; None (the default) means
            every event.
        error_policy: What to do when a batch fails: `StopOnError` (the default),
            `RetryOnError` or `ParkOnError`.

    .. versionadded:: 0.1.0
    """

    name: str
    event_types: Sequence[type[Any] | str] | None = None
    error_policy: ErrorPolicy = StopOnError()

    async def setup(self) -> None:
        """
        Prepare for batches (connect, declare what must exist); by default nothing.

        The runner calls it whenever it takes the subscriber on, before the first batch,
        so it must be idempotent. An exception is retried by a runner in the background.
        """

    async def handle_batch(self, batch: Sequence[RecordedEvent[Any]]) -> None:
        """
        Handle *batch*, events in the order of the global log; raise to refuse it.

        Return only when the work is done (the message acknowledged, the call
        answered): the checkpoint moves past the batch after this returns.
        """
        raise NotImplementedError(f"{type(self).__qualname__} must implement handle_batch")

    async def handle_records(
        self,
        records: Sequence[EventRecord],
        decode: Callable[[EventRecord], RecordedEvent[Any]],
    ) -> None:
        """
        Handle stored records; by default decode them and call `handle_batch`.

        Override this instead of `handle_batch` to work on the records as the store
        keeps them, undecoded and not upcast (as `Relay` does, which publishes the
        stored data). *decode* turns a record into a `RecordedEvent`.
        """
        await self.handle_batch([decode(record) for record in records])


def check_subscriber(subscriber: object) -> AsyncSubscriber:
    """Return *subscriber* if it is an `AsyncSubscriber` with a usable name and policy."""
    if not isinstance(subscriber, AsyncSubscriber):
        raise ArgumentTypeError(f"expected an instance of AsyncSubscriber, got {subscriber!r}")
    kind = type(subscriber)
    if (
        kind.handle_batch is AsyncSubscriber.handle_batch
        and kind.handle_records is AsyncSubscriber.handle_records
    ):
        raise ArgumentTypeError(
            f"{kind.__qualname__} must implement handle_batch (or handle_records)"
        )
    name = getattr(subscriber, "name", None)
    if not isinstance(name, str) or not name or name != name.strip():
        raise ArgumentError(
            f"{kind.__qualname__}.name must be a non-empty string without surrounding "
            f"whitespace, got {name!r}"
        )
    if name.endswith(STAGING_SUFFIX):
        raise ArgumentError(f"subscriber name {name!r} must not end with {STAGING_SUFFIX!r}")
    if not isinstance(subscriber.error_policy, (StopOnError, RetryOnError, ParkOnError)):
        raise ArgumentTypeError(
            f"subscriber {name!r}: error_policy must be StopOnError(), RetryOnError(...) "
            f"or ParkOnError(), got {subscriber.error_policy!r}"
        )
    return subscriber
