"""
Every error eventkit raises, in one hierarchy.

Catch `EventKitError` to handle anything from eventkit; catch a subclass to act on
one failure. Builtin mixins keep idiomatic ``except`` clauses working:
`StreamNotFound` is a ``LookupError``, `SerializationError` and `ArgumentError` are
``ValueError``, `RegistrationError` and `ArgumentTypeError` are ``TypeError``.

Each error keeps what went wrong as attributes (the stream, the versions, the event
type) and names them in its message, so a log line alone says which event failed.
Reading never returns a value other than the one written: stored data that does not
fit, or a damaged row, raises a `SerializationError` that says where it is.

`SnapshotWarning` is not an error: it reports a stored snapshot that was ignored.

.. code-block:: text

    EventKitError
    ├── ConcurrencyError            stream_id, expected_version, actual_version
    ├── DuplicateEventIdError       event_id, stream_id, existing_stream_id
    ├── StreamNotFound              stream_id                      (LookupError)
    │   └── VersionNotFoundError    stream_id, version, actual_version
    ├── SerializationError          stream_id, version, event_type, position (ValueError)
    │   ├── UnknownEventType        event_type, schema_version
    │   └── UpcastError             event_type, from_version, upcaster
    ├── ProjectionError             projection, position, stream_id, version, event_type
    ├── StoreError                  the backend failed; the driver's error is __cause__
    ├── BrokerError                 a message broker failed; the client's error is __cause__
    ├── RegistrationError           duplicate @event, upcaster chain gap (TypeError)
    ├── ArgumentError               an argument's value is invalid (ValueError)
    └── ArgumentTypeError           an argument's type is wrong (TypeError)

    UserWarning
    └── SnapshotWarning             a stored snapshot was ignored; loads replay events
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uuid import UUID

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "BrokerError",
    "ConcurrencyError",
    "DuplicateEventIdError",
    "EventKitError",
    "ProjectionError",
    "RegistrationError",
    "SerializationError",
    "SnapshotWarning",
    "StoreError",
    "StreamNotFound",
    "UnknownEventType",
    "UpcastError",
    "VersionNotFoundError",
]


def _expected_repr(expected: object) -> str:
    # The sentinels print as their names; integers as themselves.
    name = getattr(expected, "name", None)
    return name if isinstance(name, str) else repr(expected)


class EventKitError(Exception):
    """
    Base class of every error raised by eventkit.

    .. versionadded:: 0.1.0
    """


class ConcurrencyError(EventKitError):
    """
    An append's expected version did not match the stream.

    Another writer changed the stream since it was read. Reload the aggregate, re-run
    the command and save again; nothing was written by the failed append.

    Attributes:
        stream_id: The stream whose version did not match.
        expected_version: What the caller expected: an int, `NO_STREAM`,
            `STREAM_EXISTS` or `ANY`.
        actual_version: The stream's version when the append was tried (0 when the
            stream did not exist).

    .. versionadded:: 0.1.0
    """

    def __init__(self, stream_id: str, expected_version: object, actual_version: int) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"stream {stream_id!r}: expected version {_expected_repr(expected_version)}, "
            f"actual version {actual_version}"
        )


class DuplicateEventIdError(EventKitError):
    """
    An appended event's id is already used by a different event.

    Event ids are unique in a store. Re-appending the very same events to the same
    stream is idempotent and does not raise; this error means the ids collide with
    other events (another stream, or a different position in this stream).

    Attributes:
        event_id: The colliding id.
        stream_id: The stream that was being appended to.
        existing_stream_id: The stream that already holds an event with this id.

    .. versionadded:: 0.1.0
    """

    def __init__(self, event_id: UUID, stream_id: str, existing_stream_id: str) -> None:
        self.event_id = event_id
        self.stream_id = stream_id
        self.existing_stream_id = existing_stream_id
        super().__init__(
            f"stream {stream_id!r}: event id {event_id} is already used by an event "
            f"in stream {existing_stream_id!r}"
        )


class StreamNotFound(EventKitError, LookupError):  # noqa: N818 (a contract name, see DESIGN)
    """
    A stream that had to exist does not.

    Attributes:
        stream_id: The missing stream.

    .. versionadded:: 0.1.0
    """

    def __init__(self, stream_id: str, message: str | None = None) -> None:
        self.stream_id = stream_id
        super().__init__(message or f"stream {stream_id!r} does not exist")


class VersionNotFoundError(StreamNotFound):
    """
    A stream exists but has not reached the version asked for.

    Attributes:
        stream_id: The stream.
        version: The version asked for.
        actual_version: The stream's current version.

    .. versionadded:: 0.1.0
    """

    def __init__(self, stream_id: str, version: int, actual_version: int) -> None:
        self.version = version
        self.actual_version = actual_version
        super().__init__(
            stream_id,
            f"stream {stream_id!r} has no version {version} (its version is {actual_version})",
        )


class SerializationError(EventKitError, ValueError):
    """
    An event could not be turned into stored data, or stored data back into an event.

    Nothing is written when encoding fails; when decoding fails the stored event is
    left as it was. The underlying error is chained as ``__cause__``.

    Reading raises it, rather than return anything but the value that was written,
    when stored data does not fit its class (a ``null`` where a string was written, a
    float where a ``Decimal`` was, a key the class does not have), when an
    upcaster returns data that does not fit, and when a stored row itself is damaged
    (metadata that is not a JSON object of strings, an event id that is not 16 bytes,
    a version that is not an integer, a damaged snapshot row). Its message names the
    row and, for data, the path of the field at fault (``$.amount``).

    Attributes:
        stream_id: The event's stream, when known.
        version: The event's version in its stream, when known.
        event_type: The event's type name (or class name when encoding).
        position: The event's global position, when known.
        detail: What was wrong with the data.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        detail: str,
        *,
        stream_id: str | None = None,
        version: int | None = None,
        event_type: str | None = None,
        position: int | None = None,
    ) -> None:
        self.detail = detail
        self.stream_id = stream_id
        self.version = version
        self.event_type = event_type
        self.position = position
        super().__init__(self._where() + detail)

    def _where(self) -> str:
        parts = []
        if self.stream_id is not None:
            parts.append(f"stream {self.stream_id!r}")
        if self.version is not None:
            parts.append(f"version {self.version!r}")
        if self.position is not None:
            parts.append(f"position {self.position!r}")
        if self.event_type is not None:
            parts.append(f"event type {self.event_type!r}")
        return (", ".join(parts) + ": ") if parts else ""


