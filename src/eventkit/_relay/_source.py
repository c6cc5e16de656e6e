"""What a `BrokerProjectionRunner` reads from: a broker's consumer, behind one protocol."""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 (a field type, resolved at run time)
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from eventkit._records import EventRecord  # noqa: TC001 (a field type, resolved at run time)

if TYPE_CHECKING:
    from collections.abc import Mapping


class Delivery(NamedTuple):
    """
    One message read from a broker: the event it carries, and where it was read.

    Attributes:
        record: The event, as the store keeps it.
        source: The name of the log the message was read from (a JetStream stream,
            a Kafka partition), under which the runner keeps its position.
        offset: The message's place in that log: a JetStream stream sequence, a Kafka
            offset.

    .. versionadded:: 0.1.0
    """

    record: EventRecord
    source: str
    offset: int


class Lag(NamedTuple):
    """
    How far a consumer is behind its broker.

    Attributes:
        messages: The messages on the broker after the committed position.
        oldest: When the oldest of them was recorded by the store; None when unknown
            or none waits.

    .. versionadded:: 0.1.0
    """

    messages: int
    oldest: datetime | None


@runtime_checkable
class Source(Protocol):
    """
    A broker's consumer as a `BrokerProjectionRunner` uses it.

    `NatsSource` and `KafkaSource` implement it. Positions are the runner's: it keeps
    them in the read service's database and hands them to `open`.

    .. versionadded:: 0.1.0
    """

    async def open(self, positions: Mapping[str, int]) -> None:
        """Connect, and read after *positions* (by `Delivery.source`; from the start if absent)."""
        ...

    async def fetch(self, count: int, timeout: float) -> list[Delivery]:
        """Return up to *count* messages after the last returned, waiting up to *timeout*."""
        ...

    def committed(self, positions: Mapping[str, int]) -> None:
        """Note the positions the runner committed."""
        ...

    async def lag(self) -> Lag:
        """Return how far the committed positions are behind the broker."""
        ...

    async def close(self) -> None:
        """Disconnect; the source can be opened again."""
        ...
