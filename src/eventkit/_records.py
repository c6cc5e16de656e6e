"""
Records: what backends store and return, as plain tuples of strings, numbers and ids.

Backends never see domain objects. Events arrive encoded (`NewRecord`, grouped per
stream in a `RecordWrite`) and leave as stored (`EventRecord`); snapshots, checkpoints
and dead letters are records too. Nothing here does I/O or knows about JSON: the codec
fills the text fields, backends keep them exactly as given.
"""

from __future__ import annotations

# At run time, so that the records' annotations resolve (typing.get_type_hints, the docs).
from datetime import datetime  # noqa: TC003
from typing import TYPE_CHECKING, NamedTuple
from uuid import UUID  # noqa: TC003

if TYPE_CHECKING:
    from eventkit._envelope import ExpectedVersion


class NewRecord(NamedTuple):
    """
    An encoded event on its way into a backend.

    Attributes:
        event_id: The event's unique id.
        event_type: The registered type name.
        schema_version: The schema version the data is written at.
        data: The event as JSON text.
        metadata: The metadata as JSON text (``"{}"`` when there is none).
        recorded_at: When the event was first recorded (timezone-aware), for tooling
            that copies events between stores (``eventkit import``); None, as the
            codec leaves it, lets the store record the time of the append.

    Backends store a given *recorded_at* exactly, to the microsecond, in UTC.

    .. versionadded:: 0.1.0
    """

    event_id: UUID
    event_type: str
    schema_version: int
    data: str
    metadata: str
    recorded_at: datetime | None = None


class EventRecord(NamedTuple):
    """
    A stored event exactly as a backend holds it, before decoding and upcasting.

    Tooling (migrations, verification, exports) reads these through a store's
    ``read_all_records`` and ``read_stream_records``.

    .. versionadded:: 0.1.0
    """

    stream_id: str
    version: int
    position: int
    event_id: UUID
    event_type: str
    schema_version: int
    data: str
    metadata: str
    recorded_at: datetime


class RecordWrite(NamedTuple):
    """
    One stream's part of an append, as a backend receives it: validated and encoded.

    .. versionadded:: 0.1.0
    """

    stream_id: str
    records: tuple[NewRecord, ...]
    expected_version: ExpectedVersion


class AppendResult(NamedTuple):
    """
    What an append wrote to one stream.

    Attributes:
        stream_id: The stream appended to.
        version: The stream version of the last event of this append (for an empty
            append, the stream's current version).
        positions: The global positions of the appended events, in order. An
            idempotent re-append returns the positions stored the first time.

    .. versionadded:: 0.1.0
    """

    stream_id: str
    version: int
    positions: tuple[int, ...]


class StoredEventRef(NamedTuple):
    """
    Where an event id is already stored: what backends report to `decide_append`.

    .. versionadded:: 0.1.0
    """

    stream_id: str
    version: int
    position: int


class SnapshotRecord(NamedTuple):
    """
    An aggregate's state at one version, as a backend stores it beside the events.

    A store keeps one snapshot per stream, the one saved last. The `Repository` writes
    and reads them; backends only store and return them.

    Attributes:
        stream_id: The aggregate's stream.
        aggregate_type: The aggregate class's name, to tell classes apart.
        version: The stream version the state includes: the events after it are
            applied on top when the aggregate is loaded.
        event_id: The id of the event at *version*, so that a snapshot whose stream was
            rewritten (a store restored from a backup) is recognized and ignored.
        snapshot_version: The aggregate class's ``snapshot_version`` when the state was
            taken; a snapshot of another version is ignored.
        state: The aggregate's fields as JSON text, from the store's codec.
        taken_at: When the snapshot was taken (UTC).
        build_seconds: How long building the state took: serializing it, plus
            replaying the stream when the aggregate had to be loaded first.

    .. versionadded:: 0.1.0
    """

    stream_id: str
    aggregate_type: str
    version: int
    event_id: UUID
    snapshot_version: int
    state: str
    taken_at: datetime
    build_seconds: float


class Checkpoint(NamedTuple):
    """
    How far a projection has got: every event at or below *position* is handled.

    Attributes:
        position: The global position of the last event the read model includes
            (0: none yet).
        version: The projection version that built the read model.

    .. versionadded:: 0.1.0
    """

    position: int
    version: int


class DeadLetter(NamedTuple):
    """
    An event a projection could not handle, parked so that it could go on.

    Attributes:
        projection: The projection's name.
        position: The event's global position.
        stream_id: The event's stream.
        version: The event's version in its stream.
        event_type: The event's stored type name.
        error: The error, as ``"ExceptionType: message"``.
        attempts: How many times handling it failed.
        parked_at: When it was (last) parked, in UTC.

    .. versionadded:: 0.1.0
    """

    projection: str
    position: int
    stream_id: str
    version: int
    event_type: str
    error: str
    attempts: int
    parked_at: datetime
