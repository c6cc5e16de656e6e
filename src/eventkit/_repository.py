"""The repository: loads aggregates from their streams and saves their new events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

import attrs

from eventkit._aggregate import Aggregate
from eventkit._envelope import NO_STREAM, NewEvent
from eventkit.exceptions import StreamNotFound, VersionNotFoundError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventkit._store import AppendResult, EventStore

A = TypeVar("A", bound=Aggregate)


def _check_aggregate_class(aggregate_type: object) -> None:
    if not isinstance(aggregate_type, type) or not issubclass(aggregate_type, Aggregate):
        raise TypeError(f"Repository needs an Aggregate subclass, got {aggregate_type!r}")
    # attrs.has() is true through inheritance; the subclass itself must be decorated, or
    # its fields are shared class attributes that equality and copying ignore.
    if "__attrs_attrs__" not in vars(aggregate_type):
        raise TypeError(f"{aggregate_type.__qualname__} must be decorated with @attrs.define")
    for field in attrs.fields(aggregate_type):
        if field.name != "id" and field.init and field.default is attrs.NOTHING:
            raise TypeError(
                f"{aggregate_type.__qualname__}.{field.name} needs a default: aggregates are "
                "built empty and filled by replaying their events"
            )


class Repository(Generic[A]):
    """
    Loads and saves aggregates of one class through an event store.

    Args:
        store: The event store.
        aggregate_type: The `Aggregate` subclass this repository handles.
        stream_prefix: Prepended to an aggregate id to give its stream id
            (``"account-"`` stores aggregate ``"42"`` in stream ``"account-42"``).

    Raises:
        TypeError: *aggregate_type* is not an attrs `Aggregate` subclass whose fields
            (other than ``id``) all have defaults.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, store: EventStore, aggregate_type: type[A], *, stream_prefix: str = ""
    ) -> None:
        _check_aggregate_class(aggregate_type)
        self.store = store
        self.aggregate_type = aggregate_type
        self.stream_prefix = stream_prefix

    def __repr__(self) -> str:
        return f"<Repository of {self.aggregate_type.__qualname__} in {self.store!r}>"

    def stream_id(self, aggregate_id: str) -> str:
        """Return the id of the stream that holds the aggregate *aggregate_id*."""
        return f"{self.stream_prefix}{aggregate_id}"

    def load(self, aggregate_id: str, *, at_version: int | None = None) -> A:
        """
        Rebuild the aggregate *aggregate_id* from its events.

        Args:
            aggregate_id: The aggregate to load.
            at_version: Load the aggregate as it was at this version (time travel)
                instead of as it is now.

        Raises:
            StreamNotFound: No events are stored for *aggregate_id*.
            VersionNotFoundError: The stream has not reached *at_version*.
            ValueError: *at_version* is not an integer >= 1.
            SerializationError: A stored event cannot be decoded.
        """
        stream_id = self.stream_id(aggregate_id)
        history = self.store.read_stream(stream_id, to_version=at_version)
        if not history:
            raise StreamNotFound(stream_id)
        if at_version is not None and history[-1].version < at_version:
            raise VersionNotFoundError(stream_id, at_version, history[-1].version)
        aggregate = self.aggregate_type(id=aggregate_id)
        return aggregate.replay(recorded.event for recorded in history)

    def save(
        self, aggregate: A, *, metadata: Mapping[str, str] | None = None
    ) -> AppendResult | None:
        """
        Append the aggregate's pending events, if it has any.

        The append expects the stream to be at the version the aggregate was loaded
        at, so a concurrent change is detected rather than overwritten.

        Args:
            aggregate: The aggregate to save.
            metadata: Stored with every event of this save (``correlation_id``, ...).

        Returns:
            What was appended, or None when the aggregate had no pending events.

        Raises:
            ConcurrencyError: The stream changed since the aggregate was loaded. Its
                pending events are kept; reload and retry the command.
        """
        pending = aggregate.pending_events
        if not pending:
            return None
        expected = aggregate.saved_version
        result = self.store.append(
            self.stream_id(aggregate.id),
            [NewEvent(event, metadata=metadata or {}) for event in pending],
            expected_version=expected or NO_STREAM,
        )
        aggregate.mark_saved()
        return result

    def exists(self, aggregate_id: str) -> bool:
        """Return whether any event is stored for the aggregate *aggregate_id*."""
        return self.store.stream_version(self.stream_id(aggregate_id)) > 0
