"""
Writing a backend: the store base class, the records backends speak, and the rules.

A backend subclasses `BaseEventStore` and implements its storage methods, which see
only records (`NewRecord` and `RecordWrite` in, `EventRecord` out, `SnapshotRecord`
both ways). Inside its append transaction it reads stream versions, calls
`decide_append`, stores the rows of the returned `AppendPlan` and reports
`AppendPlan.results`: every backend decides conflicts and idempotent retries the
same way. To run projections it also implements `ProjectionStore` (checkpoints, dead
letters, a transaction, a lock per projection); `ThreadBoundLocks` and `lock_file`
are ready-made locks. ``eventkit.testing`` holds the conformance suites that prove a
backend can replace any other. See :doc:`/how-to/write-a-backend`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from eventkit._events import UpcastStep
from eventkit._exports import claim as _claim
from eventkit._projection_store import ProjectionLock, ProjectionStore, ThreadBoundLocks
from eventkit._projection_store_async import (
    AsyncProjectionLock,
    AsyncProjectionStore,
    TaskBoundLocks,
)
from eventkit._records import (
    Checkpoint,
    EventRecord,
    NewRecord,
    RecordWrite,
    SnapshotRecord,
    StoredEventRef,
)
from eventkit._rules import (
    AppendPlan,
    PlannedRow,
    check_expected_version,
    check_stream_id,
    check_writes,
    decide_append,
    resolve_existing,
)
from eventkit._serialization import Codec
from eventkit._storage import (
    FileLock,
    ProjectionLockLostError,
    ProjectionTransaction,
    RetryTransaction,
    TransactionAborted,
    lock_file,
)
from eventkit._store import BaseEventStore
from eventkit._store_async import AsyncBaseEventStore
from eventkit._upcasting import UpcastChain, UpcastChains

__all__ = [
    "AppendPlan",
    "AsyncBaseEventStore",
    "AsyncProjectionLock",
    "AsyncProjectionStore",
    "BaseEventStore",
    "Checkpoint",
    "Codec",
    "EventRecord",
    "FileLock",
    "NewRecord",
    "PlannedRow",
    "ProjectionLock",
    "ProjectionLockLostError",
    "ProjectionStore",
    "ProjectionTransaction",
    "RecordWrite",
    "RetryTransaction",
    "SnapshotRecord",
    "StoredEventRef",
    "TaskBoundLocks",
    "ThreadBoundLocks",
    "TransactionAborted",
    "UpcastChain",
    "UpcastChains",
    "UpcastStep",
    "check_expected_version",
    "check_stream_id",
    "check_writes",
    "decide_append",
    "lock_file",
    "resolve_existing",
]

_claim("eventkit.backends", globals(), __all__)
