"""
Export and import: a store's events as JSON lines, exactly as stored.

The file is UTF-8 text, one JSON object per line:

1. a header, ``{"format": "eventkit-export", "format_version": 1, ...}``;
2. one line per event, in position order, with the fields of `EventRecord`:
   ``stream_id``, ``version``, ``position``, ``event_id``, ``event_type``,
   ``schema_version``, ``data`` and ``metadata`` (the stored JSON text, as strings,
   character for character), ``recorded_at`` (ISO 8601, UTC, microseconds);
3. a last line, ``{"end": true, "events": N}``, so that a file cut short is known.

Nothing is decoded: exports need no application code, and an import writes each
event's stored type name, schema version, data and metadata back unchanged.
"""

from __future__ import annotations

import functools
import time
import uuid
from datetime import UTC, datetime
from json.encoder import encode_basestring as _quote  # the C form, where there is one
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from eventkit._cli._output import json_text
from eventkit._cli._stores import Failure
from eventkit._records import NewRecord, RecordWrite
from eventkit.exceptions import ConcurrencyError, DuplicateEventIdError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import BinaryIO, TextIO

    from eventkit._records import EventRecord
    from eventkit._store import BaseEventStore

FORMAT = "eventkit-export"
FORMAT_VERSION = 1
FIELDS = (
    "stream_id",
    "version",
    "position",
    "event_id",
    "event_type",
    "schema_version",
    "data",
    "metadata",
    "recorded_at",
)
# Events per append on import: large enough that a transaction's cost is shared by
# many events, small enough that a PostgreSQL transaction stays short.
BATCH_SIZE = 1000


def record_json(record: EventRecord) -> str:
    """Return *record* as one JSON object, the export's event line (without newline)."""
    # Spliced by hand, not through a dict: this runs once per exported event.
    return (
        f'{{"stream_id":{_quote(record.stream_id)},"version":{record.version:d},'
        f'"position":{record.position:d},"event_id":"{record.event_id}",'
        f'"event_type":{_quote(record.event_type)},'
        f'"schema_version":{record.schema_version:d},"data":{_quote(record.data)},'
        f'"metadata":{_quote(record.metadata)},'
        f'"recorded_at":"{_timestamp(record.recorded_at)}"}}'
    )


@functools.lru_cache(maxsize=64)
def _timestamp(moment: datetime) -> str:
    # Cached: the events of one append share their time, and formatting costs.
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


class Progress(NamedTuple):
    """How far a transfer got: events done, and a fraction of the whole (0..1)."""

    events: int
    fraction: float


def export(
    store: BaseEventStore,
    out: TextIO,
    *,
    source: str,
    progress: Callable[[Progress], object] | None = None,
) -> int:
    """
    Write every event of *store* to *out*, in the export format; return how many.

    Memory use does not grow with the store: records stream from the store to the file.
    Events appended while the export runs are left out: it stops at the head position
    read when it starts.
    """
    head = store.head_position()
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": _timestamp(datetime.now(UTC)),
        "source": source,
        "head_position": head,
    }
    out.write(json_text(header) + "\n")
    count = 0
    first = 0
    write = out.write
    for record in store.read_all_records():
        if record.position > head:
            break
        write(record_json(record) + "\n")
        count += 1
        first = first or record.position
        if progress is not None and not count % BATCH_SIZE:
            # Positions grow, not always by one (PostgreSQL's hold a transaction id):
            # how far through them the export is, is an estimate of how far it got.
            span = head - first
            progress(Progress(count, (record.position - first) / span if span else 1.0))
    out.write(json_text({"end": True, "events": count}) + "\n")
    out.flush()
    if progress is not None:
        progress(Progress(count, 1.0))
    return count


class _Lines:
    """The file's lines, numbered, with how many bytes were read."""

    def __init__(self, source: BinaryIO, name: str) -> None:
        self.source = source
        self.name = name
        self.number = 0
        self.bytes = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import json  # noqa: PLC0415 (here, beside its one use, for speed: a local name)

        loads = json.loads
        for raw in self.source:
            self.number += 1
            self.bytes += len(raw)
            try:
                value = loads(raw)
            except ValueError as exc:
                raise self.error(f"not a line of JSON ({exc})") from exc
            if not isinstance(value, dict):
                raise self.error("not a JSON object")
            yield value

    def error(self, message: str) -> Failure:
        return Failure(f"{self.name} line {self.number}: {message}")


