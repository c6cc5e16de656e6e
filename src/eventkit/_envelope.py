"""The envelope: what the store knows about an event, and how to ask for an append."""

from __future__ import annotations

import enum
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar, cast

import attrs

from eventkit.exceptions import ArgumentTypeError

E = TypeVar("E", covariant=True)  # noqa: PLC0105 (the event type parameter of RecordedEvent)

# The bits uuid.uuid4 sets: version 4, RFC 4122 variant.
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (4 << 76) | (0x8000 << 48)


def _fast_uuid4() -> uuid.UUID:
    # uuid.uuid4() builds its UUID through UUID.__init__, whose argument checks in Python
    # cost as much as the random bytes; an append makes one id per event. This makes the
    # same value from the same source and fills the two slots that UUID.__init__ fills.
    value = object.__new__(uuid.UUID)
    object.__setattr__(value, "int", int.from_bytes(os.urandom(16)) & _V4_CLEAR | _V4_SET)
    object.__setattr__(value, "is_safe", uuid.SafeUUID.unknown)
    return value


def _checked_uuid4() -> Any:
    try:
        sample = _fast_uuid4()
        same = sample == uuid.UUID(str(sample), version=4) and hash(sample) == hash(
            uuid.UUID(str(sample))
        )
    except (AttributeError, TypeError):  # pragma: no cover (a Python whose UUID differs)
        same = False
    return _fast_uuid4 if same else uuid.uuid4  # pragma: no branch


new_event_id: Callable[[], uuid.UUID] = _checked_uuid4()
"""Return a new random (version 4) UUID, as `uuid.uuid4` does, for an event's id."""


class StreamState(enum.Enum):
    """
    Expected-version sentinels for `BaseEventStore.append` that are not a plain version number.

    .. versionadded:: 0.1.0
    """

    NO_STREAM = "NO_STREAM"
    """The stream must not exist yet (same as expected version 0)."""
    STREAM_EXISTS = "STREAM_EXISTS"
    """The stream must already hold at least one event."""
    ANY = "ANY"
    """Append whatever the stream's version: no concurrency check."""

    def __repr__(self) -> str:
        return self.name


NO_STREAM: Final = StreamState.NO_STREAM
STREAM_EXISTS: Final = StreamState.STREAM_EXISTS
ANY: Final = StreamState.ANY

ExpectedVersion: TypeAlias = (
    Literal[StreamState.NO_STREAM, StreamState.STREAM_EXISTS, StreamState.ANY] | int
)
"""What `BaseEventStore.append` accepts as *expected_version*: an int >= 0 or a `StreamState`."""


def _metadata_dict(value: Mapping[str, str]) -> dict[str, str]:
    # Validated here rather than trusted from the annotation: metadata often comes from
    # request headers or message properties, where a stray int is easy to pass.
    result = dict(value)  # a copy: the caller's dict must not change a frozen event
    for key, item in cast("Mapping[object, object]", result).items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ArgumentTypeError(
                f"event metadata must map str to str; got {key!r}: {item!r} "
                f"({type(key).__name__} -> {type(item).__name__})"
            )
    return result


def _uuid(_: object, __: attrs.Attribute[uuid.UUID], value: object) -> None:
    if not isinstance(value, uuid.UUID):
        raise ArgumentTypeError(f"event_id must be a UUID, got {value!r}")


@attrs.frozen
class NewEvent:
    """
    An event to append, with the id and metadata it should be stored with.

    Pass bare events to `BaseEventStore.append` when the defaults do; wrap them in `NewEvent` to
    choose the id (for idempotent retries) or to attach metadata such as
    ``correlation_id`` and ``causation_id``.

    Args:
        event: An instance of a registered event class.
        event_id: The event's unique id; a random UUID when omitted. Re-appending
            already stored events (same ids, same stream, same order, and an expected
            version the first append satisfied) stores nothing and succeeds; see
            `resolve_existing` for the exact rule and the errors otherwise.
        metadata: Strings to store beside the event.

    .. versionadded:: 0.1.0
    """

    event: Any
    event_id: uuid.UUID = attrs.field(factory=new_event_id, validator=_uuid, kw_only=True)
    metadata: Mapping[str, str] = attrs.field(factory=dict, converter=_metadata_dict, kw_only=True)


@attrs.frozen
class RecordedEvent(Generic[E]):
    """
    An event as read back from a store, with everything the store knows about it.

    Attributes:
        stream_id: The stream the event belongs to.
        version: The event's 1-based version within its stream.
        position: The event's global position: strictly increasing in the order that
            readers of `BaseEventStore.read_all` see events (there may be gaps).
        event_id: The event's unique id.
        recorded_at: When the store recorded the event (UTC).
        metadata: The strings stored beside the event.
        event_type: The event's type name: the stored one, or the name an upcaster
            renamed it to.
        event: The domain event, at its class's current schema version (a
            `RetiredEvent` for a retired type).

    .. versionadded:: 0.1.0
    """

    stream_id: str
    version: int
    position: int
    event_id: uuid.UUID
    recorded_at: datetime
    metadata: Mapping[str, str]
    event_type: str
    event: E


def _event_tuple(events: object) -> tuple[Any, ...]:
    if isinstance(events, NewEvent) or attrs.has(type(events)) or not isinstance(events, Iterable):
        raise ArgumentTypeError(
            f"events must be a list of events, got a single {type(events).__qualname__}; "
            "wrap it in a list"
        )
    return tuple(events)


@attrs.frozen
class StreamAppend:
    """
    One stream's part of an atomic multi-stream `EventStore.append_many`.

    Args:
        stream_id: The stream to append to.
        events: Bare events or `NewEvent` wrappers.
        expected_version: As for `EventStore.append`.

    .. versionadded:: 0.1.0
    """

    stream_id: str
    events: Sequence[Any] = attrs.field(converter=_event_tuple)
    expected_version: ExpectedVersion = ANY
