"""
Serialization: events to stored records and back.

This is the only module that imports cattrs. Backends never see domain objects:
they store and return records (`NewRecord` in, `EventRecord` out) whose data and
metadata are JSON text encoded here, once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Set as AbstractSet
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast
from uuid import UUID, uuid4

import cattrs

from eventkit._envelope import NewEvent, RecordedEvent
from eventkit._upcasting import ContextUpcaster, RetiredEvent, UpcastContext, Upcaster
from eventkit.exceptions import SerializationError, UnknownEventType, UpcastError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from eventkit._events import EventRegistry, EventType
    from eventkit._upcasting import UpcastChain

_EMPTY_METADATA = "{}"

T = TypeVar("T")


class NewRecord(NamedTuple):
    """
    An encoded event on its way into a backend.

    Attributes:
        event_id: The event's unique id.
        event_type: The registered type name.
        schema_version: The schema version the data is written at.
        data: The event as JSON text.
        metadata: The metadata as JSON text (``"{}"`` when there is none).

    .. versionadded:: 0.1.0
    """

    event_id: UUID
    event_type: str
    schema_version: int
    data: str
    metadata: str


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


def make_converter() -> cattrs.Converter:
    """
    Return a new cattrs converter configured the way eventkit stores events.

    Decimals, UUIDs, datetimes, dates and times become strings (exactly, with no float
    on the way); bytes become base64; sets and frozensets become lists. Register your
    own hooks on it and pass it to a store as *converter* for other types.

    .. versionadded:: 0.1.0
    """
    converter = cattrs.Converter(unstruct_collection_overrides={AbstractSet: list})
    for exact in (Decimal, UUID):
        converter.register_unstructure_hook(exact, str)
        converter.register_structure_hook(exact, lambda value, cls: cls(value))
    for temporal in (datetime, date, time):
        converter.register_unstructure_hook(temporal, temporal.isoformat)
        converter.register_structure_hook(temporal, lambda value, cls: cls.fromisoformat(value))
    converter.register_unstructure_hook(bytes, lambda value: base64.b64encode(value).decode())
    converter.register_structure_hook(bytes, lambda value, _: base64.b64decode(value))
    return converter


def _describe(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, path="$"))
    return f"{type(exc).__name__}: {exc}"


_encode_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_json_decoder = json.JSONDecoder()
# The decoder's C scanner (an instance attribute, untyped in the stubs).
_scan_json: Callable[[str, int], tuple[Any, int]] = vars(_json_decoder)["scan_once"]


def _decode_json(text: str) -> Any:
    # Reading is dominated by decoding, and json.loads spends most of its time around
    # the C scanner (whitespace regexes, Python frames). Stored JSON is compact, so scan
    # directly; anything else (whitespace, trailing text, invalid JSON) goes through the
    # full decoder, which accepts or rejects exactly as json.loads does.
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        end = -1
    if end == len(text):
        return value
    return _json_decoder.decode(text)


def encode_metadata(metadata: Mapping[str, str]) -> str:
    """Return *metadata* as the JSON text that backends store."""
    return _encode_json(dict(metadata)) if metadata else _EMPTY_METADATA


def decode_metadata(text: str) -> dict[str, str]:
    """Return the metadata mapping stored as *text*."""
    if text == _EMPTY_METADATA:
        return {}
    result: dict[str, str] = _decode_json(text)
    return result


def encode_state(converter: cattrs.Converter, obj: object) -> str:
    """
    Return the attrs instance *obj* (an aggregate's state) as JSON text, via *converter*.

    Fields declared with ``init=False`` are left out, as cattrs leaves them out.

    Raises:
        SerializationError: A field cannot be turned into JSON.
    """
    try:
        return _encode_json(converter.unstructure(obj))
    except (TypeError, ValueError, cattrs.BaseValidationError) as exc:
        raise SerializationError(
            f"cannot encode the state of {type(obj).__qualname__} as JSON: {_describe(exc)}"
        ) from exc


def decode_state(
    converter: cattrs.Converter, text: str, cls: type[T], *, fields: AbstractSet[str]
) -> T:
    """
    Return an instance of *cls* built from the JSON text *text*, via *converter*.

    The text must hold a JSON object with exactly the keys *fields*: cattrs would fill
    a missing field with its default and drop an unknown one, so state written before
    the class changed would otherwise load silently wrong.

    Raises:
        SerializationError: *text* is not JSON, has other fields, or does not fit *cls*.
    """
    try:
        data = _decode_json(text)
    except ValueError as exc:
        raise SerializationError(f"stored state is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SerializationError(f"stored state is a JSON {type(data).__name__}, not an object")
    if data.keys() != fields:
        missing, unknown = sorted(fields - data.keys()), sorted(data.keys() - fields)
        raise SerializationError(
            f"stored state does not have the fields of {cls.__qualname__}: "
            f"missing {missing}, unknown {unknown}"
        )
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise SerializationError(
            f"stored state does not fit {cls.__qualname__}: {_describe(exc)}"
        ) from exc


class Codec:
    """
    Turns events into `NewRecord` objects, and `EventRecord` objects into `RecordedEvent`.

    One codec serves one store: it holds the store's registry and converter.

    .. versionadded:: 0.1.0
    """

    def __init__(self, registry: EventRegistry, converter: cattrs.Converter | None = None) -> None:
        self.registry = registry
        self.converter = converter if converter is not None else make_converter()

    def encode(self, item: object) -> NewRecord:
        """
        Encode a bare event or a `NewEvent` into a record.

        Raises:
            UnknownEventType: The event's class is not registered.
            SerializationError: The event could not be turned into JSON.
        """
        if isinstance(item, NewEvent):
            event, event_id, metadata = item.event, item.event_id, encode_metadata(item.metadata)
        else:
            # What NewEvent(item) would hold, without building one: appends of bare
            # events are the common case, and a NewEvent costs as much as the JSON.
            event, event_id, metadata = item, uuid4(), _EMPTY_METADATA
        entry = self.registry.by_class(type(event))
        try:
            data = _encode_json(self.converter.unstructure(event))
        except (TypeError, ValueError, cattrs.BaseValidationError) as exc:
            raise SerializationError(
                f"cannot encode {type(event).__qualname__} as JSON: {_describe(exc)}",
                event_type=entry.name,
            ) from exc
        return NewRecord(event_id, entry.name, entry.version, data, metadata)

    def decode(self, record: EventRecord) -> RecordedEvent[Any]:
        """
        Decode a stored record into a `RecordedEvent` at the current schema version.

        Data stored at an older schema version, or under a renamed type's old name, runs
        through its upcasters first; an event of a retired type decodes to a
        `RetiredEvent`.

        Raises:
            UnknownEventType: No class is registered under the record's type name.
            UpcastError: The record's schema version cannot be brought to the current one.
            SerializationError: The stored data is not valid JSON or does not fit the class.
        """
        # Unpacked once: reading fields of a NamedTuple by name costs more, per event.
        stream_id, version, position, event_id, event_type, _, _, metadata, at = record
        entry = self.registry.get(event_type)
        if entry is None:
            return self._decode_unregistered(record)
        return RecordedEvent(
            stream_id,
            version,
            position,
            event_id,
            at,
            decode_metadata(metadata),
            event_type,
            self.decode_event(record, entry),
        )

    def decode_event(self, record: EventRecord, entry: EventType) -> Any:
        """Return the domain event stored in *record*, whose type is *entry*."""
        data = _stored_data(record)
        if record.schema_version != entry.version:
            data = self._upgrade(record, entry, data)
        try:
            return self.converter.structure(data, entry.cls)
        except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
            detail = f"stored data does not fit {entry.cls.__qualname__}: {_describe(exc)}"
            raise _record_error(record, detail) from exc

    def _upgrade(self, record: EventRecord, entry: EventType, data: Any) -> Any:
        # Off the common path: only data stored at an older (or newer) schema version.
        chain = self.registry.chain(record.event_type, record.schema_version)
        if chain.problem is not None or chain.name != entry.name:
            raise _chain_error(record, chain)
        context: UpcastContext | None = None
        for step in chain.steps:
            if step.context and context is None:
                context = _context(record)
            try:
                if context is not None and step.context:
                    data = cast("ContextUpcaster", step.func)(data, context)
                else:
                    data = cast("Upcaster", step.func)(data)
            except Exception as exc:  # upcasters are user code: any failure is named
                raise UpcastError(
                    f"upcaster {step.describe()} failed: {type(exc).__name__}: {exc}",
                    event_type=record.event_type,
                    from_version=step.from_version,
                    upcaster=step.qualname,
                    stream_id=record.stream_id,
                    version=record.version,
                ) from exc
            if not isinstance(data, dict):
                raise UpcastError(
                    f"upcaster {step.describe()} returned {type(data).__name__}, not a dict",
                    event_type=record.event_type,
                    from_version=step.from_version,
                    upcaster=step.qualname,
                    stream_id=record.stream_id,
                    version=record.version,
                )
        return data

    def _decode_unregistered(self, record: EventRecord) -> RecordedEvent[Any]:
        # A retired type, a renamed one, or one nobody knows.
        chain = self.registry.chain(record.event_type, record.schema_version)
        if chain.retired:
            event: Any = RetiredEvent(
                record.event_type, record.schema_version, _stored_data(record)
            )
        elif not chain.steps:
            raise UnknownEventType(
                record.event_type,
                schema_version=record.schema_version,
                stream_id=record.stream_id,
                version=record.version,
                detail=self._unknown_detail(record),
            )
        elif chain.problem is not None:
            raise _chain_error(record, chain)
        else:
            event = self.decode_event(record, self.registry.by_name(chain.name))
        return RecordedEvent(
            stream_id=record.stream_id,
            version=record.version,
            position=record.position,
            event_id=record.event_id,
            recorded_at=record.recorded_at,
            metadata=decode_metadata(record.metadata),
            event_type=chain.name,
            event=event,
        )

    def _unknown_detail(self, record: EventRecord) -> str | None:
        # The plain message, unless upcasters know the name at other schema versions.
        known = sorted(
            step.from_version
            for step in self.registry.upcast_steps()
            if step.event_type == record.event_type
        )
        if not known:
            return None
        return (
            "no event class is registered under this name, and its upcasters read "
            f"schema versions {known}, not {record.schema_version}"
        )


def _chain_error(record: EventRecord, chain: UpcastChain) -> UpcastError:
    return UpcastError(
        chain.problem or f"upcasters lead to {chain.name!r}, not to this event's class",
        event_type=record.event_type,
        from_version=chain.version,
        stream_id=record.stream_id,
        version=record.version,
    )


def _context(record: EventRecord) -> UpcastContext:
    return UpcastContext(
        record.stream_id,
        record.version,
        record.event_id,
        record.recorded_at,
        decode_metadata(record.metadata),
    )


def _record_error(record: EventRecord, detail: str) -> SerializationError:
    return SerializationError(
        detail,
        stream_id=record.stream_id,
        version=record.version,
        event_type=record.event_type,
    )


def _stored_data(record: EventRecord) -> Any:
    try:
        return _decode_json(record.data)
    except ValueError as exc:
        raise _record_error(record, f"stored data is not valid JSON: {exc}") from exc
