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

import importlib
from typing import Any

from eventkit import exceptions
from eventkit._aggregate import Aggregate
from eventkit._backends.memory import InMemoryEventStore
from eventkit._backends.memory_async import AsyncInMemoryEventStore
from eventkit._backends.sqlite import AsyncSQLiteEventStore, SQLiteEventStore
from eventkit._envelope import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamAppend,
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
from eventkit._migration import migrate, verify
from eventkit._migration_async import migrate_async, verify_async
from eventkit._projections import (
    AsyncProcessManagerRunner,
    AsyncProjectionRunner,
    AsyncSubscriber,
    AsyncSubscriberRunner,
    ErrorPolicy,
    ParkOnError,
    ProcessContext,
    ProcessManager,
    ProcessManagerRunner,
    Projection,
    ProjectionRunner,
    ProjectionState,
    ProjectionStatus,
    RetryOnError,
    StopOnError,
    Subscriber,
    SubscriberRunner,
)
from eventkit._records import AppendResult, DeadLetter
from eventkit._relay._message import BrokerMessage
from eventkit._relay._reader import BrokerProjectionRunner
from eventkit._relay._relay import Publisher, Relay
from eventkit._relay._source import Delivery, Lag, Source
from eventkit._reports import MigrationReport, VerifyFailure, VerifyGroup, VerifyReport
from eventkit._repository import Repository
from eventkit._repository_async import AsyncRepository
from eventkit._serialization import make_converter
from eventkit._snapshots import SnapshotPolicy, SnapshotProgress
from eventkit._store import EventStore
from eventkit._store_async import AsyncEventStore
from eventkit._upcasting import check_upcasters
from eventkit._urls import open_store
from eventkit.exceptions import (
    ArgumentError,
    ArgumentTypeError,
    BrokerError,
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
    "AsyncEventStore",
    "AsyncInMemoryEventStore",
    "AsyncPostgresEventStore",
    "AsyncProcessManagerRunner",
    "AsyncProjectionRunner",
    "AsyncRepository",
    "AsyncSQLiteEventStore",
    "AsyncSubscriber",
    "AsyncSubscriberRunner",
    "BrokerError",
    "BrokerMessage",
    "BrokerProjectionRunner",
    "ConcurrencyError",
    "ContextUpcaster",
    "DeadLetter",
    "Delivery",
    "DuplicateEventIdError",
    "ErrorPolicy",
    "EventKitError",
    "EventRegistry",
    "EventStore",
    "EventType",
    "ExpectedVersion",
    "FeedDelay",
    "InMemoryEventStore",
    "KafkaPublisher",
    "KafkaSource",
    "Lag",
    "MigrationReport",
    "NatsPublisher",
    "NatsSource",
    "NewEvent",
    "ParkOnError",
    "PostgresEventStore",
    "ProcessContext",
    "ProcessManager",
    "ProcessManagerRunner",
    "Projection",
    "ProjectionError",
    "ProjectionRunner",
    "ProjectionState",
    "ProjectionStatus",
    "Publisher",
    "RecordedEvent",
    "RegistrationError",
    "Relay",
    "Repository",
    "RetiredEvent",
    "RetryOnError",
    "SQLiteEventStore",
    "SerializationError",
    "SnapshotPolicy",
    "SnapshotProgress",
    "SnapshotWarning",
    "Source",
    "StopOnError",
    "StoreError",
    "StreamAppend",
    "StreamNotFound",
    "StreamState",
    "Subscriber",
    "SubscriberRunner",
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
    "migrate_async",
    "open_store",
    "upcaster",
    "verify",
    "verify_async",
]

# Names whose modules need an optional dependency: imported on first use, so that
# ``import eventkit`` works without it.
_LAZY = {
    "AsyncPostgresEventStore": ("eventkit._backends.postgres", "postgres"),
    "FeedDelay": ("eventkit._backends.postgres", "postgres"),
    "KafkaPublisher": ("eventkit._relay._kafka", "kafka"),
    "KafkaSource": ("eventkit._relay._kafka", "kafka"),
    "NatsPublisher": ("eventkit._relay._nats", "nats"),
    "NatsSource": ("eventkit._relay._nats", "nats"),
    "PostgresEventStore": ("eventkit._backends.postgres", "postgres"),
}

_claim("eventkit", globals(), [name for name in __all__ if name not in _LAZY])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, extra = _LAZY[name]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(
                f"eventkit.{name} needs the {extra!r} extra: pip install 'eventkit-es[{extra}]' "
                f"({exc})"
            ) from exc
        value = getattr(module, name)
        if value.__module__.startswith("eventkit._"):
            value.__module__ = "eventkit"
        globals()[name] = value
        return value
    # Resolved lazily: reading the installed version costs a metadata lookup at import.
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 (deferred on purpose)

        return version("eventkit-es")  # the distribution's name on the package index
    raise AttributeError(f"module 'eventkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
