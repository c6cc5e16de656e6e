"""
`Relay`: the subscriber that publishes every committed event to a broker, in order.

The event store is the outbox: the relay follows the global log with a checkpoint, like
any subscriber, so no second table holds the events to publish. Order is kept by one
rule: a stream's next event is sent only after the broker acknowledged the previous one
(see `waves`). A publish that fails is retried, the same events from the same place,
with growing pauses and without end: never skipped, never parked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from eventkit._projections._policies import ErrorPolicy, ParkOnError, RetryOnError
from eventkit._projections._subscriber_async import AsyncSubscriber
from eventkit._relay._message import BrokerMessage, waves
from eventkit.exceptions import ArgumentTypeError, BrokerError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventkit._envelope import RecordedEvent
    from eventkit._records import EventRecord

logger = logging.getLogger("eventkit.relay")

DEFAULT_RETRY = RetryOnError(attempts=None, delay=0.1, factor=2.0, max_delay=5.0)
"""A relay's error policy unless told otherwise: retry without end, pauses up to 5 s."""


@runtime_checkable
class Publisher(Protocol):
    """
    What a `Relay` publishes through: one broker's client.

    `NatsPublisher` and `KafkaPublisher` implement it; a test can pass its own.

    .. versionadded:: 0.1.0
    """

    async def open(self) -> None:
        """
        Connect, and declare what must exist (the stream, the topic); idempotent.

        A publisher whose open failed opens itself again on its next `publish`.
        """
        ...

    async def publish(self, messages: Sequence[BrokerMessage]) -> None:
        """
        Publish *messages*, of distinct streams, and return once the broker stored all.

        Raises:
            BrokerError: A message was not acknowledged (it may or may not be stored).
        """
        ...

    async def close(self) -> None:
        """Disconnect; the publisher can be opened again."""
        ...


class Relay(AsyncSubscriber):
    """
    Publishes every committed event to a broker, in the order of the global log.

    Run it with an `AsyncSubscriberRunner` on the store whose events it publishes:

    .. code-block:: python

        store = AsyncSQLiteEventStore("bookings.db")
        relay = AsyncSubscriberRunner(store, Relay(NatsPublisher(subject_prefix="bookings")))
        async with relay:
            ...                                  # publishes until stopped

    Guarantees:

    - Every event is published, in feed order, and a stream's version *n* is stored by
      the broker before its version *n + 1* is sent, across retries and restarts.
    - At least once: the checkpoint moves after the broker acknowledged a batch, so a
      crash in between publishes the batch again. NATS drops those duplicates by the
      event id (``Nats-Msg-Id``) within the stream's duplicate window; Kafka keeps
      them, and read services drop them by (stream, version).
    - A failed publish is retried with the same events, after pauses growing to 5 s,
      until it succeeds or the runner stops. Never skipped, never parked.
    - Two relays started for one store never both publish: the runner's lock makes the
      second a standby.

    Args:
        publisher: The broker client: `NatsPublisher`, `KafkaPublisher`, or your own
            `Publisher`.
        name: The relay's checkpoint and lock name; give each relay of one store its own
            (one per broker).
        source: The CloudEvents ``source`` of the messages: names where the events come
            from.
        event_types: Publish only these event classes or type names; all if None.
        error_policy: A `RetryOnError` without a limit by default. A policy that parks
            is refused: a parked event would be overtaken by its stream's later ones.

    Raises:
        TypeError: *publisher* is not a `Publisher`, or *error_policy* parks events.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        publisher: Publisher,
        *,
        name: str = "relay",
        source: str = "eventkit",
        event_types: Sequence[type[Any] | str] | None = None,
        error_policy: ErrorPolicy = DEFAULT_RETRY,
    ) -> None:
        if not isinstance(publisher, Publisher):
            raise ArgumentTypeError(
                f"expected a Publisher (open, publish, close), got {publisher!r}"
            )
        if isinstance(error_policy, ParkOnError) or (
            isinstance(error_policy, RetryOnError) and isinstance(error_policy.then, ParkOnError)
        ):
            raise ArgumentTypeError(
                "a relay never parks an event: its stream's later events would be published "
                "before it; retry (the default) or stop"
            )
        self.publisher = publisher
        self.name = name
        self.source = source
        self.event_types = event_types
        self.error_policy = error_policy
        self.published = 0

    def __repr__(self) -> str:
        return f"<Relay {self.name!r} to {self.publisher!r}>"

    async def setup(self) -> None:
        """
        Open the publisher: connect, and declare the stream or topic.

        A broker that does not answer yet is logged, not raised: the first publish
        tries again, and fails under the relay's error policy, with its growing pauses.
        """
        try:
            await self.publisher.open()
        except BrokerError as exc:
            logger.warning("relay %r: the broker does not answer yet: %s", self.name, exc)

    async def handle_records(
        self,
        records: Sequence[EventRecord],
        decode: Callable[[EventRecord], RecordedEvent[Any]],  # noqa: ARG002 (the stored data is published, undecoded)
    ) -> None:
        """Publish *records*, a run of distinct streams at a time, each run acknowledged."""
        for run in waves(records):
            await self.publisher.publish(
                [BrokerMessage.from_record(record, source=self.source) for record in run]
            )
            self.published += len(run)
