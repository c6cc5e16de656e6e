"""
NATS JetStream: the relay's publisher, and the read side's source.

The only module that imports nats-py (the ``nats`` extra). Each event goes to the
subject ``<prefix>.<stream id>`` of one JetStream stream, with its event id as
``Nats-Msg-Id``, so that the server stores a message sent twice (by a relay that
crashed after the broker's acknowledgement and before its checkpoint) only once,
within the stream's duplicate window.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

import nats
import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from eventkit._relay._message import BrokerMessage, subject_token
from eventkit._relay._source import Delivery, Lag
from eventkit.exceptions import BrokerError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from nats.aio.client import Client
    from nats.js import JetStreamContext

logger = logging.getLogger("eventkit.relay")

_RECONNECT = {
    # Keep trying through an outage of any length: the relay retries meanwhile.
    "max_reconnect_attempts": -1,
    "reconnect_time_wait": 0.5,
    "connect_timeout": 2,
}


# The credentials of a server URL (``user:password@`` or a token's ``token@``).
_CREDENTIALS = re.compile(r"(?<=://)[^@/]*@")


def shown_servers(servers: Sequence[str]) -> str:
    """Return the server URLs as they may be shown: without their credentials."""
    return ", ".join(_CREDENTIALS.sub("***@", url) for url in servers)


class _Connection:
    """One NATS connection and its JetStream context, opened on first use."""

    def __init__(
        self, servers: str | Sequence[str], options: Mapping[str, Any] | None, timeout: float
    ) -> None:
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.options = {**_RECONNECT, **(options or {})}
        self.timeout = timeout
        self.client: Client | None = None
        self.js: JetStreamContext | None = None

    async def open(self) -> JetStreamContext:
        if self.client is None or self.client.is_closed or self.js is None:
            try:
                self.client = await nats.connect(servers=self.servers, **self.options)
            except (OSError, nats.errors.Error) as exc:
                shown = shown_servers(self.servers)
                raise BrokerError(f"cannot connect to NATS at {shown}: {exc}") from exc
            self.js = self.client.jetstream(timeout=self.timeout)
        return self.js

    async def close(self) -> None:
        client, self.client, self.js = self.client, None, None
        if client is not None and not client.is_closed:
            await client.close()


class NatsPublisher:
    """
    Publishes a relay's messages to a NATS JetStream stream.

    Each event goes to the subject ``<subject_prefix>.<stream id>`` (the stream id as
    one subject token: characters other than letters, digits, ``-`` and ``_`` are
    written ``%XX``), with ``Nats-Msg-Id`` set to the event id. `open` creates the
    JetStream stream if it does not exist, on file storage, taking the subjects
    ``<subject_prefix>.>``; an existing stream is used as it is.

    The client reconnects through outages by itself; a publish that is not
    acknowledged within *ack_timeout* raises `BrokerError`, and the relay retries it.

    Args:
        servers: The NATS server URL(s).
        stream: The JetStream stream's name.
        subject_prefix: The subjects' first tokens.
        duplicate_window: Seconds within which the server drops a message whose
            ``Nats-Msg-Id`` it has stored already (for a stream this creates).
        ack_timeout: Seconds to wait for the server's acknowledgement of a publish.
        connect_options: More keyword arguments for ``nats.connect`` (credentials,
            TLS, ...).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        stream: str = "EVENTKIT",
        subject_prefix: str = "eventkit",
        duplicate_window: float = 120.0,
        ack_timeout: float = 5.0,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.duplicate_window = duplicate_window
        self.duplicates = 0
        self._connection = _Connection(servers, connect_options, ack_timeout)
        self._ready = False  # connected once, and the stream is known to exist

    def __repr__(self) -> str:
        return f"<NatsPublisher to stream {self.stream!r}, subjects {self.subject_prefix}.>>"

    def subject(self, stream_id: str) -> str:
        """Return the subject that the events of *stream_id* are published to."""
        return f"{self.subject_prefix}.{subject_token(stream_id)}"

    async def open(self) -> None:
        """
        Connect, and create the JetStream stream if it does not exist.

        Raises:
            BrokerError: The server cannot be reached, or refused the stream.
        """
        js = await self._connection.open()
        try:
            await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            config = StreamConfig(
                name=self.stream,
                subjects=[f"{self.subject_prefix}.>"],
                storage=StorageType.FILE,
                duplicate_window=self.duplicate_window,
            )
            try:
                await js.add_stream(config)
            except nats.errors.Error as exc:
                raise BrokerError(f"NATS refused the stream {self.stream!r}: {exc}") from exc
        except nats.errors.Error as exc:
            raise BrokerError(f"NATS stream {self.stream!r} cannot be read: {exc}") from exc
        self._ready = True

    async def publish(self, messages: Sequence[BrokerMessage]) -> None:
        """
        Publish *messages* (of distinct streams) together; return when all are stored.

        Raises:
            BrokerError: A message was not acknowledged.
        """
        if not self._ready:
            await self.open()
        js = await self._connection.open()
        timeout = self._connection.timeout
        results = await asyncio.gather(
            *(
                js.publish(
                    self.subject(message.stream_id),
                    message.body,
                    timeout=timeout,
                    stream=self.stream,
                    headers={**message.headers, "Nats-Msg-Id": str(message.event_id)},
                )
                for message in messages
            ),
            return_exceptions=True,
        )
        for message, result in zip(messages, results, strict=True):
            if isinstance(result, BaseException):
                raise BrokerError(
                    f"NATS did not acknowledge the event at position {message.position} "
                    f"(stream {message.stream_id!r} version {message.version}): "
                    f"{type(result).__name__}: {result}"
                ) from result
            if result.duplicate:
                self.duplicates += 1

    async def close(self) -> None:
        """Close the connection."""
        self._ready = False
        await self._connection.close()


