"""
Serialization: events and aggregate states to stored text and back.

Backends never see domain objects: they store and return records (`NewRecord` in,
`EventRecord` out) whose data and metadata are JSON text encoded here, once. Old data
is brought up to date by the upcaster chains of `_upcasting` on its way back in, and
structured strictly by the converter of `_converter`: decoding returns exactly what
was written, or raises `SerializationError` naming the stored event and the field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import cattrs

from eventkit._converter import describe as _describe
from eventkit._converter import make_converter
from eventkit._envelope import NewEvent, RecordedEvent, new_event_id
from eventkit._events import RetiredEvent
from eventkit._json import (
    EMPTY_METADATA,
    ORJSON_FROM,
    decode_json,
    decode_metadata,
    encode_json,
    encode_metadata,
    scan_json,
)
from eventkit._records import EventRecord, NewRecord
from eventkit._upcasting import UpcastChains, chain_error
from eventkit.exceptions import SerializationError, UnknownEventType, UpcastError

if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Set as AbstractSet

    from eventkit._events import EventRegistry, EventType

__all__ = ["Codec", "make_converter"]

T = TypeVar("T")


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
        self._entry = registry.lookup()
        self._hook = _hook_lookup(self.converter)

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
            event, event_id, metadata = item, new_event_id(), EMPTY_METADATA
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
        stream_id, version, position, event_id, event_type, schema_version, data, metadata, at = (
            record
        )
        entry = self._entry(event_type)
        if entry is None:
            return self._decode_unregistered(record)
        event: Any = _NOT_READ
        if schema_version == entry.version:
            # The common case: JSON at the current version that fits the class.
            # Anything else (whitespace, bad JSON, data that does not fit) takes the
            # general path, which decides what it is and names it.
            cls = entry.cls
            try:
                if len(data) < ORJSON_FROM:
                    # The scanner without decode_json's frame: most events are this short.
                    value, end = scan_json(data, 0)
                    if end == len(data):
                        event = self._hook(cls)(value, cls)
                else:
                    event = self._hook(cls)(decode_json(data), cls)
            except Exception:  # noqa: BLE001, S110 (decode_event says what went wrong)
                pass
        if event is _NOT_READ:
            event = self.decode_event(record, entry)
        return RecordedEvent(
            stream_id,
            version,
            position,
            event_id,
            at,
            {} if metadata == EMPTY_METADATA else stored_metadata(record),
            event_type,
            event,
        )

    def decode_event(self, record: EventRecord, entry: EventType) -> Any:
        """
        Return the domain event stored in *record*, whose type is *entry*.

        Raises:
            UpcastError: The record's data cannot be brought to the current schema
                version, or an upcaster returned data that does not fit the class.
            SerializationError: The stored data is not JSON or does not fit the class.
        """
        data = _stored_data(record)
        if record.schema_version != entry.version:
            # Off the common path: only data stored at an older (or newer) schema version.
            data = self.upcasting.upgrade(record, entry.name, data)
            return self._structure_upcast(record, entry, data)
        try:
            return self.converter.structure(data, entry.cls)
        except Exception as exc:  # user hooks and validators may raise anything
            detail = f"stored data does not fit {entry.cls.__qualname__}: {_describe(exc)}"
            raise _record_error(record, detail) from exc

    def _structure_upcast(self, record: EventRecord, entry: EventType, data: Any) -> Any:
        try:
            return self.converter.structure(data, entry.cls)
        except Exception as exc:  # user hooks and validators may raise anything
            # The stored data was fine when written: the upcasters made it wrong.
            step = self.upcasting.chain(record.event_type, record.schema_version).steps[-1]
            raise UpcastError(
                f"upcaster {step.describe()} returned data that does not fit "
                f"{entry.cls.__qualname__}: {_describe(exc)}",
                event_type=record.event_type,
                from_version=record.schema_version,
                upcaster=step.qualname,
                stream_id=record.stream_id,
                version=record.version,
                position=record.position,
            ) from exc

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
                position=record.position,
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
            event_type=chain.name,
            event=event,
            metadata=stored_metadata(record),
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
        except (ValueError, TypeError) as exc:
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
        except Exception as exc:  # user hooks and validators may raise anything
            raise SerializationError(
                f"stored state does not fit {cls.__qualname__}: {_describe(exc)}"
            ) from exc


_NOT_READ: Any = object()


def _hook_lookup(converter: cattrs.Converter) -> Callable[[type], Callable[[Any, type], Any]]:
    """Return the converter's cached lookup of structuring hooks, or a function doing as it does."""
    # cattrs keeps hooks in an lru_cache that it clears whenever a hook is registered,
    # so calling it directly stays correct and saves converter.structure's own frame.
    dispatch = getattr(getattr(converter, "_structure_func", None), "dispatch", None)
    if callable(dispatch):
        return dispatch  # type: ignore[no-any-return]
    return converter.get_structure_hook  # pragma: no cover (a cattrs without the cache)


def _record_error(record: EventRecord, detail: str) -> SerializationError:
    return SerializationError(
        detail,
        stream_id=record.stream_id,
        version=record.version,
        event_type=record.event_type,
        position=record.position,
    )


def _stored_data(record: EventRecord) -> Any:
    try:
        return decode_json(record.data)
    except (ValueError, TypeError) as exc:
        raise _record_error(record, f"stored data is not valid JSON: {exc}") from exc


def stored_metadata(record: EventRecord) -> dict[str, str]:
    """
    Return the metadata stored in *record*.

    Raises:
        SerializationError: It is not a JSON object of strings, naming the record.
    """
    try:
        return decode_metadata(record.metadata)
    except (ValueError, TypeError) as exc:
        raise _record_error(record, f"stored metadata is damaged: {exc}") from exc
