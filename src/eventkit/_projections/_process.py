"""
Process managers: react to recorded events by appending new ones, in the batch's transaction.

A process manager is fed like a projection (same runner machinery: lock, checkpoint,
error policies, dead letters, `wait_for`), but its handler's effect is new events. It
appends them through the `ProcessContext` it is handed, which writes through the same
store transaction that moves its checkpoint: the emitted events and the checkpoint
commit together, or neither does. Every emitted event gets an id derived from the
manager's name, the causing event's id and its index among that event's emissions, so
that handling the same event again (after a rollback, or a redelivery on a backend
that cannot hold both in one transaction) emits the same ids, which the store's
idempotent append recognises.
"""

from __future__ import annotations

import abc
import uuid
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from eventkit._aggregate import Aggregate
from eventkit._envelope import ANY, NO_STREAM, NewEvent
from eventkit._projections._policies import ErrorPolicy, RetryOnError
from eventkit._projections._projection import Projection
from eventkit._records import RecordWrite
from eventkit._rules import check_stream_id, check_writes
from eventkit.exceptions import ArgumentError, ArgumentTypeError, StreamNotFound

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from eventkit._envelope import ExpectedVersion, RecordedEvent
    from eventkit._records import AppendResult
    from eventkit._serialization import Codec
    from eventkit._storage import ProjectionTransaction

A = TypeVar("A", bound=Aggregate)

EMITTED_ID_NAMESPACE = uuid.UUID("5b0f6f7e-3c1a-5d2e-9a47-6e76656e746b")
"""The UUID namespace of the ids of events that process managers emit."""


def emitted_event_id(manager: str, cause: uuid.UUID, index: int) -> uuid.UUID:
    """
    Return the id of the *index*-th event (from 0) that *manager* emits for the event *cause*.

    The same inputs always give the same id: handling an event again emits the same
    ids, and the store recognises the repeated append.

    .. versionadded:: 0.1.0
    """
    return uuid.uuid5(EMITTED_ID_NAMESPACE, f"{manager}\x00{cause}\x00{index}")


class ProcessManager(Projection):
    """
    Reacts to recorded events by appending new events: a process manager, or policy.

    Subclass it, set the class attributes and implement `handle`, then run it with a
    `ProcessManagerRunner`:

    .. code-block:: python

        class Transfers(ProcessManager):
            name = "transfers"
            event_types = (TransferRequested, SourceDebited)

            def handle(self, recorded, process):
                match recorded.event:
                    case TransferRequested(transfer_id, source, target, amount):
                        account = process.load(accounts, source)
                        account.debit(amount, transfer_id)   # records an event
                        process.save(accounts, account)

    *process* (a `ProcessContext`) appends through the transaction that also moves
    the manager's checkpoint: on the in-memory, SQLite and PostgreSQL stores the
    emitted events and the checkpoint commit together, so each event is reacted to
    exactly once, however often the process crashes. A handler that raises, or an
    append that conflicts, rolls everything of its event back; the `error_policy`
    then decides (by default: retry a few times, then stop).

    Emitted events carry ``causation_id`` (the id of the event that caused them) and
    ``correlation_id`` (the causing event's, or its id when it has none) in their
    metadata, and ids derived from the causing event's id.

    A process manager is never rebuilt or replayed: its effects are events, and
    replaying would append them again. A new one starts at the first event, or at the
    head when `from_beginning` is False.

    Attributes:
        name: The manager's stable name: its checkpoint, lock and dead letters are
            kept under it, and its emitted events' ids derive from it.
        event_types: The event classes or type names it reacts to; None for all.
        tables: Tables of its own, for state it keeps beside its events (written
            through ``process.connection``, in the same transaction).
        error_policy: What to do when `handle` raises or an append conflicts:
            `RetryOnError` five times by default (a conflict with a concurrent command
            usually passes when the event is handled again), then `StopOnError`.
        from_beginning: Whether a manager that has never run reacts to the events
            stored before it started (True, the default) or only to later ones.

    .. versionadded:: 0.1.0
    """

    error_policy: ErrorPolicy = RetryOnError(attempts=5, delay=0.05, max_delay=2.0)
    from_beginning: bool = True

    @abc.abstractmethod
    def handle(self, recorded: RecordedEvent[Any], process: ProcessContext) -> None:
        """
        React to one recorded event, appending new events through *process*.

        Raise to refuse the event: everything appended for it is rolled back, and the
        `error_policy` decides what happens next.
        """


class _AggregateSource(Protocol):
    # What a Repository or an AsyncRepository offers: its class and its stream naming.
    @property
    def aggregate_type(self) -> type[Any]: ...

    def stream_id(self, aggregate_id: str) -> str: ...


