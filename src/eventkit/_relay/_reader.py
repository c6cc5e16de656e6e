"""
`BrokerProjectionRunner`: the read side, feeding ordinary projections from a broker.

A read service runs in its own process with its own database (an SQLite file, a
PostgreSQL schema), which holds its read models, the projections' checkpoints, the
consumer's position on the broker and, per stream, the last version applied. A batch
of messages is applied in one transaction of that database which writes all four, so
a crash anywhere leaves them agreeing: every event takes effect exactly once, the
duplicates a relay sends after a crash included (dropped by stream and version).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

from eventkit._acompat import AEvent, ajoin, aspawn, await_event
from eventkit._projection_store_async import AsyncProjectionStore
from eventkit._projections._checks import check_number, check_projection, type_names
from eventkit._projections._engine_async import failure
from eventkit._projections._plan import RateMeter, lag_seconds
from eventkit._projections._policies import Action, next_action
from eventkit._projections._status import ProjectionState, ProjectionStatus
from eventkit._records import Checkpoint, DeadLetter
from eventkit._relay._source import Source
from eventkit.exceptions import ArgumentError, ArgumentTypeError, ProjectionError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from eventkit._projection_store_async import AsyncProjectionLock
    from eventkit._projections._projection import Projection
    from eventkit._records import EventRecord
    from eventkit._relay._source import Delivery
    from eventkit._storage import ProjectionTransaction
    from eventkit._store_async import AsyncEventStore

logger = logging.getLogger("eventkit.relay")

_CONSUMER_VERSION = 1
_MAX_PAUSE = 5.0


class _Failed(Exception):  # noqa: N818 (control flow inside this module)
    def __init__(self, index: int, projection: str, error: Exception) -> None:
        super().__init__()
        self.index, self.projection, self.error = index, projection, error


class FeedTables:
    """The SQL of the consumer's tables, in the read service's database."""

    def __init__(self, connection: Any, prefix: str) -> None:
        self.connection = connection
        mark = "?" if isinstance(connection, sqlite3.Connection) else "%s"
        positions, versions = f"{prefix}feed_positions", f"{prefix}feed_versions"
        self.create = (
            (
                f"CREATE TABLE IF NOT EXISTS {positions} (consumer TEXT NOT NULL, "
                "source TEXT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (consumer, source))"
            ),
            (
                f"CREATE TABLE IF NOT EXISTS {versions} (consumer TEXT NOT NULL, stream_id "
                "TEXT NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (consumer, stream_id))"
            ),
        )
        self._positions = f"SELECT source, position FROM {positions} WHERE consumer = {mark}"  # noqa: S608 (names from the prefix, checked)
        self._put_position = (
            f"INSERT INTO {positions} (consumer, source, position) VALUES ({mark}, {mark}, "  # noqa: S608 (names from the prefix, checked)
            f"{mark}) ON CONFLICT (consumer, source) DO UPDATE SET position = excluded.position"
        )
        self._version = (
            f"SELECT version FROM {versions} WHERE consumer = {mark} AND stream_id = {mark}"  # noqa: S608 (names from the prefix, checked)
        )
        self._put_version = (
            f"INSERT INTO {versions} (consumer, stream_id, version) VALUES ({mark}, {mark}, "  # noqa: S608 (names from the prefix, checked)
            f"{mark}) ON CONFLICT (consumer, stream_id) DO UPDATE SET version = excluded.version"
        )

    def setup(self) -> None:
        """Create the tables if they do not exist."""
        for statement in self.create:
            self.connection.execute(statement)

    def positions(self, consumer: str) -> dict[str, int]:
        """Return the consumer's committed positions, by source."""
        rows = self.connection.execute(self._positions, (consumer,)).fetchall()
        return {source: int(position) for source, position in rows}

    def save_position(self, consumer: str, source: str, position: int) -> None:
        """Set the consumer's position in *source*."""
        self.connection.execute(self._put_position, (consumer, source, position))

    def version(self, consumer: str, stream_id: str) -> int:
        """Return the last version of *stream_id* the consumer applied (0: none)."""
        rows = self.connection.execute(self._version, (consumer, stream_id)).fetchall()
        return int(rows[0][0]) if rows else 0

    def save_version(self, consumer: str, stream_id: str, version: int) -> None:
        """Record that the consumer applied *stream_id* up to *version*."""
        self.connection.execute(self._put_version, (consumer, stream_id, version))


