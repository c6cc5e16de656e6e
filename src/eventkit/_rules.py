"""
The rules every backend applies, as pure functions: no I/O, no encoding.

`decide_append` is the one place that decides an append: for each stream, an
idempotent retry, a conflict, or new events at the next versions. A backend reads
what the decision needs (stream versions, where repeated event ids are stored) inside
its transaction, calls it, stores the rows it plans, and completes the result with
the positions it assigned. The argument checks are here too, so that every backend
refuses the same input with the same error.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple
from uuid import UUID

from eventkit._envelope import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion, StreamState
from eventkit._records import AppendResult, NewRecord, RecordWrite, SnapshotRecord, StoredEventRef
from eventkit.exceptions import (
    ArgumentError,
    ArgumentTypeError,
    ConcurrencyError,
    DuplicateEventIdError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

_NOTHING_FOUND: Mapping[UUID, StoredEventRef] = {}


def check_expected_version(stream_id: str, expected: ExpectedVersion, actual: int) -> None:
    """
    Raise `ConcurrencyError` unless a stream at version *actual* satisfies *expected*.

    Args:
        stream_id: The stream, for the error message.
        expected: An int (0 means "no stream"), `NO_STREAM`, `STREAM_EXISTS` or `ANY`.
        actual: The stream's current version (0 when it does not exist).

    Raises:
        ConcurrencyError: *actual* does not satisfy *expected*.

    .. versionadded:: 0.1.0
    """
    if not _satisfies(expected, actual):
        raise ConcurrencyError(stream_id, expected, actual)


def _satisfies(expected: ExpectedVersion, version: int) -> bool:
    if expected is ANY:
        return True
    if expected is NO_STREAM or expected == 0:
        return version == 0
    if expected is STREAM_EXISTS:
        return version > 0
    return version == expected


def resolve_existing(
    write: RecordWrite, found: Mapping[UUID, StoredEventRef], actual: int
) -> AppendResult:
    """
    Decide an append some of whose event ids are already stored.

    Event ids identify events; their data is not compared. The append is a retry,
    and succeeds without storing anything, when every one of its ids is stored in
    this stream, at consecutive versions in the order given (the whole of an earlier
    append, or a run of stored events), and its expected version would have accepted
    the stream just before the first of them. It then returns what the earlier append
    returned for those events. `decide_append` calls this; backends need not.

    Args:
        write: The append, as the backend received it.
        found: Where each of *write*'s stored event ids is stored.
        actual: The stream's current version, for the error message.

    Raises:
        DuplicateEventIdError: Some ids are new or stored elsewhere, or not as one
            consecutive run in this order: not a retry.
        ConcurrencyError: A retry whose expected version the stream did not have before
            those events (it reports the stream's current version as actual).

    .. versionadded:: 0.1.0
    """
    refs = []
    for record in write.records:
        ref = found.get(record.event_id)
        if ref is None or ref.stream_id != write.stream_id:
            # Some ids are new or live elsewhere: this is not a retry of one earlier append.
            clash = record.event_id if ref is not None else _first_found(write, found)
            raise DuplicateEventIdError(clash, write.stream_id, found[clash].stream_id)
        refs.append(ref)
    first = refs[0].version
    if [ref.version for ref in refs] != list(range(first, first + len(refs))):
        raise DuplicateEventIdError(write.records[0].event_id, write.stream_id, write.stream_id)
    if not _satisfies(write.expected_version, first - 1):
        raise ConcurrencyError(write.stream_id, write.expected_version, actual)
    return AppendResult(write.stream_id, refs[-1].version, tuple(ref.position for ref in refs))


def _first_found(write: RecordWrite, found: Mapping[UUID, StoredEventRef]) -> UUID:
    return next(record.event_id for record in write.records if record.event_id in found)


class PlannedRow(NamedTuple):
    """
    One event an append stores: its stream, its version there, and its record.

    .. versionadded:: 0.1.0
    """

    stream_id: str
    version: int
    record: NewRecord


class _Insert(NamedTuple):
    stream_id: str
    version: int  # the stream's version after the append
    size: int  # how many events it stores


class AppendPlan:
    """
    What `decide_append` decided: the rows to store, and the append's results.

    Store `AppendPlan.rows` in order, then pass the positions given to them to
    `AppendPlan.results`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_outcomes", "_rows")

    def __init__(self, rows: list[PlannedRow], outcomes: list[AppendResult | _Insert]) -> None:
        self._rows = rows
        self._outcomes = outcomes

    @property
    def rows(self) -> list[PlannedRow]:
        """Return the events to store, in order (stream by stream, oldest first)."""
        return self._rows

    def results(self, positions: Sequence[int]) -> list[AppendResult]:
        """
        Return one `AppendResult` per write, given the positions of the rows, in order.

        Raises:
            ArgumentError: *positions* does not hold one position per row.
        """
        if len(positions) != len(self._rows):
            raise ArgumentError(f"expected {len(self._rows)} positions, got {len(positions)}")
        results: list[AppendResult] = []
        start = 0
        for outcome in self._outcomes:
            if isinstance(outcome, AppendResult):
                results.append(outcome)
                continue
            end = start + outcome.size
            results.append(
                AppendResult(outcome.stream_id, outcome.version, tuple(positions[start:end]))
            )
            start = end
        return results


def decide_append(
    writes: Sequence[RecordWrite],
    versions: Sequence[int],
    found: Mapping[UUID, StoredEventRef] = _NOTHING_FOUND,
) -> AppendPlan:
    """
    Decide an append: for each write, an idempotent retry, a conflict, or new events.

    A write some of whose event ids are stored is resolved by `resolve_existing`;
    any other write must satisfy its expected version, and its events go at the
    stream's next versions. Nothing is decided halfway: the first write that fails
    raises, and the backend stores nothing.

    A backend that inserts first and looks ids up only when the insert fails on a
    repeated id (appends of new ids are nearly all of them) calls this without
    *found*, and again with it after the failure. A backend that finds a conflict
    without *found* may look the ids up and call again: the write may be a retry of an
    append that succeeded before the stream moved on.

    Args:
        writes: The append, validated (`check_writes`).
        versions: Each write's stream version, read inside the backend's transaction.
        found: Where event ids of *writes* are stored already, as far as known.

    Returns:
        The rows to store and the results to report once they have positions.

    Raises:
        ConcurrencyError: A stream's version does not satisfy its write's expected
            version (and the write is not a retry).
        DuplicateEventIdError: An event id is stored already, and not as a retry.

    .. versionadded:: 0.1.0
    """
    rows: list[PlannedRow] = []
    outcomes: list[AppendResult | _Insert] = []
    for write, actual in zip(writes, versions, strict=True):
        records = write.records
        if found and any(record.event_id in found for record in records):
            outcomes.append(resolve_existing(write, found, actual))
            continue
        check_expected_version(write.stream_id, write.expected_version, actual)
        stream_id = write.stream_id
        rows.extend(
            PlannedRow(stream_id, version, record)
            for version, record in enumerate(records, start=actual + 1)
        )
        outcomes.append(_Insert(stream_id, actual + len(records), len(records)))
    return AppendPlan(rows, outcomes)


# -- argument checks ------------------------------------------------------------------------


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> bool:
    """
    Return whether every backend can store the string *text* exactly.

    PostgreSQL's ``text`` cannot hold NUL, and no UTF-8 database can hold a lone
    surrogate (half of a UTF-16 pair, which Python strings may contain).

    .. versionadded:: 0.1.0
    """
    # isascii() is a flag check, so the common case costs one scan for NUL.
    return "\x00" not in text and (text.isascii() or not _SURROGATE.search(text))


def check_stream_id(stream_id: object) -> str:
    """
    Return *stream_id* if it can name a stream on every backend, else raise.

    A stream id is any non-empty string without NUL characters and lone surrogates:
    control characters, spaces and text outside the BMP are all fine, and read back
    exactly from every backend.

    Raises:
        ArgumentTypeError: *stream_id* is not a string.
        ArgumentError: *stream_id* is empty, or holds NUL or a lone surrogate.

    .. versionadded:: 0.1.0
    """
    if not isinstance(stream_id, str):
        raise ArgumentTypeError(f"stream_id must be a non-empty string, got {stream_id!r}")
    if not stream_id:
        raise ArgumentError(f"stream_id must be a non-empty string, got {stream_id!r}")
    if not storable(stream_id):
        raise ArgumentError(
            f"stream_id {stream_id!r} holds NUL or a lone surrogate, which not every "
            "backend can store"
        )
    return stream_id


def check_count(name: str, value: object, minimum: int, *, optional: bool = True) -> None:
    """
    Raise unless *value* is an integer >= *minimum* (or None, when *optional*).

    Raises:
        ArgumentTypeError: *value* is not an integer, naming the argument *name*.
        ArgumentError: *value* is below *minimum*, naming the argument *name*.
    """
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_expected_version_arg(stream_id: str, expected: object) -> None:
    """
    Raise unless *expected* is an expected version `BaseEventStore.append` accepts.

    Raises:
        ArgumentTypeError: It is not an int or a `StreamState`.
        ArgumentError: It is a negative int.
    """
    if isinstance(expected, StreamState):
        return
    if isinstance(expected, bool) or not isinstance(expected, int):
        raise ArgumentTypeError(
            f"stream {stream_id!r}: expected_version must be an int, NO_STREAM, "
            f"STREAM_EXISTS or ANY, got {expected!r}"
        )
    if expected < 0:
        raise ArgumentError(f"stream {stream_id!r}: expected_version must be >= 0, got {expected}")


def check_writes(writes: Sequence[RecordWrite]) -> None:
    """
    Raise unless *writes* can be one atomic append that every backend stores exactly.

    Raises:
        ArgumentError: A stream id is invalid or appears twice; a record's type name,
            data or metadata is not text every backend can store.
        ArgumentTypeError: A stream id or a record's field has the wrong type.
        ArgumentTypeError, ArgumentError: An expected version is invalid.
        DuplicateEventIdError: An event id appears twice in the append.
    """
    streams: set[str] = set()
    ids: dict[UUID, str] = {}
    for write in writes:
        check_stream_id(write.stream_id)
        check_expected_version_arg(write.stream_id, write.expected_version)
        if write.stream_id in streams:
            raise ArgumentError(f"stream {write.stream_id!r} appears twice in one append")
        streams.add(write.stream_id)
        for record in write.records:
            if record.recorded_at is not None:
                check_recorded_at(write.stream_id, record.recorded_at)
            other = ids.get(record.event_id)
            if other is not None:
                raise DuplicateEventIdError(record.event_id, write.stream_id, other)
            ids[record.event_id] = write.stream_id
            _check_record(write.stream_id, record)


def _check_record(stream_id: str, record: NewRecord) -> None:
    # What the codec writes always passes; records from tooling are checked here, so
    # that no backend stores what another could not.
    event_type, data, metadata = record.event_type, record.data, record.metadata
    if str is event_type.__class__ is data.__class__ is metadata.__class__:
        if event_type and storable(event_type) and storable(data) and storable(metadata):
            return
        raise ArgumentError(
            f"stream {stream_id!r}: a record's event type must be non-empty, and its type, "
            "data and metadata must hold no NUL or lone surrogate"
        )
    raise ArgumentTypeError(
        f"stream {stream_id!r}: a record's event type, data and metadata must be strings"
    )


def check_recorded_at(stream_id: str, recorded_at: object) -> None:
    """
    Raise unless *recorded_at* is a timezone-aware datetime (a record's given time).

    Raises:
        ArgumentError: Naming the stream.
    """
    if not isinstance(recorded_at, datetime) or recorded_at.utcoffset() is None:
        raise ArgumentError(
            f"stream {stream_id!r}: recorded_at must be a timezone-aware datetime, "
            f"got {recorded_at!r}"
        )


def check_snapshot_record(record: object) -> SnapshotRecord:
    """
    Return *record* if it is a `SnapshotRecord` whose every field is valid, else raise.

    Raises:
        ArgumentTypeError, ArgumentError: Naming the stream and the field at fault.
    """
    if not isinstance(record, SnapshotRecord):
        raise ArgumentTypeError(f"expected a SnapshotRecord, got {type(record).__qualname__}")
    check_stream_id(record.stream_id)
    where = f"snapshot of stream {record.stream_id!r}"
    # Typed as object: the annotations are what callers should pass, not what they did.
    fields: dict[str, object] = record._asdict()
    aggregate_type, seconds = fields["aggregate_type"], fields["build_seconds"]
    if not isinstance(aggregate_type, str) or not aggregate_type or not storable(aggregate_type):
        raise ArgumentError(
            f"{where}: aggregate_type must be a non-empty string without NUL or lone surrogates"
        )
    check_count(f"{where}: version", fields["version"], 1, optional=False)
    check_count(f"{where}: snapshot_version", fields["snapshot_version"], 1, optional=False)
    if not isinstance(fields["event_id"], UUID):
        raise ArgumentTypeError(f"{where}: event_id must be a UUID, got {record.event_id!r}")
    state = fields["state"]
    if not isinstance(state, str):
        raise ArgumentTypeError(
            f"{where}: state must be JSON text, got {type(record.state).__qualname__}"
        )
    if not storable(state):
        raise ArgumentError(f"{where}: state must hold no NUL or lone surrogate")
    taken_at = fields["taken_at"]
    if not isinstance(taken_at, datetime) or taken_at.utcoffset() is None:
        raise ArgumentError(f"{where}: taken_at must be a timezone-aware datetime")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ArgumentTypeError(f"{where}: build_seconds must be a number, got {seconds!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ArgumentError(f"{where}: build_seconds must be finite and >= 0, got {seconds!r}")
    return record
