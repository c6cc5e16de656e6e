"""
The message format: one event as the relay publishes it, CloudEvents in structured mode.

The body is a JSON object with the CloudEvents 1.0 attributes (``specversion``, ``id``,
``source``, ``type``, ``subject``, ``time``, ``datacontenttype``, ``data``) and
eventkit's extension attributes (``schemaversion``, ``streamversion``, ``position``,
``correlationid``, ``causationid``, ``metadata``). ``data`` is the event's JSON exactly
as the store keeps it, at its stored schema version: a consumer with eventkit upcasts
it on read, as the store would. Positions travel as strings, because PostgreSQL's are
larger than a JSON number can carry exactly. See :doc:`/reference/message-format`.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from eventkit._json import decode_metadata, encode_json, encode_metadata
from eventkit._records import EventRecord
from eventkit.exceptions import SerializationError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
DATA_CONTENT_TYPE = "application/json"
HEADER_EVENT_ID = "eventkit-event-id"
HEADER_STREAM_ID = "eventkit-stream-id"
HEADER_STREAM_VERSION = "eventkit-stream-version"
HEADER_POSITION = "eventkit-position"
HEADER_EVENT_TYPE = "eventkit-event-type"
_SUBJECT_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@attrs.frozen
class BrokerMessage:
    """
    One event as published to a broker: its body, its headers, and what a relay routes by.

    Build one with `from_record`; read one with `to_record`. The body is a CloudEvents
    1.0 event in JSON (structured mode), so consumers in any language can read it; the
    headers repeat the event id, stream, version, position and type, for brokers and
    consumers that route or deduplicate without parsing the body.

    Attributes:
        stream_id: The event's stream: the Kafka key, and the last token of the NATS
            subject.
        version: The event's version in its stream.
        position: The event's global position in the store.
        event_id: The event's id: the NATS ``Nats-Msg-Id``, by which the server drops
            duplicates.
        event_type: The stored type name.
        body: The message body, UTF-8 JSON.

    .. versionadded:: 0.1.0
    """

    stream_id: str
    version: int
    position: int
    event_id: uuid.UUID
    event_type: str
    body: bytes

    @classmethod
    def from_record(cls, record: EventRecord, *, source: str) -> BrokerMessage:
        """
        Return the message that carries the stored event *record*.

        Args:
            record: The event as the store keeps it.
            source: The CloudEvents ``source``: names the store or service the events
                come from (a URI reference, such as ``"/bookings"``).
        """
        metadata = decode_metadata(record.metadata)
        head: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": str(record.event_id),
            "source": source,
            "type": record.event_type,
            "subject": record.stream_id,
            "time": record.recorded_at.isoformat(),
            "datacontenttype": DATA_CONTENT_TYPE,
            "schemaversion": record.schema_version,
            "streamversion": record.version,
            "position": str(record.position),
        }
        for key, name in (("correlation_id", "correlationid"), ("causation_id", "causationid")):
            if key in metadata:
                head[name] = metadata[key]
        head["metadata"] = metadata
        # The stored data goes in as it is stored, byte for byte: it is JSON already.
        text = encode_json(head)[:-1] + ',"data":' + record.data + "}"
        return cls(
            record.stream_id,
            record.version,
            record.position,
            record.event_id,
            record.event_type,
            text.encode(),
        )

    @property
    def headers(self) -> dict[str, str]:
        """The content type, event id, stream, version, position and type, as headers."""
        return {
            "content-type": CONTENT_TYPE,
            HEADER_EVENT_ID: str(self.event_id),
            HEADER_STREAM_ID: self.stream_id,
            HEADER_STREAM_VERSION: str(self.version),
            HEADER_POSITION: str(self.position),
            HEADER_EVENT_TYPE: self.event_type,
        }

    @staticmethod
    def to_record(body: bytes) -> EventRecord:
        """
        Return the stored event that the message *body* carries.

        Raises:
            SerializationError: *body* is not a message in this format.
        """
        try:
            fields = _fields(json.loads(body))
            metadata = fields.get("metadata", {})
            return EventRecord(
                stream_id=_text(fields, "subject"),
                version=_number(fields, "streamversion"),
                position=int(_text(fields, "position")),
                event_id=uuid.UUID(_text(fields, "id")),
                event_type=_text(fields, "type"),
                schema_version=_number(fields, "schemaversion"),
                data=encode_json(fields["data"]),
                metadata=encode_metadata(metadata),
                recorded_at=datetime.fromisoformat(_text(fields, "time")),
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SerializationError(
                f"not an eventkit event message: {type(exc).__name__}: {exc}"
            ) from exc


def _fields(value: object) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("specversion") != SPEC_VERSION:
        raise ValueError("the body is not a CloudEvents 1.0 event in JSON")
    return value


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {value!r}")
    return value


def _number(fields: dict[str, Any], name: str) -> int:
    value = fields[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return value


def subject_token(stream_id: str) -> str:
    """
    Return *stream_id* as one token of a NATS subject.

    Letters, digits, ``-`` and ``_`` stay; every other character (``.``, ``*``, ``>``,
    spaces, ``%``, non-ASCII) becomes ``%`` and two hex digits per UTF-8 byte.
    """
    return "".join(
        char if char in _SUBJECT_SAFE else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in stream_id
    )


def waves(records: Sequence[EventRecord]) -> Iterator[list[EventRecord]]:
    """
    Split *records* (in feed order) into runs in which no stream appears twice.

    A relay publishes a run at once and waits until the broker acknowledged all of it
    before the next: a stream's next event is never sent before its previous one is
    stored, whatever fails, while different streams' events travel together.
    """
    run: list[EventRecord] = []
    streams: set[str] = set()
    for record in records:
        if record.stream_id in streams:
            yield run
            run, streams = [], set()
        run.append(record)
        streams.add(record.stream_id)
    if run:
        yield run