def _check_prefix(prefix: str) -> str:
    if not prefix.replace("_", "a").isalnum() or not prefix.isascii():
        raise ArgumentError(f"table_prefix must be letters, digits and _, got {prefix!r}")
    return prefix


class BrokerProjectionRunner:
    """
    Feeds projections from a broker, in a read service with its own database.

    The read service's store (an `AsyncSQLiteEventStore` on its own file, say, or an
    `AsyncPostgresEventStore` on its own schema) holds no events: it keeps the read
    models, the checkpoints, and the consumer's tables (``<prefix>feed_positions``
    and ``<prefix>feed_versions``). The projections are ordinary `Projection` classes,
    written as for a `ProjectionRunner`, writing through *tx*:

    .. code-block:: python

        local = AsyncSQLiteEventStore("seats.db")
        runner = BrokerProjectionRunner(local, NatsSource(subject_prefix="bookings"),
                                        SeatAvailability())
        async with runner:
            ...

    Guarantees: each batch of messages is applied in one transaction of the read
    service's database that also moves the consumer's position and the last version
    applied per stream, so every event takes effect once: a message whose version is
    not above its stream's last one applied is a duplicate and is dropped. Streams
    arrive in order (the relay keeps it), so the read model moves forward stream by
    stream. Only one runner of a name feeds at a time (its lock in the store); another
    waits as a standby.

    Args:
        store: The read service's store: an `AsyncProjectionStore` whose transactions
            reach the read models (`AsyncProjectionStore.exactly_once`).
        source: The broker's consumer: `NatsSource`, `KafkaSource`, or your own `Source`.
        projections: The projections to feed, with distinct names.
        name: The consumer's name (its position, versions and lock are kept under it);
            by default ``feed:`` and the projections' names.
        batch_size: The most messages applied in one transaction.
        poll_interval: Seconds to wait for messages per fetch, and between retries.
        table_prefix: The prefix of the consumer's tables.

    Raises:
        TypeError: *store* is not an exactly-once projection store, *source* is not a
            `Source`, or a projection is not a `Projection`.
        ValueError: No projections, two with one name, or a bad argument.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        store: AsyncEventStore,
        source: Source,
        *projections: Projection,
        name: str | None = None,
        batch_size: int = 100,
        poll_interval: float = 0.2,
        table_prefix: str = "eventkit_",
    ) -> None:
        if not isinstance(store, AsyncProjectionStore) or not store.exactly_once:
            raise ArgumentTypeError(
                f"{type(store).__name__} cannot keep read models and the consumer's position "
                "in one transaction; use AsyncSQLiteEventStore or AsyncPostgresEventStore"
            )
        if not isinstance(source, Source):
            raise ArgumentTypeError(f"expected a Source (open, fetch, lag, close), got {source!r}")
        check_number("batch_size", batch_size, integer=True, minimum=1)
        check_number("poll_interval", poll_interval, integer=False, minimum=0.001)
        if not projections:
            raise ArgumentError("BrokerProjectionRunner needs at least one projection")
        self._projections: dict[str, Projection] = {}
        for projection in map(check_projection, projections):
            if projection.name in self._projections:
                raise ArgumentError(f"two projections are named {projection.name!r}")
            self._projections[projection.name] = projection
        self.name = name or "feed:" + "+".join(self._projections)
        if self.name in self._projections:
            raise ArgumentError(f"the consumer's name {self.name!r} is a projection's name")
        self.store = store
        self.source = source
        self.batch_size = batch_size
        self.poll_interval = float(poll_interval)
        self.table_prefix = _check_prefix(table_prefix)
        self.duplicates = 0
        self._storage: AsyncProjectionStore = store
        self._types = {p.name: type_names(store.registry, p) for p in projections}
        self._lock: AsyncProjectionLock | None = None
        self._open = False
        self._position = 0
        self._error: ProjectionError | None = None
        self._meter = RateMeter()
        self._stopping = AEvent()
        self._changed = AEvent()
        self._worker: Any = None

    def __repr__(self) -> str:
        return f"<BrokerProjectionRunner {self.name!r} from {self.source!r}>"

    @property
    def projections(self) -> tuple[Projection, ...]:
        """The projections this runner feeds, in the order given."""
        return tuple(self._projections.values())

    @property
    def running(self) -> bool:
        """Whether the background task runs."""
        return self._worker is not None and not self._worker.done()

    # -- taking the consumer on ---------------------------------------------------------------

    async def _prepare(self) -> None:
        prefix, consumer = self.table_prefix, self.name

        def body(tx: ProjectionTransaction) -> tuple[dict[str, int], int]:
            tables = FeedTables(tx.connection, prefix)
            tables.setup()
            for projection in self._projections.values():
                stored = tx.checkpoint(projection.name)
                if stored is not None and stored.version != projection.version:
                    raise ProjectionError(
                        projection.name,
                        stored.position,
                        detail=f"the read model was built by version {stored.version}, this "
                        f"code is version {projection.version}: a read model fed from a broker "
                        "is rebuilt under a new consumer name (or database)",
                    )
                try:
                    projection.setup(tx.connection)
                except Exception as exc:
                    raise ProjectionError(
                        projection.name, 0, detail=f"setup failed: {type(exc).__name__}: {exc}"
                    ) from exc
                if stored is None:
                    tx.save_checkpoint(projection.name, Checkpoint(0, projection.version))
            mine = tx.checkpoint(consumer)
            if mine is None:
                tx.save_checkpoint(consumer, Checkpoint(0, _CONSUMER_VERSION))
            return tables.positions(consumer), mine.position if mine else 0

        positions, self._position = await self._storage.run_projection_transaction(body)
        await self.source.open(positions)
        self.source.committed(positions)
        self._open = True
        self._committed()

    async def _take(self) -> bool:
        if self._lock is None:
            self._lock = await self._storage.lock_projection(self.name)
            return self._lock is not None
        if await self._lock.renew():
            return True
        logger.warning("consumer %r: another runner took it over; standing by", self.name)
        await self._let_go()
        return False

    async def _let_go(self) -> None:
        lock, self._lock = self._lock, None
        self._open = False
        try:
            await self.source.close()
        finally:
            if lock is not None:
                await lock.release()

    # -- applying messages --------------------------------------------------------------------

    async def _step(self) -> int:
        deliveries = await self.source.fetch(self.batch_size, self.poll_interval)
        if deliveries:
            await self._apply(deliveries)
            self._meter.add(time.monotonic(), len(deliveries))
        return len(deliveries)

    async def _apply(self, deliveries: Sequence[Delivery]) -> None:
        try:
            await self._transact(deliveries)
        except _Failed:
            # Rolled back whole: apply the messages one at a time, to find the one at fault.
            for delivery in deliveries:
                try:
                    await self._transact([delivery])
                except _Failed as failed:
                    await self._on_failure(delivery, failed)

    async def _transact(
        self, deliveries: Sequence[Delivery], parked: DeadLetter | None = None
    ) -> None:
        prefix, consumer = self.table_prefix, self.name

        def body(tx: ProjectionTransaction) -> tuple[int, int, dict[str, int]]:
            tables = FeedTables(tx.connection, prefix)
            position, dropped, moved = self._position, 0, {}
            for index, delivery in enumerate(deliveries):
                record = delivery.record
                moved[delivery.source] = delivery.offset
                if record.version <= tables.version(consumer, record.stream_id):
                    dropped += 1
                    continue
                self._handle(index, record, self._handlers(record.event_type, parked), tx)
                tables.save_version(consumer, record.stream_id, record.version)
                position = max(position, record.position)
            if parked is not None:
                tx.park(parked)
            for source, offset in moved.items():
                tables.save_position(consumer, source, offset)
            tx.save_checkpoint(consumer, Checkpoint(position, _CONSUMER_VERSION))
            for projection in self._projections.values():
                tx.save_checkpoint(projection.name, Checkpoint(position, projection.version))
            return position, dropped, moved

        self._position, dropped, moved = await self._storage.run_projection_transaction(body)
        self.duplicates += dropped
        self.source.committed(moved)
        self._committed()

    def _handle(self, index: int, record: EventRecord, handlers: list[Projection], tx: Any) -> None:
        if not handlers:
            return
        try:
            recorded = self.store.codec.decode(record)
        except Exception as exc:
            raise _Failed(index, handlers[0].name, exc) from exc
        for projection in handlers:
            try:
                projection.handle(recorded, tx.connection)
            except Exception as exc:
                raise _Failed(index, projection.name, exc) from exc

    def _handlers(self, event_type: str, parked: DeadLetter | None) -> list[Projection]:
        # The projections that want the event, less one that parked it.
        chosen = []
        for projection in self._projections.values():
            wanted = self._types[projection.name]
            if (wanted is None or event_type in wanted) and (
                parked is None or projection.name != parked.projection
            ):
                chosen.append(projection)
        return chosen

    async def _on_failure(self, delivery: Delivery, failed: _Failed) -> None:
        projection = self._projections[failed.projection]
        record, error, retries = delivery.record, failed.error, 0
        while True:
            action, delay = next_action(projection.error_policy, retries)
            if action is Action.STOP:
                raise failure(projection.name, record, error)
            if action is Action.PARK:
                letter = DeadLetter(
                    projection.name,
                    record.position,
                    record.stream_id,
                    record.version,
                    record.event_type,
                    f"{type(error).__name__}: {error}",
                    retries + 1,
                    datetime.now(UTC),
                )
                await self._transact([delivery], parked=letter)
                return
            logger.info(
                "projection %r: retrying the event at position %d in %.3gs after %s: %s",
                projection.name,
                record.position,
                delay,
                type(error).__name__,
                error,
            )
            if await await_event(self._stopping, delay):
                raise failure(projection.name, record, error)
            retries += 1
            try:
                await self._transact([delivery])
            except _Failed as again:
                error = again.error
            else:
                return

    # -- foreground ---------------------------------------------------------------------------

    async def run_until_caught_up(self, *, timeout: float | None = 30.0) -> int:
        """
        Apply every message the broker holds now, here; then return.

        Args:
            timeout: The most seconds to take, waiting for the lock included; no limit
                if None.

        Returns:
            How many messages this call read (duplicates included).

        Raises:
            ProjectionError: A projection stopped at an event.
            BrokerError: The broker failed.
            TimeoutError: *timeout* passed first.
            RuntimeError: The runner runs in the background.
        """
        if self.running:
            raise RuntimeError("the runner runs in the background: use wait_for")
        deadline = None if timeout is None else time.monotonic() + timeout
        read = 0
        try:
            while not await self._take():
                self._check_deadline(deadline)
                await await_event(self._stopping, self.poll_interval)
            await self._prepare()
            while True:
                self._check_deadline(deadline)
                count = await self._step()
                read += count
                if not count and not (await self.source.lag()).messages:
                    return read
        finally:
            await self._let_go()

    @staticmethod
    def _check_deadline(deadline: float | None) -> None:
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError("the broker's messages were not applied in time")

    # -- background ---------------------------------------------------------------------------

    def start(self) -> None:
        """
        Feed the projections in the background until `stop`: a task of the running loop.

        A broker or database failure is logged and retried after a pause that grows to
        5 s while the failure lasts; a projection
        that stops at an event (its error policy) stops the runner, and `status` shows it.

        Raises:
            RuntimeError: The runner already runs.
        """
        if self.running:
            raise RuntimeError("the broker projection runner is already running")
        self._stopping.clear()
        self._error = None
        self._worker = aspawn(self._run, name=f"eventkit-feed-{self.name}")

    async def _run(self) -> None:
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    if not await self._take():
                        await await_event(self._stopping, self.poll_interval)
                        continue
                    if not self._open:
                        await self._prepare()
                    await self._step()
                    failures = 0
                except ProjectionError as error:
                    logger.error("%s", error)  # noqa: TRY400 (the error says it all)
                    self._error = error
                    self._committed()
                    return
                except Exception:  # the broker or the database failed: try again
                    # Pauses grow while the failure lasts, to at most _MAX_PAUSE seconds.
                    pause = min(self.poll_interval * 2**failures, _MAX_PAUSE)
                    failures = min(failures + 1, 32)
                    logger.exception(
                        "consumer %r: reading failed; trying again in %.3gs", self.name, pause
                    )
                    self._open = False
                    await self.source.close()
                    await await_event(self._stopping, pause)
        finally:
            await self._let_go()

    async def stop(self, *, timeout: float | None = None) -> None:
        """
        Stop the background task, release the lock and close the source.

        Raises:
            TimeoutError: The task was still applying a batch after *timeout*.
        """
        worker = self._worker
        if worker is None:
            return
        self._stopping.set()
        if not await ajoin(worker, timeout):
            raise TimeoutError(f"the broker projection runner did not stop within {timeout}s")
        self._worker = None

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

    def _committed(self) -> None:
        changed, self._changed = self._changed, AEvent()
        changed.set()

    # -- waiting and watching -----------------------------------------------------------------

    async def wait_for(self, position: int, *, timeout: float | None = 10.0) -> None:
        """
        Wait until the read models include the event at the store's *position*.

        Pass the position the write side's append returned, carried to the read side
        (a response header, say), to read your own write there.

        Raises:
            TimeoutError: The read models were still behind after *timeout*.
            ProjectionError: A projection stopped at an event.
        """
        check_number("position", position, integer=True, minimum=0)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            changed = self._changed
            checkpoints = await self._storage.projection_checkpoints()
            behind = [
                name
                for name in self._projections
                if name not in checkpoints or checkpoints[name].position < position
            ]
            if not behind:
                return
            if self._error is not None:
                raise self._error
            remaining = self.poll_interval
            if deadline is not None:
                remaining = min(remaining, deadline - time.monotonic())
                if remaining <= 0:
                    raise TimeoutError(
                        f"projections {behind} did not reach position {position} in {timeout}s"
                    )
            await await_event(changed, remaining)

    async def status(self) -> dict[str, ProjectionStatus]:
        """
        Report each projection's position and lag behind the broker.

        ``position`` is the store position of the newest event applied, ``lag_events``
        the messages on the broker not applied yet (duplicates among them included),
        and ``lag_seconds`` how long ago the oldest of them was recorded by the store
        (0 where the broker cannot tell: Kafka). ``head`` is ``position`` for a
        broker-fed read model: the store is out of reach.

        Raises:
            BrokerError: The broker cannot be reached.
        """
        if self._open:
            lag = await self.source.lag()
        else:  # asked of a runner that does not read: look, and leave the source closed
            positions = await self._storage.run_projection_transaction(
                lambda tx: FeedTables(tx.connection, self.table_prefix).positions(self.name)
            )
            self.source.committed(positions)
            try:
                lag = await self.source.lag()
            finally:
                await self.source.close()
        checkpoints = await self._storage.projection_checkpoints()
        dead = {name: await self._storage.dead_letters(name) for name in self._projections}
        now, rate = datetime.now(UTC), self._meter.rate(time.monotonic())
        if self._error is not None:
            state = ProjectionState.FAILED
        elif self._lock is not None:
            state = ProjectionState.ACTIVE
        else:
            state = ProjectionState.STANDBY if self.running else ProjectionState.STOPPED
        report = {}
        for name in self._projections:
            checkpoint = checkpoints.get(name)
            position = checkpoint.position if checkpoint else 0
            report[name] = ProjectionStatus(
                name=name,
                version=checkpoint.version if checkpoint else 0,
                state=state,
                position=position,
                head=position,
                lag_events=lag.messages,
                lag_seconds=lag_seconds(now, lag.oldest) if lag.messages else 0.0,
                events_per_second=rate,
                dead_letters=len(dead[name]),
                error=self._error if state is ProjectionState.FAILED else None,
            )
        return report

    async def dead_letters(self, name: str) -> list[DeadLetter]:
        """Return the events a projection parked, in position order."""
        if name not in self._projections:
            raise ArgumentError(f"no projection named {name!r} in this runner")
        return await self._storage.dead_letters(name)