def import_(
    store: BaseEventStore,
    source: BinaryIO,
    *,
    name: str,
    resume: bool,
    progress: Callable[[int, int], object] | None = None,
) -> int:
    """
    Append the events of an export file to *store*, exactly as they were stored.

    Events go in in the file's order, a batch at a time; each append names the
    version the stream had before its events, so versions stay as they were. Appends
    are idempotent by event id, so an import that was interrupted completes when run
    again with *resume*: events already stored are recognised and skipped.

    Args:
        store: The target store; it must be empty unless *resume*.
        source: The file, opened in binary mode.
        name: The file's name, for messages.
        resume: Accept a target that holds events already (a previous run's, or
            others that these events continue).
        progress: Called with (events read, bytes read) after each batch.

    Returns:
        How many events the file holds (all of them are in *store* now).

    Raises:
        Failure: The file is not an export, is cut short, or does not fit the target.
    """
    if not resume and store.head_position() != 0:
        raise Failure(
            "the target store is not empty; to finish an interrupted import of this file "
            "(or add its events to the store), run again with --resume"
        )
    lines = _Lines(source, name)
    records = iter(lines)
    _check_header(next(records, None), lines)
    read = 0
    batch: list[tuple[str, int, NewRecord]] = []
    ended = None
    for value in records:
        if ended is not None:
            raise lines.error("a line after the export's last line")
        if value.get("end") is True:
            ended = value
            continue
        batch.append(_event(value, lines))
        if len(batch) >= BATCH_SIZE:
            _write(store, batch)
            read += len(batch)
            batch.clear()
            if progress is not None:
                progress(read, lines.bytes)
    _write(store, batch)
    read += len(batch)
    if progress is not None:
        progress(read, lines.bytes)
    if ended is None:
        raise Failure(
            f"{name} ends before the export's last line: the export was cut short "
            f"({read} events read and imported)"
        )
    if ended.get("events") != read:
        raise Failure(f"{name} says it holds {ended.get('events')!r} events, but has {read}")
    return read


def _check_header(value: dict[str, Any] | None, lines: _Lines) -> None:
    if value is None:
        raise Failure(f"{lines.name} is empty: not an eventkit export")
    if value.get("format") != FORMAT:
        raise lines.error("not an eventkit export (its first line has no format)")
    version = value.get("format_version")
    if version != FORMAT_VERSION:
        raise lines.error(
            f"format version {version!r}: this eventkit reads version {FORMAT_VERSION}; "
            "a newer eventkit wrote it"
        )


def _event(value: dict[str, Any], lines: _Lines) -> tuple[str, int, NewRecord]:
    try:
        stream_id = value["stream_id"]
        version = value["version"]
        record = NewRecord(
            uuid.UUID(value["event_id"]),
            value["event_type"],
            value["schema_version"],
            value["data"],
            value["metadata"],
            datetime.fromisoformat(value["recorded_at"]),
        )
    except KeyError as exc:
        raise lines.error(f"the event has no {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise lines.error(f"a field of the event is malformed ({exc})") from exc
    texts = (stream_id, record.event_type, record.data, record.metadata)
    numbers = (version, record.schema_version)
    if not all(isinstance(text, str) for text in texts) or not all(
        type(number) is int and number >= 1 for number in numbers
    ):
        raise lines.error("a field of the event has the wrong type")
    if record.recorded_at is None or record.recorded_at.utcoffset() is None:
        raise lines.error("recorded_at has no time zone")
    return stream_id, version, record


def _write(store: BaseEventStore, batch: list[tuple[str, int, NewRecord]]) -> None:
    for writes in appends(batch):
        try:
            # Events stored by a previous run come back as an idempotent retry.
            store.append_records(writes)
        except (ConcurrencyError, DuplicateEventIdError):
            # Part of this append is stored already (a previous run cut its batches
            # elsewhere): settle it stream by stream.
            for write in writes:
                _settle(store, write)


def _settle(store: BaseEventStore, write: RecordWrite) -> None:
    current = store.stream_version(write.stream_id)
    first = cast("int", write.expected_version) + 1  # imports name versions, not states
    stored = [r for v, r in enumerate(write.records, start=first) if v <= current]
    if stored:
        found = store.read_stream_records(
            write.stream_id, from_version=first, to_version=first + len(stored) - 1
        )
        for record, kept in zip(stored, found, strict=True):
            if record.event_id != kept.event_id:
                raise Failure(
                    f"stream {write.stream_id!r} version {kept.version} in the target is "
                    f"event {kept.event_id}, not {record.event_id} as in the file"
                )
    rest = write.records[len(stored) :]
    if not rest:
        return
    if current < first - 1:
        raise Failure(
            f"stream {write.stream_id!r} is at version {current} in the target, but the "
            f"file's next event for it is version {first + len(stored)}"
        )
    store.append_records([RecordWrite(write.stream_id, rest, current)])


def appends(batch: Iterable[tuple[str, int, NewRecord]]) -> list[list[RecordWrite]]:
    """
    Group consecutive events into appends that keep the file's order exactly.

    An append names each stream once, and its events are stored stream by stream:
    consecutive events of one stream share a write, and a stream met again after
    another starts a new append.
    """
    groups: list[list[tuple[str, int, list[NewRecord]]]] = []
    streams: set[str] = set()
    for stream_id, version, record in batch:
        if groups and groups[-1][-1][0] == stream_id:
            groups[-1][-1][2].append(record)
        elif groups and stream_id not in streams:
            groups[-1].append((stream_id, version, [record]))
            streams.add(stream_id)
        else:
            groups.append([(stream_id, version, [record])])
            streams = {stream_id}
    return [
        [RecordWrite(stream_id, tuple(records), version - 1) for stream_id, version, records in g]
        for g in groups
    ]


def rate(events: int, started: float) -> str:
    """Return the speed of a transfer that started at *started* (monotonic seconds)."""
    seconds = time.monotonic() - started
    return f"{events / seconds:,.0f} events/s" if seconds > 0 else ""
