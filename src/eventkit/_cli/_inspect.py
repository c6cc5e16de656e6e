"""
What ``eventkit info`` and ``eventkit tail`` find out about a store, from its records.

Positions are compared, never subtracted: a PostgreSQL store's positions carry a
transaction id in their high bits, so the distance between two of them says nothing
about how many events lie between. Lag is counted, event by event.
"""

from __future__ import annotations

import collections
import pathlib
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterable

    from eventkit._records import Checkpoint, EventRecord
    from eventkit._store import BaseEventStore
    from eventkit._urls import StoreURL


@attrs.frozen
class ProjectionFigures:
    """A projection's checkpoint, as the store keeps it, and what lies after it."""

    name: str
    version: int
    position: int
    lag_events: int
    dead_letters: int


@attrs.frozen
class StoreFigures:
    """What ``eventkit info`` reports."""

    head_position: int
    streams: int
    events: int
    event_types: dict[tuple[str, int], int]
    projections: list[ProjectionFigures]
    size_bytes: int | None


def figures(store: BaseEventStore, parsed: StoreURL) -> StoreFigures:
    """
    Read every record up to the head once, and count.

    Memory use grows with the number of event types and projections, not events.
    """
    head = store.head_position()
    checkpoints = _checkpoints(store)
    names = sorted(checkpoints, key=lambda name: checkpoints[name].position)
    marks = [checkpoints[name].position for name in names]
    # at_or_below[i]: how many events lie at or below the i-th checkpoint's position.
    at_or_below = [0] * len(marks)
    next_mark = 0
    events = streams = 0
    types: collections.Counter[tuple[str, int]] = collections.Counter()
    for record in store.read_all_records():
        if record.position > head:
            break
        while next_mark < len(marks) and marks[next_mark] < record.position:
            at_or_below[next_mark] = events
            next_mark += 1
        events += 1
        streams += record.version == 1
        types[record.event_type, record.schema_version] += 1
    for index in range(next_mark, len(marks)):
        at_or_below[index] = events
    projections = [
        ProjectionFigures(
            name,
            checkpoints[name].version,
            checkpoints[name].position,
            events - at_or_below[index],
            len(store.dead_letters(name)),  # type: ignore[attr-defined]
        )
        for index, name in enumerate(names)
    ]
    projections.sort(key=lambda figures: figures.name)
    return StoreFigures(
        head, streams, events, dict(sorted(types.items())), projections, size_of(parsed)
    )


def _checkpoints(store: BaseEventStore) -> dict[str, Checkpoint]:
    read = getattr(store, "projection_checkpoints", None)
    return {} if read is None else dict(read())


def count_after(store: BaseEventStore, position: int, event_types: Iterable[Any] | None) -> int:
    """Return how many events lie after *position* (of *event_types*, when given)."""
    return sum(1 for _ in store.read_all_records(after_position=position, event_types=event_types))


def size_of(parsed: StoreURL) -> int | None:
    """Return how many bytes the store's database holds, when that can be known."""
    if parsed.backend == "sqlite" and parsed.target != ":memory:":
        files = [pathlib.Path(parsed.target), pathlib.Path(parsed.target + "-wal")]
        return sum(path.stat().st_size for path in files if path.exists())
    if parsed.backend == "postgresql":
        return _postgres_size(parsed)
    return None


def _postgres_size(parsed: StoreURL) -> int:
    import psycopg  # noqa: PLC0415 (only for PostgreSQL stores)

    from eventkit._backends.postgres.schema import table_names  # noqa: PLC0415 (the same)

    tables = table_names(
        parsed.options.get("schema", "public"), parsed.options.get("table_prefix", "eventkit_")
    )
    total = "coalesce(sum(pg_total_relation_size(to_regclass(t))), 0)"
    query = f"SELECT {total} FROM unnest(%s::text[]) t"  # noqa: S608 (constant text)
    with psycopg.connect(parsed.target, autocommit=True) as conn:
        row = conn.execute(query, (list(tables.values()),)).fetchone()
    return int(row[0]) if row else 0


def last_records(
    store: BaseEventStore, count: int, event_types: Iterable[Any] | None = None
) -> list[EventRecord]:
    """
    Return the last *count* records (of *event_types*, when given), oldest first.

    Stores read forwards only, and positions are not consecutive: this looks for the
    position after which exactly *count* records remain, by bisection over positions,
    reading at most *count* + 1 records a step.
    """
    if count <= 0:
        return []
    types = None if event_types is None else list(event_types)

    def after(position: int) -> list[EventRecord]:
        return list(
            store.read_all_records(after_position=position, limit=count + 1, event_types=types)
        )

    head = store.head_position()
    everything = after(0)
    if len(everything) <= count:
        return everything
    # The largest position after which more than *count* records remain, found in
    # [0, head): positions after it hold the last count records, and then some.
    low, high = 0, head
    while high - low > 1:
        middle = (low + high) // 2
        if len(after(middle)) > count:
            low = middle
        else:
            high = middle
    return after(low)[-count:]


def event_type_rows(types: dict[tuple[str, int], int]) -> list[tuple[str, int, int]]:
    """Return the rows of the event types table: type, schema version, events."""
    return [(name, version, events) for (name, version), events in types.items()]
