"""The codec: events to records and back, exactly.

This module uses postponed annotations on purpose: event classes defined under
``from __future__ import annotations`` must work, a classic failure elsewhere.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventkit import (
    EventRegistry,
    NewEvent,
    SerializationError,
    UnknownEventType,
    UpcastError,
    event,
)
from eventkit.backends import Codec, NewRecord
from tests.records import stored
from tests.strategies import any_text, aware_datetimes, big_ints, exact_decimals

registry = EventRegistry()


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Location:
    city: str
    opened: date


@event("tests.Rich", version=2, registry=registry)
@attrs.frozen
class Rich:
    amount: Decimal
    reference: uuid.UUID
    at: datetime
    day: date
    clock: time
    level: Level
    tags: frozenset[str]
    pair: tuple[int, str]
    counts: tuple[int, ...]
    location: Location
    blob: bytes
    note: str | None = None
    nested: Location | None = None


@event("tests.Plain", registry=registry)
@attrs.frozen
class Plain:
    value: float


rich = st.builds(
    Rich,
    amount=exact_decimals,
    reference=st.uuids(),
    at=aware_datetimes,
    day=st.dates(),
    clock=st.times(),
    level=st.sampled_from(Level),
    tags=st.frozensets(any_text, max_size=4),
    pair=st.tuples(big_ints, any_text),
    counts=st.lists(big_ints, max_size=5).map(tuple),
    location=st.builds(Location, any_text, st.dates()),
    blob=st.binary(max_size=20),
    note=st.none() | any_text,
    nested=st.none() | st.builds(Location, any_text, st.dates()),
)


@pytest.fixture(name="codec")
def _codec():
    return Codec(registry)


class TestRoundTrip:
    @given(rich)
    def test_every_supported_type_round_trips_exactly(self, value):
        """Encoding then decoding gives an equal event, for any generated field values."""
        codec = Codec(registry)
        assert codec.decode(stored(codec.encode(value))).event == value

    @given(exact_decimals)
    def test_decimals_keep_every_digit(self, amount):
        """A Decimal is stored as its exact string, never through a float."""
        codec = Codec(registry)
        record = codec.encode(_rich_with(amount))
        assert f'"amount":"{amount}"' in record.data
        decoded = codec.decode(stored(record)).event.amount
        assert (str(decoded), decoded.as_tuple()) == (str(amount), amount.as_tuple())

    def test_record_names_type_and_schema_version(self, codec):
        """A record carries the registered type name and the class's current version."""
        record = codec.encode(Plain(1.5))
        assert (record.event_type, record.schema_version, record.data, record.metadata) == (
            "tests.Plain",
            1,
            '{"value":1.5}',
            "{}",
        )

    def test_text_is_stored_as_readable_utf8(self, codec):
        """Non-ASCII text is stored as itself, not as escapes."""
        record = codec.encode(_rich_with(Decimal(1), note="Zürich 😀"))
        assert "Zürich 😀" in record.data

    def test_metadata_and_event_id_are_kept(self, codec):
        """NewEvent's id and metadata travel with the record."""
        new = NewEvent(Plain(1.0), metadata={"correlation_id": "abc"})
        recorded = codec.decode(stored(codec.encode(new)))
        assert (recorded.event_id, dict(recorded.metadata)) == (
            new.event_id,
            {"correlation_id": "abc"},
        )


class TestEncodingErrors:
    def test_unregistered_class_raises_unknown_event_type(self, codec):
        """Encoding an instance of an unregistered class names the class."""

        @attrs.frozen
        class Unregistered:
            x: int

        with pytest.raises(UnknownEventType, match="Unregistered"):
            codec.encode(Unregistered(1))

    def test_non_finite_float_raises_serialization_error(self, codec):
        """NaN is not JSON: encoding refuses it, naming the event type."""
        with pytest.raises(SerializationError, match=r"tests\.Plain") as info:
            codec.encode(Plain(float("nan")))
        assert info.value.event_type == "tests.Plain"

    def test_metadata_must_be_strings(self):
        """Metadata that is not str -> str raises TypeError naming the entry."""
        with pytest.raises(TypeError, match="'attempt': 3"):
            NewEvent(Plain(1.0), metadata={"attempt": 3})  # type: ignore[dict-item]