class ProcessContext:
    """
    What a `ProcessManager` reacts through: the causing event, reads and appends.

    Reads and appends run inside the transaction that moves the manager's checkpoint:
    reads see the events appended before them in the same transaction, and nothing is
    visible to others until it commits.

    Attributes:
        cause: The recorded event being handled.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, manager: str, cause: RecordedEvent[Any], tx: ProjectionTransaction, codec: Codec
    ) -> None:
        self.cause = cause
        self._manager = manager
        self._tx = tx
        self._codec = codec
        self._emitted = 0
        self._causal = {
            "correlation_id": cause.metadata.get("correlation_id", str(cause.event_id)),
            "causation_id": str(cause.event_id),
        }

    def __repr__(self) -> str:
        cause = self.cause
        return (
            f"<ProcessContext of {self._manager!r} for {cause.event_type} "
            f"{cause.stream_id!r} version {cause.version}>"
        )

    @property
    def connection(self) -> Any:
        """The store transaction's connection, for tables of the manager's own (or None)."""
        return self._tx.connection

    def append(
        self,
        stream_id: str,
        events: Iterable[Any],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, str] | None = None,
    ) -> AppendResult:
        """
        Append *events* to *stream_id* in this transaction.

        Args:
            stream_id: The stream to append to.
            events: Instances of registered event classes (not `NewEvent`: the ids
                of emitted events are derived from the causing event).
            expected_version: As for `EventStore.append`.
            metadata: Strings stored with each event, beside ``correlation_id`` and
                ``causation_id`` (which these may override).

        Raises:
            ConcurrencyError: The stream is not at *expected_version*. Raised out of
                `ProcessManager.handle`, it rolls the event back and the error policy
                decides.
            ArgumentError, ArgumentTypeError, UnknownEventType, SerializationError:
                As for `EventStore.append`.
        """
        check_stream_id(stream_id)
        merged = {**self._causal, **(metadata or {})}
        records = []
        for event in events:
            if isinstance(event, NewEvent):
                raise ArgumentTypeError(
                    f"process manager {self._manager!r}: append bare events, not NewEvent "
                    "(emitted events get ids derived from the causing event; pass "
                    "metadata= for metadata)"
                )
            event_id = emitted_event_id(self._manager, self.cause.event_id, self._emitted)
            self._emitted += 1
            records.append(self._codec.encode(NewEvent(event, event_id=event_id, metadata=merged)))
        if not records:
            raise ArgumentError(f"process manager {self._manager!r}: nothing to append")
        writes = [RecordWrite(stream_id, tuple(records), expected_version)]
        check_writes(writes)
        appending = getattr(self._tx, "append", None)
        if appending is None:
            raise ArgumentTypeError(
                "this store's projection transactions cannot append events "
                "(ProjectionTransaction.append), which process managers need"
            )
        results: list[AppendResult] = appending(writes)
        return results[0]

    def read_stream(self, stream_id: str) -> list[RecordedEvent[Any]]:
        """
        Return the events of *stream_id*, decoded, as this transaction sees them.

        Raises:
            SerializationError: A stored event cannot be decoded.
        """
        check_stream_id(stream_id)
        decode = self._codec.decode
        return [decode(record) for record in self._tx.read_stream(stream_id)]

    def load(self, repository: _AggregateSource, aggregate_id: str) -> Any:
        """
        Load an aggregate of *repository*'s class from its events in this transaction.

        Every event is replayed (the repository's snapshots are not used here): the
        state is exactly what this transaction sees.

        Args:
            repository: A `Repository` or `AsyncRepository`, for its aggregate class
                and stream naming; its store is not used.
            aggregate_id: The aggregate to load.

        Raises:
            StreamNotFound: No events are stored for *aggregate_id*.
        """
        stream_id = repository.stream_id(aggregate_id)
        history = self.read_stream(stream_id)
        if not history:
            raise StreamNotFound(stream_id)
        aggregate: Aggregate = repository.aggregate_type(id=aggregate_id)
        return aggregate.replay(recorded.event for recorded in history)

    def save(
        self,
        repository: _AggregateSource,
        aggregate: Aggregate,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> AppendResult | None:
        """
        Append the aggregate's pending events in this transaction, expecting its loaded version.

        The events get ids derived from the causing event (not the ids the aggregate
        chose when it recorded them). No snapshot is written.

        Returns:
            What was appended, or None when the aggregate had no pending events.

        Raises:
            ConcurrencyError: The stream changed since the aggregate was loaded.
        """
        pending = aggregate.pending_events
        if not pending:
            return None
        expected = aggregate.saved_version
        result = self.append(
            repository.stream_id(aggregate.id),
            pending,
            expected_version=expected or NO_STREAM,
            metadata=metadata,
        )
        aggregate.mark_saved()
        return result


def is_process_manager(projection: Projection) -> bool:
    """Return whether *projection* is a `ProcessManager`."""
    return isinstance(projection, ProcessManager)
