"""
Kafka: the relay's publisher, and the read side's source.

The only module that imports confluent-kafka (the ``kafka`` extra). Each event is a
record of one topic keyed by its stream id, so a stream's events share a partition and
keep their order there; the producer is idempotent with ``acks=all``, so its own
retries neither lose, duplicate nor reorder a message within a session.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from eventkit._relay._message import BrokerMessage
from eventkit._relay._source import Delivery, Lag
from eventkit.exceptions import BrokerError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from confluent_kafka import Message

# Set whatever the caller's configuration says: the relay's guarantees rest on them.
_PRODUCER_FIXED = {"enable.idempotence": True, "acks": "all"}
_CONSUMER_FIXED = {"enable.auto.commit": False, "enable.auto.offset.store": False}


class KafkaPublisher:
    """
    Publishes a relay's messages to a Kafka topic.

    Each event is a record keyed by its stream id (so a stream's events share a
    partition, in order), with the message's headers (event id, stream, version,
    position, type). The producer is idempotent (``enable.idempotence=true``) and waits
    for every in-sync replica (``acks=all``), whatever *config* says.

    Args:
        config: The producer's librdkafka settings, ``bootstrap.servers`` at least.
        topic: The topic to publish to.
        timeout: Seconds to wait for the acknowledgements of one run of messages.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, config: Mapping[str, Any], *, topic: str = "eventkit", timeout: float = 10.0
    ) -> None:
        self.config = {**config, **_PRODUCER_FIXED}
        self.topic = topic
        self.timeout = timeout
        self._producer: Producer | None = None

    def __repr__(self) -> str:
        return f"<KafkaPublisher to topic {self.topic!r}>"

    async def open(self) -> None:
        """Make the producer (connections are made as it needs them)."""
        if self._producer is None:
            try:
                self._producer = Producer(self.config)
            except KafkaException as exc:  # pragma: no cover (a bad configuration)
                raise BrokerError(f"cannot make a Kafka producer: {exc}") from exc

    async def publish(self, messages: Sequence[BrokerMessage]) -> None:
        """
        Publish *messages* (of distinct streams); return when every one is acknowledged.

        Raises:
            BrokerError: A message was refused or not acknowledged within *timeout*.
        """
        await self.open()
        producer = self._producer
        assert producer is not None  # noqa: S101 (open made it)
        errors: list[KafkaError] = []

        def delivered(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                errors.append(error)

        try:
            for message in messages:
                producer.produce(
                    self.topic,
                    key=message.stream_id.encode(),
                    value=message.body,
                    headers=list(message.headers.items()),
                    on_delivery=delivered,
                )
        except (BufferError, KafkaException) as exc:
            raise BrokerError(f"Kafka refused a message: {exc}") from exc
        left = await asyncio.to_thread(producer.flush, self.timeout)
        if errors:
            if any(error.fatal() for error in errors):
                self._producer = None  # a fatal error ends the producer: make another
            raise BrokerError(f"Kafka did not store {len(errors)} messages: {errors[0]}")
        if left:
            raise BrokerError(f"Kafka did not acknowledge {left} messages in {self.timeout}s")

    async def close(self) -> None:
        """Wait for messages still queued, then drop the producer."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await asyncio.to_thread(producer.flush, self.timeout)


class KafkaSource:
    """
    Reads the relay's messages from a Kafka topic in a consumer group.

    Offsets are the runner's: it keeps each partition's in the read service's database,
    with the read models, and the source seeks there when partitions are assigned (no
    offsets are committed to Kafka, and auto-commit is off whatever *config* says).

    Args:
        config: The consumer's librdkafka settings, ``bootstrap.servers`` at least.
        topic: The topic to read.
        group_id: The consumer group: one per read service.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, config: Mapping[str, Any], *, topic: str = "eventkit", group_id: str
    ) -> None:
        self.config = {
            "auto.offset.reset": "earliest",
            **config,
            "group.id": group_id,
            **_CONSUMER_FIXED,
        }
        self.topic = topic
        self._consumer: Consumer | None = None
        self._after: dict[str, int] = {}
        self._committed: dict[str, int] = {}
        self._assigned: list[TopicPartition] = []

    def __repr__(self) -> str:
        return f"<KafkaSource of topic {self.topic!r}, group {self.config['group.id']!r}>"

    def _key(self, partition: int) -> str:
        return f"kafka:{self.topic}:{partition}"

    async def open(self, positions: Mapping[str, int]) -> None:
        """Join the group, and read each assigned partition after its stored offset."""
        await self.close()
        self._after = dict(positions)
        self._committed = dict(positions)
        self._consumer = Consumer(self.config)
        self._consumer.subscribe([self.topic], on_assign=self._assign)

    def _assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for partition in partitions:
            stored = self._after.get(self._key(partition.partition))
            partition.offset = OFFSET_BEGINNING if stored is None else stored + 1
        self._assigned = partitions
        consumer.assign(partitions)

    async def fetch(self, count: int, timeout: float) -> list[Delivery]:
        """
        Return up to *count* messages after the last ones returned; [] when none came.

        Raises:
            BrokerError: The consumer failed fatally.
        """
        consumer = self._consumer
        if consumer is None:
            raise BrokerError("the Kafka source is not open")
        messages = await asyncio.to_thread(consumer.consume, count, timeout)
        deliveries = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise BrokerError(f"the Kafka consumer failed: {error}")
                continue  # informational (a partition's end, a transient failure)
            partition, offset = message.partition(), message.offset()
            if partition is None or offset is None:  # pragma: no cover (errors only)
                continue
            key = self._key(partition)
            if offset <= self._after.get(key, -1):
                continue
            self._after[key] = offset
            deliveries.append(
                Delivery(BrokerMessage.to_record(message.value() or b""), key, offset)
            )
        return deliveries

    def committed(self, positions: Mapping[str, int]) -> None:
        """Note the offsets the runner committed (for `lag`)."""
        self._committed.update(positions)

    async def lag(self) -> Lag:
        """
        Return how many messages of the topic's partitions are not committed yet.

        Raises:
            BrokerError: The cluster did not answer.
        """
        consumer = self._consumer
        if consumer is None:
            consumer = Consumer(self.config)  # for a look only; closed again below
        try:
            behind = await asyncio.to_thread(self._behind, consumer)
        except KafkaException as exc:
            raise BrokerError(f"cannot read the Kafka topic {self.topic!r}: {exc}") from exc
        finally:
            if consumer is not self._consumer:
                await asyncio.to_thread(consumer.close)
        return Lag(behind, None)

    def _behind(self, consumer: Consumer) -> int:
        topic = consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
        behind = 0
        for partition in topic.partitions if topic is not None else ():
            low, high = consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=10
            )
            committed = self._committed.get(self._key(partition), low - 1)
            behind += max(0, high - (committed + 1))
        return behind

    async def close(self) -> None:
        """Leave the group and close the consumer."""
        consumer, self._consumer = self._consumer, None
        self._assigned = []
        if consumer is not None:
            await asyncio.to_thread(consumer.close)
