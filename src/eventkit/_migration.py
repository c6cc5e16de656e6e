"""
Store-wide tooling over raw records: `verify` and `migrate`.

`verify` checks that every stored event loads; `migrate` copies a store into a new
one with every event at its current schema version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from eventkit._envelope import NewEvent
from eventkit._events import RetiredEvent
from eventkit._records import NewRecord, RecordWrite

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from eventkit._records import EventRecord
    from eventkit._store import EventStore


@attrs.frozen
class VerifyFailure:
    """
    The first stored event of a (type, schema version) that failed to load.

    Attributes:
        stream_id: The event's stream.
        version: The event's version in its stream.
        position: The event's global position.
        error: The error, as ``"ErrorClass: message"``.

    .. versionadded:: 0.1.0
    """

    stream_id: str
    version: int
    position: int
    error: str

    def __str__(self) -> str:
        return f"stream {self.stream_id!r} version {self.version}: {self.error}"


@attrs.frozen
class VerifyGroup:
    """
    How the stored events of one type name and schema version fared in `verify`.

    Attributes:
        event_type: The stored type name.
        schema_version: The stored schema version.
        loaded: How many events decoded to a current class (or to a `RetiredEvent`).
        failed: How many did not.
        first_failure: The first that did not, in position order, or None.

    .. versionadded:: 0.1.0
    """

    event_type: str
    schema_version: int
    loaded: int
    failed: int
    first_failure: VerifyFailure | None = None

    def __str__(self) -> str:
        line = f"{self.event_type} v{self.schema_version}: {self.loaded} load"
        if self.first_failure is not None:
            line += f", {self.failed} fail; first: {self.first_failure}"
        return line


@attrs.frozen
class VerifyReport:
    """
    What `verify` found: per stored (type name, schema version), how many events load.

    ``str(report)`` is a readable report, one line per group.

    Attributes:
        groups: One `VerifyGroup` per stored (type name, schema version), sorted.

    .. versionadded:: 0.1.0
    """

    groups: tuple[VerifyGroup, ...]

    @property
    def loaded(self) -> int:
        """How many stored events load."""
        return sum(group.loaded for group in self.groups)

    @property
    def failed(self) -> int:
        """How many stored events fail to load."""
        return sum(group.failed for group in self.groups)

    @property
    def ok(self) -> bool:
        """Whether every stored event loads."""
        return self.failed == 0

    def __str__(self) -> str:
        total = self.loaded + self.failed
        head = f"verified {total} events: {self.loaded} load, {self.failed} fail"
        return "\n".join([head, *(f"  {group}" for group in self.groups)])


def verify(store: EventStore) -> VerifyReport:
    """
    Read every stored event, decode it, and report per type and schema version.

    Each raw record is decoded as a reader would decode it (upcasters included); a
    failure is counted and the reading goes on, so one run finds every kind of
    problem. Memory use grows with the number of (type, schema version) groups only.

    Args:
        store: The store to check, built with the registry the application uses.

    Returns:
        The counts, with the first failing stream and version of each group.

    .. versionadded:: 0.1.0
    """
    counts: dict[tuple[str, int], list[int]] = {}
    failures: dict[tuple[str, int], VerifyFailure] = {}
    decode = store.codec.decode
    for record in store.read_all_records():
        key = (record.event_type, record.schema_version)
        count = counts.setdefault(key, [0, 0])
        try:
            decode(record)
        except Exception as exc:  # noqa: BLE001 (verify reports every failure and goes on)
            count[1] += 1
            if key not in failures:
                failures[key] = VerifyFailure(
                    record.stream_id, record.version, record.position, _error_text(exc)
                )
        else:
            count[0] += 1
    return VerifyReport(
        tuple(
            VerifyGroup(name, version, loaded, failed, failures.get((name, version)))
            for (name, version), (loaded, failed) in sorted(counts.items())
        )
    )


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


@attrs.frozen
class MigrationReport:
    """
    How far `migrate` got: passed to its *progress* callback, and returned at the end.

    ``str(report)`` is a one-line progress message.

    Attributes:
        copied: Events copied so far (in a dry run: that would be copied).
        upcast: How many of them were stored at an older schema version or type name.
        position: The source position copied up to.
        head_position: The source's head position when the migration started.
        dry_run: Whether nothing is written.

    .. versionadded:: 0.1.0
    """

    copied: int
    upcast: int
    position: int
    head_position: int
    dry_run: bool = False

    def __str__(self) -> str:
        verb = "dry run: would copy" if self.dry_run else "copied"
        return (
            f"{verb} {self.copied} events ({self.upcast} upcast), up to position "
            f"{self.position} of {self.head_position}"
        )


def migrate(
    source: EventStore,
    target: EventStore,
    *,
    dry_run: bool = False,
    progress: Callable[[MigrationReport], object] | None = None,
    batch_size: int = 500,
) -> MigrationReport:
    """
    Copy every event of *source* into the empty store *target*, at its current version.

    Each event is read as a reader would read it (through its upcasters) and written
    with *target*'s registry, so *target* holds only current schema versions and the
    old upcasters can then be deleted (raise the types' ``oldest_version``). Events of
    retired types are copied as stored. *source* is only read: upcasting stays pure.

    Preserved: stream ids, stream versions, event ids, metadata, and the order of
    events. Not preserved: global positions (*target* numbers its own), recording
    times (*target* records the time of the copy), and anything that is not an event
    (snapshots are rebuilt on load; projections must be rebuilt from zero, since
    positions change).

    Args:
        source: The store to copy from.
        target: An empty store to copy into.
        dry_run: Decode and re-encode every event, but write nothing.
        progress: Called with a `MigrationReport` after each batch (``progress=print``
            prints a progress line).
        batch_size: How many events to write in one atomic append.

    Returns:
        The final report.

    Raises:
        ValueError: *target* is *source* or not empty, or *batch_size* is not >= 1.
        SerializationError: An event cannot be read or re-encoded; the events before
            it are copied. Run `verify` first to find every such event.

    .. versionadded:: 0.1.0
    """
    if source is target:
        raise ValueError("cannot migrate a store into itself")
    _check_batch_size(batch_size)
    if target.head_position() != 0:
        raise ValueError(
            f"the target store is not empty (head position {target.head_position()}); "
            "migrate into a new store"
        )
    report = MigrationReport(0, 0, 0, source.head_position(), dry_run)
    batch: list[tuple[EventRecord, NewRecord]] = []
    for record in source.read_all_records():
        batch.append((record, _convert(source, target, record)))
        if len(batch) >= batch_size:
            report = _flush(target, batch, report, progress)
    if batch or report.copied == 0:
        report = _flush(target, batch, report, progress)
    return report


def _check_batch_size(size: object) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {size!r}")


def _convert(source: EventStore, target: EventStore, record: EventRecord) -> NewRecord:
    recorded = source.codec.decode(record)
    if isinstance(recorded.event, RetiredEvent):
        return NewRecord(
            record.event_id, record.event_type, record.schema_version, record.data, record.metadata
        )
    new = NewEvent(recorded.event, event_id=record.event_id, metadata=recorded.metadata)
    return target.codec.encode(new)


def _flush(
    target: EventStore,
    batch: list[tuple[EventRecord, NewRecord]],
    report: MigrationReport,
    progress: Callable[[MigrationReport], object] | None,
) -> MigrationReport:
    if not report.dry_run:
        for writes in _appends(batch):
            target.append_records(writes)
    upcast = sum(
        (old.event_type, old.schema_version) != (new.event_type, new.schema_version)
        for old, new in batch
    )
    report = attrs.evolve(
        report,
        copied=report.copied + len(batch),
        upcast=report.upcast + upcast,
        position=batch[-1][0].position if batch else report.position,
    )
    batch.clear()
    if progress is not None:
        progress(report)
    return report


def _appends(batch: Iterable[tuple[EventRecord, NewRecord]]) -> list[list[RecordWrite]]:
    # Consecutive events of one stream go in one write; a stream met again after another
    # starts a new append (an append names each stream once), so the target receives
    # the events in the source's order.
    appends: list[list[tuple[EventRecord, list[NewRecord]]]] = []
    for old, new in batch:
        if appends and appends[-1][-1][0].stream_id == old.stream_id:
            appends[-1][-1][1].append(new)
        elif appends and all(first.stream_id != old.stream_id for first, _ in appends[-1]):
            appends[-1].append((old, [new]))
        else:
            appends.append([(old, [new])])
    return [
        [RecordWrite(first.stream_id, tuple(news), first.version - 1) for first, news in writes]
        for writes in appends
    ]
