"""
eventkit: event sourcing for Python.

Define events (`event`) and aggregates (`Aggregate`), keep them in an event store
(`InMemoryEventStore`, `SQLiteEventStore`), load and save them through a `Repository`,
which can keep snapshots beside the events, and build read models with a
`ProjectionRunner`.
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
from eventkit._events import EventRegistry, EventType, default_registry, event, upcaster
from eventkit._migration import (
    MigrationReport,
    VerifyFailure,
    VerifyGroup,
    VerifyReport,
    migrate,
    verify,
)
from eventkit._projection_store import (
    Checkpoint,
    DeadLetter,
    ProjectionLock,
    ProjectionStore,
    ProjectionTransaction,
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
from eventkit._repository import Repository
from eventkit._serialization import Codec, EventRecord, NewRecord, make_converter
from eventkit._snapshots import SnapshotPolicy, SnapshotProgress
from eventkit._store import (
    AppendResult,
    BaseEventStore,
    EventStore,
    RecordWrite,
    SnapshotRecord,
    StoredEventRef,
    StreamAppend,
    check_expected_version,
    resolve_existing,
)
from eventkit._upcasting import (
    ContextUpcaster,
    RetiredEvent,
    UpcastChain,
    UpcastContext,
    Upcaster,
    UpcastStep,
)
from eventkit.exceptions import (
    ConcurrencyError,
    DuplicateEventIdError,
    EventKitError,
    ProjectionError,
    RegistrationError,
    SerializationError,
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
    "BaseEventStore",
    "Checkpoint",
    "Codec",
    "ConcurrencyError",
    "ContextUpcaster",
    "DeadLetter",
    "DuplicateEventIdError",
    "ErrorPolicy",
    "EventKitError",
    "EventRecord",
    "EventRegistry",
    "EventStore",
    "EventType",
    "ExpectedVersion",
    "InMemoryEventStore",
    "MigrationReport",
    "NewEvent",
    "NewRecord",
    "ParkOnError",
    "Projection",
    "ProjectionError",
    "ProjectionLock",
    "ProjectionRunner",
    "ProjectionState",
    "ProjectionStatus",
    "ProjectionStore",
    "ProjectionTransaction",
    "RecordWrite",
    "RecordedEvent",
    "RegistrationError",
    "Repository",
    "RetiredEvent",
    "RetryOnError",
    "SQLiteEventStore",
    "SerializationError",
    "SnapshotPolicy",
    "SnapshotProgress",
    "SnapshotRecord",
    "StopOnError",
    "StoreError",
    "StoredEventRef",
    "StreamAppend",
    "StreamNotFound",
    "StreamState",
    "UnknownEventType",
    "UpcastChain",
    "UpcastContext",
    "UpcastError",
    "UpcastStep",
    "Upcaster",
    "VerifyFailure",
    "VerifyGroup",
    "VerifyReport",
    "VersionNotFoundError",
    "check_expected_version",
    "default_registry",
    "event",
    "exceptions",
    "make_converter",
    "migrate",
    "resolve_existing",
    "upcaster",
    "verify",
]

# Reprs, tracebacks and the docs name the public path (eventkit.Repository), not the
# private module a name happens to live in.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("eventkit._"):
        _obj.__module__ = "eventkit"
del _name, _obj


def __getattr__(name: str) -> Any:
    # Resolved lazily: reading the installed version costs a metadata lookup at import.
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 (deferred on purpose)

        return version("eventkit-es")  # the distribution's name on the package index
    raise AttributeError(f"module 'eventkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