class UnknownEventType(SerializationError):  # noqa: N818 (a contract name, see DESIGN)
    """
    An event type name (or class) is not registered.

    Raised when reading a stored event whose type name no registry entry knows, and when
    appending an instance of a class that was never decorated with `eventkit.event`.

    Attributes:
        event_type: The unknown type name.
        schema_version: The stored schema version, when reading.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        event_type: str,
        *,
        schema_version: int | None = None,
        stream_id: str | None = None,
        version: int | None = None,
        detail: str | None = None,
        position: int | None = None,
    ) -> None:
        self.schema_version = schema_version
        super().__init__(
            detail or "no event class is registered under this name",
            stream_id=stream_id,
            version=version,
            event_type=event_type,
            position=position,
        )


class UpcastError(SerializationError):
    """
    Stored data could not be brought up to the event's current schema version.

    Raised when an upcaster fails, when no chain leads from the stored version to the
    current one, when the stored version is newer than the code knows (typically
    after a rollback of the code), and when the data an upcaster chain returns does
    not fit the event's class (then *upcaster* names the chain's last step).

    Attributes:
        from_version: The schema version the failing step started from.
        upcaster: The qualified name of the failing upcaster, if one ran.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        detail: str,
        *,
        event_type: str,
        from_version: int,
        upcaster: str | None = None,
        stream_id: str | None = None,
        version: int | None = None,
        position: int | None = None,
    ) -> None:
        self.from_version = from_version
        self.upcaster = upcaster
        super().__init__(
            detail, stream_id=stream_id, version=version, event_type=event_type, position=position
        )


class ProjectionError(EventKitError):
    """
    A projection's handler failed on an event.

    The projection's checkpoint stays before the failing event. The handler's
    exception is chained as ``__cause__``.

    Attributes:
        projection: The projection's name.
        position: The failing event's global position.
        stream_id: The failing event's stream.
        version: The failing event's version in its stream.
        event_type: The failing event's type name.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        projection: str,
        position: int,
        *,
        stream_id: str | None = None,
        version: int | None = None,
        event_type: str | None = None,
        detail: str = "handler failed",
    ) -> None:
        self.projection = projection
        self.position = position
        self.stream_id = stream_id
        self.version = version
        self.event_type = event_type
        where = f"projection {projection!r} at position {position}"
        if stream_id is not None:
            where += f" (stream {stream_id!r} version {version}, event type {event_type!r})"
        super().__init__(f"{where}: {detail}")


class StoreError(EventKitError):
    """
    The storage backend failed (disk, database, connection).

    The driver's exception is chained as ``__cause__``. A failed append wrote nothing.

    .. versionadded:: 0.1.0
    """


class BrokerError(EventKitError):
    """
    A message broker (NATS JetStream, Kafka) refused or failed a publish or a read.

    The broker client's exception, if any, is chained as ``__cause__``. A relay retries
    the same events after it; nothing is skipped.

    .. versionadded:: 0.1.0
    """


class RegistrationError(EventKitError, TypeError):
    """
    An event class, type name or upcaster was registered wrongly.

    Raised at import or start-up time, never while reading events: a class that is not
    an attrs class, a type name used twice, a gap in an upcaster chain.

    .. versionadded:: 0.1.0
    """


class ArgumentError(EventKitError, ValueError):
    """
    An argument's value is invalid.

    A negative version, an empty stream id, two options that exclude each other.
    Raised before anything is read or written. It is a ``ValueError``, so code that
    catches ``ValueError`` keeps working, and an `EventKitError`, so that
    ``except EventKitError`` catches everything eventkit raises.

    .. versionadded:: 0.1.0
    """


class ArgumentTypeError(EventKitError, TypeError):
    """
    An argument has the wrong type.

    A version that is not an int, a policy that is not callable, a record of another
    class. Raised before anything is read or written; a ``TypeError`` and an
    `EventKitError`.

    .. versionadded:: 0.1.0
    """


class SnapshotWarning(UserWarning):
    """
    A stored snapshot was ignored, or could not be written.

    It is damaged, or no longer fits its aggregate class or stream. A snapshot is
    only a shortcut, so this never fails a load or a save: the aggregate is replayed
    from its events, and the snapshot is replaced at its next save. The
    same report goes to the ``eventkit.snapshots`` logger. Test suites that turn
    warnings into errors see it; assert it with ``pytest.warns(SnapshotWarning)``.

    .. versionadded:: 0.1.0
    """