class NatsSource:
    """
    Reads the relay's messages from a NATS JetStream stream, for `BrokerProjectionRunner`.

    The consumer's position is the JetStream stream sequence, which the runner keeps in
    the read service's database with its read models; the source reads from there
    through an ephemeral pull consumer (no acknowledgements: the database holds the
    position), made again after the server restarts.

    Args:
        servers: The NATS server URL(s).
        stream: The JetStream stream's name.
        subject_prefix: The subjects' first tokens, as the relay's `NatsPublisher`.
        connect_options: More keyword arguments for ``nats.connect``.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        stream: str = "EVENTKIT",
        subject_prefix: str = "eventkit",
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.key = f"nats:{stream}"
        self._connection = _Connection(servers, connect_options, 5.0)
        self._subscription: Any = None
        self._after = 0
        self._committed = 0

    def __repr__(self) -> str:
        return f"<NatsSource of stream {self.stream!r}, subjects {self.subject_prefix}.>>"

    async def open(self, positions: Mapping[str, int]) -> None:
        """
        Start reading after the stream sequence stored for this source in *positions*.

        Raises:
            BrokerError: The server cannot be reached, or the stream does not exist.
        """
        self._after = self._committed = positions.get(self.key, 0)
        await self._subscribe()

    async def _subscribe(self) -> None:
        js = await self._connection.open()
        if self._subscription is not None:
            self._subscription = None
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self._after + 1,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=300.0,
        )
        try:
            self._subscription = await js.pull_subscribe(
                f"{self.subject_prefix}.>", durable=None, stream=self.stream, config=config
            )
        except nats.errors.Error as exc:
            raise BrokerError(f"cannot read the NATS stream {self.stream!r}: {exc}") from exc

    async def fetch(self, count: int, timeout: float) -> list[Delivery]:
        """
        Return up to *count* messages after the last one returned; [] when none came.

        Raises:
            BrokerError: The server failed; the next fetch reads from the same place.
        """
        if self._subscription is None:
            await self._subscribe()
        try:
            messages = await self._subscription.fetch(count, timeout=timeout)
        except TimeoutError:  # nats.errors.TimeoutError too: nothing came in time
            return []
        except nats.errors.Error as exc:
            self._subscription = None  # made again, from where it stopped, next time
            raise BrokerError(f"reading the NATS stream {self.stream!r} failed: {exc}") from exc
        deliveries = []
        for message in messages:
            sequence = message.metadata.sequence.stream
            if sequence <= self._after:
                continue
            self._after = sequence
            deliveries.append(Delivery(BrokerMessage.to_record(message.data), self.key, sequence))
        return deliveries

    def committed(self, positions: Mapping[str, int]) -> None:
        """Note the positions the runner committed (for `lag`)."""
        self._committed = positions.get(self.key, self._committed)

    async def lag(self) -> Lag:
        """
        Return how many messages of the stream are not committed yet, and the oldest's time.

        Raises:
            BrokerError: The server cannot be reached.
        """
        js = await self._connection.open()
        try:
            info = await js.stream_info(self.stream)
            behind = max(0, info.state.last_seq - self._committed)
            oldest: datetime | None = None
            if behind:
                try:
                    message = await js.get_msg(self.stream, self._committed + 1)
                except nats.js.errors.NotFoundError:
                    pass  # removed by the stream's limits: its age is unknown
                else:
                    oldest = BrokerMessage.to_record(message.data or b"").recorded_at
        except nats.errors.Error as exc:
            raise BrokerError(f"cannot read the NATS stream {self.stream!r}: {exc}") from exc
        return Lag(behind, oldest)

    async def close(self) -> None:
        """Close the connection."""
        self._subscription = None
        await self._connection.close()
