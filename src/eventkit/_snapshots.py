"""
Snapshots: when to take one, how to take one, and whether a stored one can be used.

Everything here is a pure function of its arguments; the `Repository` does the reading
and writing. A snapshot is only ever a shortcut: loading from it must give exactly what
replaying every event gives, so any doubt about a stored snapshot means "replay".
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import attrs

from eventkit._aggregate import Aggregate
from eventkit._records import SnapshotRecord
from eventkit.exceptions import (
    ArgumentError,
    ArgumentTypeError,
    SerializationError,
    SnapshotWarning,
)

if TYPE_CHECKING:
    from uuid import UUID

    from eventkit._envelope import RecordedEvent
    from eventkit._serialization import Codec

A = TypeVar("A", bound=Aggregate)


class _Routine(str):
    """A reason to ignore a snapshot that is no damage: it was taken by other code."""

    __slots__ = ()


class _SnapshotReporter(logging.LoggerAdapter[logging.Logger]):
    """
    The ``eventkit.snapshots`` logger, whose reports of damaged snapshots are warnings too.

    A damaged snapshot never fails a load, so a log record alone is easy to miss; as
    a `SnapshotWarning` it shows in test suites (which turn warnings into errors) and,
    once per message, on stderr. Snapshots ignored for a routine reason (taken at
    another ``snapshot_version``: every deploy that bumps it) and failed writes are
    logged only.
    """

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.logger.warning(msg, *args, **kwargs)
        ignored = isinstance(msg, str) and "ignoring" in msg
        if ignored and not any(isinstance(arg, _Routine) for arg in args):
            # stacklevel=2: the line of eventkit that decided to ignore the snapshot.
            warnings.warn(SnapshotWarning(str(msg) % args), stacklevel=2)


logger = _SnapshotReporter(logging.getLogger("eventkit.snapshots"))
"""Where snapshot problems are reported: the log, and a `SnapshotWarning`."""

SnapshotPolicy: TypeAlias = Callable[[Aggregate, Sequence[Any]], bool]
"""
Decides after a save whether to snapshot the aggregate.

