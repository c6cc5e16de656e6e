"""
Serialization: events and aggregate states to stored text and back.

This is the only module that imports cattrs. Backends never see domain objects: they
store and return records (`NewRecord` in, `EventRecord` out) whose data and metadata
are JSON text encoded here, once. Old data is brought up to date by the upcaster
chains of `_upcasting` on its way back in.
"""

from __future__ import annotations

import base64
from collections.abc import Set as AbstractSet
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID, uuid4

import cattrs

from eventkit._envelope import NewEvent, RecordedEvent
from eventkit._events import RetiredEvent
from eventkit._json import (
    EMPTY_METADATA,
    decode_json,
    decode_metadata,
    encode_json,
    encode_metadata,
)
from eventkit._records import EventRecord, NewRecord
from eventkit._upcasting import UpcastChains, chain_error
from eventkit.exceptions import SerializationError, UnknownEventType

if TYPE_CHECKING:
    from eventkit._events import EventRegistry, EventType

T = TypeVar("T")


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


class Codec:
    """
    Turns events into `NewRecord` objects, and `EventRecord` objects into `RecordedEvent`.

    One codec serves one store: it holds the store's registry, its converter and the
    cache of its upcaster chains. It also encodes and decodes aggregate states for
    snapshots, with the same converter.

    .. versionadded:: 0.1.0
    """

    def __init__(self, registry: EventRegistry, converter: cattrs.Converter | None = None) -> None:
        self.registry = registry
        self.converter = converter if converter is not None else make_converter()
        self.upcasting = UpcastChains(registry)

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
            event, event_id, metadata = item, uuid4(), EMPTY_METADATA
        entry = self.registry.by_class(type(event))
        try:
            data = encode_json(self.converter.unstructure(event))
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
            # Off the common path: only data stored at an older (or newer) schema version.
            data = self.upcasting.upgrade(record, entry.name, data)
        try:
            return self.converter.structure(data, entry.cls)
        except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
            detail = f"stored data does not fit {entry.cls.__qualname__}: {_describe(exc)}"
            raise _record_error(record, detail) from exc

    def _decode_unregistered(self, record: EventRecord) -> RecordedEvent[Any]:
        # A retired type, a renamed one, or one nobody knows.
        chain = self.upcasting.chain(record.event_type, record.schema_version)
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
                detail=self.upcasting.unknown_detail(record),
            )
        elif chain.problem is not None:
            raise chain_error(record, chain)
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

    def encode_state(self, obj: object) -> str:
        """
        Return the attrs instance *obj* (an aggregate's state) as JSON text.

        Fields declared with ``init=False`` are left out, as cattrs leaves them out.

        Raises:
            SerializationError: A field cannot be turned into JSON.
        """
        try:
            return encode_json(self.converter.unstructure(obj))
        except (TypeError, ValueError, cattrs.BaseValidationError) as exc:
            raise SerializationError(
                f"cannot encode the state of {type(obj).__qualname__} as JSON: {_describe(exc)}"
            ) from exc

    def decode_state(self, text: str, cls: type[T], *, fields: AbstractSet[str]) -> T:
        """
        Return an instance of *cls* built from the JSON text *text*.

        The text must hold a JSON object with exactly the keys *fields*: cattrs would
        fill a missing field with its default and drop an unknown one, so state written
        before the class changed would otherwise load silently wrong.

        Raises:
            SerializationError: *text* is not JSON, has other fields, or does not fit *cls*.
        """
        try:
            data = decode_json(text)
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
            return self.converter.structure(data, cls)
        except (
            cattrs.BaseValidationError,
            TypeError,
            ValueError,
            KeyError,
            AttributeError,
        ) as exc:
            raise SerializationError(
                f"stored state does not fit {cls.__qualname__}: {_describe(exc)}"
            ) from exc


def _record_error(record: EventRecord, detail: str) -> SerializationError:
    return SerializationError(
        detail,
        stream_id=record.stream_id,
        version=record.version,
        event_type=record.event_type,
    )


def _stored_data(record: EventRecord) -> Any:
    try:
        return decode_json(record.data)
    except ValueError as exc:
        raise _record_error(record, f"stored data is not valid JSON: {exc}") from exc
