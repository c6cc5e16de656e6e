"""
eventkit: event sourcing for Python.

Define events (`event`) and aggregates (`Aggregate`), keep them in an event store
(`InMemoryEventStore`, `SQLiteEventStore`), load and save them through a `Repository`,
which can keep snapshots beside the events, and build read models with a
`ProjectionRunner`.

This module holds what applications use. What people writing a backend need (the
store base class, records, the append rules, projection storage) is in
`eventkit.backends`.
"""

from __future__ import annotations

from typing import Any

from eventkit import exceptions
from eventkit._aggregate import Aggregate
from eventkit._backends.memory import InMemoryEventStore
from eventkit._backends.sqlite import SQLiteEventStore
from eventkit._envelope import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamState,
)
from eventkit._events import (
    ContextUpcaster,
    EventRegistry,
    EventType,
    RetiredEvent,
    UpcastContext,
    Upcaster,
    default_registry,
    event,
    upcaster,
)
from eventkit._exports import claim as _claim
from eventkit._migration import (
    MigrationReport,
    VerifyFailure,
    VerifyGroup,
    VerifyReport,
    migrate,
    verify,
)
from eventkit._projections import (
    ErrorPolicy,
    ParkOnError,
    Projection,
    ProjectionRunner,
    ProjectionState,
    ProjectionStatus,
    RetryOnError,
    StopOnError,
)
from eventkit._records import AppendResult, DeadLetter
from eventkit._repository import Repository
from eventkit._serialization import make_converter
from eventkit._snapshots import SnapshotPolicy, SnapshotProgress
from eventkit._store import EventStore, StreamAppend
from eventkit._upcasting import check_upcasters
from eventkit.exceptions import (
    ArgumentError,
    ArgumentTypeError,
    ConcurrencyError,
    DuplicateEventIdError,
    EventKitError,
    ProjectionError,
    RegistrationError,
    SerializationError,
    SnapshotWarning,
    StoreError,
    StreamNotFound,
    UnknownEventType,
    UpcastError,
    VersionNotFoundError,
)

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "Aggregate",
    "AppendResult",
    "ArgumentError",
    "ArgumentTypeError",
    "ConcurrencyError",
    "ContextUpcaster",
    "DeadLetter",
    "DuplicateEventIdError",
    "ErrorPolicy",
    "EventKitError",
    "EventRegistry",
    "EventStore",
    "EventType",
    "ExpectedVersion",
    "InMemoryEventStore",
    "MigrationReport",
    "NewEvent",
    "ParkOnError",
    "Projection",
    "ProjectionError",
    "ProjectionRunner",
    "ProjectionState",
    "ProjectionStatus",
    "RecordedEvent",
    "RegistrationError",
    "Repository",
    "RetiredEvent",
    "RetryOnError",
    "SQLiteEventStore",
    "SerializationError",
    "SnapshotPolicy",
    "SnapshotProgress",
    "SnapshotWarning",
    "StopOnError",
    "StoreError",
    "StreamAppend",
    "StreamNotFound",
    "StreamState",
    "UnknownEventType",
    "UpcastContext",
    "UpcastError",
    "Upcaster",
    "VerifyFailure",
    "VerifyGroup",
    "VerifyReport",
    "VersionNotFoundError",
    "check_upcasters",
    "default_registry",
    "event",
    "exceptions",
    "make_converter",
    "migrate",
    "upcaster",
    "verify",
]

_claim("eventkit", globals(), __all__)


def __getattr__(name: str) -> Any:
    # Resolved lazily: reading the installed version costs a metadata lookup at import.
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 (deferred on purpose)

        return version("eventkit")
    raise AttributeError(f"module 'eventkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
