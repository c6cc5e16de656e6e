"""
Store-wide tooling over raw records: `verify_async` and `migrate_async`.

`verify_async` checks that every stored event loads; `migrate_async` copies a store
into a new one with every event at its current schema version.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from eventkit._envelope import NewEvent
from eventkit._events import RetiredEvent
from eventkit._records import NewRecord, RecordWrite
from eventkit._reports import MigrationReport, VerifyFailure, VerifyGroup, VerifyReport
from eventkit.exceptions import ArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from eventkit._records import EventRecord
    from eventkit._store_async import AsyncEventStore


async def verify_async(store: AsyncEventStore) -> VerifyReport:
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
    async for record in store.read_all_records():
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


async def migrate_async(
    source: AsyncEventStore,
    target: AsyncEventStore,
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
        raise ArgumentError("cannot migrate a store into itself")
    _check_batch_size(batch_size)
    if await target.head_position() != 0:
        raise ArgumentError(
            f"the target store is not empty (head position {await target.head_position()}); "
            "migrate into a new store"
        )
    report = MigrationReport(0, 0, 0, await source.head_position(), dry_run)
    batch: list[tuple[EventRecord, NewRecord]] = []
    async for record in source.read_all_records():
        batch.append((record, _convert(source, target, record)))
        if len(batch) >= batch_size:
            report = await _flush(target, batch, report, progress)
    if batch or report.copied == 0:
        report = await _flush(target, batch, report, progress)
    return report


def _check_batch_size(size: object) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ArgumentError(f"batch_size must be an integer >= 1, got {size!r}")


def _convert(source: AsyncEventStore, target: AsyncEventStore, record: EventRecord) -> NewRecord:
    recorded = source.codec.decode(record)
    if isinstance(recorded.event, RetiredEvent):
        return NewRecord(
            record.event_id, record.event_type, record.schema_version, record.data, record.metadata
        )
    new = NewEvent(recorded.event, event_id=record.event_id, metadata=recorded.metadata)
    return target.codec.encode(new)


async def _flush(
    target: AsyncEventStore,
    batch: list[tuple[EventRecord, NewRecord]],
    report: MigrationReport,
    progress: Callable[[MigrationReport], object] | None,
) -> MigrationReport:
    if not report.dry_run:
        for writes in _appends(batch):
            await target.append_records(writes)
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