It is called with the aggregate as saved (its ``version`` is the stream's new version)
and the events that save appended, and returns True to take a snapshot.
"""

# Aggregate's own bookkeeping fields: not state, never snapshotted.
_BOOKKEEPING = frozenset(field.name for field in attrs.fields(Aggregate) if not field.init)


def snapshot_every(n: int) -> SnapshotPolicy:
    """
    Return a policy that snapshots each time a save takes the version past a multiple of *n*.

    With one event per save that is at versions n, 2n, 3n, ...; a save that appends
    several events snapshots once, at its end, if it crossed a multiple.

    Raises:
        ArgumentError: *n* is not an integer >= 1.
    """
    checked: object = n  # what was passed, whatever the annotation says
    if isinstance(checked, bool) or not isinstance(checked, int) or checked < 1:
        raise ArgumentError(f"snapshot_every must be an integer >= 1, got {n!r}")

    def crosses_a_multiple(aggregate: Aggregate, new_events: Sequence[Any]) -> bool:
        before = aggregate.version - len(new_events)
        return before // n < aggregate.version // n

    return crosses_a_multiple


def choose_policy(every: int | None, policy: SnapshotPolicy | None) -> SnapshotPolicy | None:
    """
    Return the policy a repository was configured with, or None for no snapshots.

    Raises:
        ArgumentError: Both were given, or *every* is not an integer >= 1.
        ArgumentTypeError: *policy* is not callable.
    """
    if every is not None and policy is not None:
        raise ArgumentError("give snapshot_every or snapshot_policy, not both")
    if every is not None:
        return snapshot_every(every)
    if policy is not None and not callable(policy):
        raise ArgumentTypeError(f"snapshot_policy must be a callable, got {policy!r}")
    return policy


def check_snapshot_class(cls: type[Aggregate]) -> None:
    """
    Refuse an aggregate class whose state a snapshot would not hold completely.

    Raises:
        ArgumentTypeError: A field is declared with ``init=False``: the converter leaves such
            fields out, so an aggregate loaded from a snapshot would lose them.
    """
    hidden = [f.name for f in attrs.fields(cls) if not f.init and f.name not in _BOOKKEEPING]
    if hidden:
        raise ArgumentTypeError(
            f"{cls.__qualname__} cannot be snapshotted: fields declared with init=False "
            f"({', '.join(hidden)}) would be left out of its snapshots"
        )


def aggregate_type_name(cls: type[Aggregate]) -> str:
    """Return the name snapshots of *cls* are stored under."""
    return cls.__qualname__


def state_fields(cls: type[Aggregate]) -> frozenset[str]:
    """Return the keys of the JSON object that holds the state of a *cls* aggregate."""
    return frozenset(field.name for field in attrs.fields(cls) if field.init)


def take_snapshot(
    aggregate: Aggregate,
    *,
    stream_id: str,
    event_id: UUID,
    codec: Codec,
    started: float | None = None,
) -> SnapshotRecord:
    """
    Return a snapshot of *aggregate*, whose newest event is *event_id*.

    Pending events are not part of the state: take snapshots of saved aggregates.

    Args:
        aggregate: The aggregate, as saved.
        stream_id: Its stream.
        event_id: The id of the event at the aggregate's version.
        codec: The store's codec.
        started: When building the state began (`time.perf_counter`), if before this
            call; the snapshot's ``build_seconds`` counts from then.

    Raises:
        SerializationError: A field cannot be encoded.
    """
    if started is None:
        started = time.perf_counter()
    state = codec.encode_state(aggregate)
    cls = type(aggregate)
    return SnapshotRecord(
        stream_id=stream_id,
        aggregate_type=aggregate_type_name(cls),
        version=aggregate.version,
        event_id=event_id,
        snapshot_version=cls.snapshot_version,
        state=state,
        taken_at=datetime.now(UTC),
        build_seconds=time.perf_counter() - started,
    )


def unusable_reason(record: SnapshotRecord, cls: type[Aggregate]) -> str | None:
    """Return why *record* cannot hold a *cls* aggregate's state, or None if it can."""
    if record.aggregate_type != aggregate_type_name(cls):
        return _Routine(f"it holds a {record.aggregate_type}, not a {aggregate_type_name(cls)}")
    if record.snapshot_version != cls.snapshot_version:
        return _Routine(
            f"it was taken at snapshot_version {record.snapshot_version}, and "
            f"{cls.__qualname__} is now at snapshot_version {cls.snapshot_version}"
        )
    return None


def boundary_reason(record: SnapshotRecord, event: RecordedEvent[Any] | None) -> str | None:
    """
    Return why *record* does not fit its stream, or None if it does.

    *event* is the stream's event at the snapshot's version, or None when the stream
    does not reach that version. Either way round, the stream is not the one the
    snapshot was taken from: it was truncated, or restored from a backup and rewritten.
    """
    if event is None:
        return (
            f"the stream ends before version {record.version} "
            "(was the store truncated or restored from a backup?)"
        )
    if event.event_id != record.event_id:
        return (
            f"the event at version {record.version} is not the one it was taken after "
            "(was the stream restored from a backup and written again?)"
        )
    return None


def restore(record: SnapshotRecord, cls: type[A], aggregate_id: str, codec: Codec) -> A:
    """
    Return the aggregate whose state *record* holds.

    Raises:
        SerializationError: The state is not JSON, does not fit *cls*, or belongs to
            another aggregate or version than the record says.
    """
    aggregate = codec.decode_state(record.state, cls, fields=state_fields(cls))
    if (aggregate.id, aggregate.version) != (aggregate_id, record.version):
        raise SerializationError(
            f"stored state is aggregate {aggregate.id!r} at version {aggregate.version}, "
            f"not {aggregate_id!r} at version {record.version}"
        )
    return aggregate


@attrs.frozen
class SnapshotProgress:
    """
    How far a bulk snapshot rebuild (`Repository.rebuild_snapshots`) has come.

    Its text is one line for a log or a terminal, so ``progress=print`` reports as
    the rebuild goes.

    Attributes:
        done: Streams handled so far.
        written: Snapshots written so far.
        failed: Streams whose snapshot could not be built (each logged with its error).
        stream_id: The stream handled last, or None before the first.
        elapsed: Seconds since the rebuild started.

    .. versionadded:: 0.1.0
    """

    done: int = 0
    written: int = 0
    failed: int = 0
    stream_id: str | None = None
    elapsed: float = 0.0

    def __str__(self) -> str:
        last = "" if self.stream_id is None else f" (last: {self.stream_id!r})"
        return (
            f"snapshots: {self.done} streams, {self.written} written, {self.failed} failed "
            f"in {self.elapsed:.1f}s{last}"
        )

    def advanced(self, stream_id: str, *, written: bool, elapsed: float) -> SnapshotProgress:
        """Return the progress after one more stream, *stream_id*."""
        return SnapshotProgress(
            done=self.done + 1,
            written=self.written + written,
            failed=self.failed + (not written),
            stream_id=stream_id,
            elapsed=elapsed,
        )