class TestDecodingErrors:
    def test_unknown_type_names_stream_version_and_type(self, codec):
        """A stored type that no class claims raises UnknownEventType with its place."""
        record = stored(NewRecord(uuid.uuid4(), "tests.Gone", 4, "{}", "{}"), version=7)
        with pytest.raises(UnknownEventType) as info:
            codec.decode(record)
        assert str(info.value) == (
            "stream 's', version 7, position 7, event type 'tests.Gone': "
            "no event class is registered under this name"
        )
        assert info.value.schema_version == 4

    def test_malformed_json_raises_serialization_error(self, codec):
        """Data that is not JSON raises SerializationError naming stream, version, type."""
        record = stored(NewRecord(uuid.uuid4(), "tests.Plain", 1, '{"value": ', "{}"))
        with pytest.raises(SerializationError, match="not valid JSON") as info:
            codec.decode(record)
        assert (info.value.stream_id, info.value.version, info.value.event_type) == (
            "s",
            1,
            "tests.Plain",
        )

    def test_missing_field_names_the_field(self, codec):
        """Data lacking a required field says which field."""
        record = stored(NewRecord(uuid.uuid4(), "tests.Plain", 1, "{}", "{}"))
        with pytest.raises(SerializationError, match=r"missing key @ \$\.value"):
            codec.decode(record)

    def test_newer_schema_version_than_the_code_raises_upcast_error(self, codec):
        """An event written by newer code (a rollback) is refused clearly, not guessed at."""
        record = stored(NewRecord(uuid.uuid4(), "tests.Plain", 3, '{"value":1}', "{}"))
        with pytest.raises(UpcastError, match="newer than the current version 1") as info:
            codec.decode(record)
        assert info.value.from_version == 3

    def test_older_schema_version_without_upcaster_raises_upcast_error(self, codec):
        """An old version with no upcaster registered names the missing step."""
        record = stored(NewRecord(uuid.uuid4(), "tests.Rich", 1, "{}", "{}"))
        with pytest.raises(UpcastError, match="no upcaster is registered from version 1"):
            codec.decode(record)


class TestStoredJson:
    """Stored JSON is read exactly as json.loads reads it, however it was written."""

    def test_whitespace_around_stored_json_is_accepted(self, codec):
        """JSON written by other programs, with spaces and newlines around it, decodes."""
        record = stored(NewRecord(uuid.uuid4(), "tests.Plain", 1, ' \n{"value": 1.5} \n', "{}"))
        assert codec.decode(record).event == Plain(1.5)

    def test_text_after_the_json_raises_serialization_error(self, codec):
        """A complete JSON value followed by more text is refused, as json.loads does."""
        record = stored(NewRecord(uuid.uuid4(), "tests.Plain", 1, '{"value": 1}{}', "{}"))
        with pytest.raises(SerializationError, match="Extra data"):
            codec.decode(record)


def _rich_with(amount: Decimal, note: str | None = None) -> Rich:
    return Rich(
        amount=amount,
        reference=uuid.uuid4(),
        at=datetime.now(UTC),
        day=date(2020, 1, 1),
        clock=time(12, 30),
        level=Level.LOW,
        tags=frozenset(),
        pair=(1, "a"),
        counts=(),
        location=Location("x", date(2020, 1, 1)),
        blob=b"\x00\xff",
        note=note,
    )


class TestEventIds:
    def test_a_bare_event_gets_a_random_version_4_uuid(self):
        """Ids made for bare events are version 4 UUIDs, as uuid.uuid4 makes them."""
        codec = Codec(registry)
        ids = [codec.encode(Plain(1.5)).event_id for _ in range(50)]
        assert len(set(ids)) == 50
        for event_id in ids:
            same = uuid.UUID(str(event_id))
            assert (event_id.version, event_id.variant) == (4, uuid.RFC_4122)
            assert (event_id, hash(event_id), event_id.bytes) == (same, hash(same), same.bytes)
