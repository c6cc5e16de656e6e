"""The converter reads stored data strictly: the value written, or an error naming the field."""

from __future__ import annotations

import enum
import json
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Generic, Literal, TypeVar

import attrs
import pytest
from hypothesis import given

from eventkit import (
    EventRegistry,
    SerializationError,
    UnknownEventType,
    event,
    make_converter,
)
from eventkit._converter import describe
from eventkit.backends import Codec, NewRecord
from tests.records import stored
from tests.strategies import all_text

registry = EventRegistry()
NIL = uuid.UUID(int=0)


class Size(enum.Enum):
    SMALL = 1
    LARGE = "large"


@attrs.frozen
class Inner:
    name: str
    rank: int = 0


@event("strict.Fields", registry=registry)
@attrs.frozen
class Fields:
    text: str = ""
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    amount: Decimal = Decimal(0)
    ref: uuid.UUID = NIL
    at: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    day: date = date(2024, 1, 1)
    clock: time = time(0)
    size: Size = Size.SMALL
    blob: bytes = b""
    counts: tuple[int, ...] = ()
    pair: tuple[int, str] = (0, "")
    tags: frozenset[str] = frozenset()
    names: list[str] = attrs.Factory(list)
    scores: dict[str, int] = attrs.Factory(dict)
    by_number: dict[int, str] = attrs.Factory(dict)
    inner: Inner = Inner("")
    note: str | None = None
    mode: Literal["a", 1] = "a"


WRITTEN = Fields()

hooked = EventRegistry()
T = TypeVar("T")


class Code(str):
    """A subclass of str, as users define for ids."""

    __slots__ = ()


@attrs.frozen
class Box(Generic[T]):
    item: T


@event("strict.Odds", registry=registry)
@attrs.frozen
class Odds:
    code: Code
    box: Box[int]
    small: float = 0.0


@attrs.frozen
class Money:
    """A user's type, written by a hook of the user's."""

    cents: int


@event("strict.Paid", registry=hooked)
@attrs.frozen
class Paid:
    price: Money


@attrs.frozen
class Odd:
    value: int


@event("strict.HasOdd", registry=hooked)
@attrs.frozen
class HasOdd:
    odd: Odd


def record_with(**changes: object) -> NewRecord:
    """Return the stored record of `Fields()` with some stored values changed."""
    data = json.loads(Codec(registry).encode(WRITTEN).data) | changes
    return NewRecord(uuid.uuid4(), "strict.Fields", 1, json.dumps(data), "{}")


def decode(record: NewRecord):
    return Codec(registry).decode(stored(record, stream_id="orders-7", version=3)).event


class TestRefusedValues:
    @pytest.mark.parametrize(
        ("field", "value", "says"),
        [
            ("text", None, "expected a string, got a JSON null"),
            ("text", {"a": 1}, "expected a string, got a JSON object"),
            ("text", 5, "expected a string, got a JSON number"),
            ("count", 3.7, "expected an integer, got a JSON number"),
            ("count", 3.0, "expected an integer, got a JSON number"),
            ("count", True, "expected an integer, got a JSON boolean"),
            ("count", "3", "expected an integer, got a JSON string"),
            ("ratio", True, "expected a number, got a JSON boolean"),
            ("ratio", "1.5", "expected a number, got a JSON string"),
            ("ratio", 2**60 + 1, "is not exactly a float"),
            ("flag", 0, "expected true or false"),
            ("flag", "false", "expected true or false"),
            ("amount", 12.5, "expected a decimal number as a string, got a JSON number"),
            ("amount", " 1.5", "not a decimal as eventkit writes it"),
            ("amount", "1_000", "not a decimal as eventkit writes it"),
            ("amount", "lots", "is not a decimal number"),
            ("ref", 5, "expected a UUID as a string"),
            ("ref", "not-a-uuid", "is not a UUID"),
            ("at", "2024-01-01T00:00:00", "has no timezone"),
            ("at", 1_700_000_000, "expected an ISO 8601 datetime"),
            ("day", "yesterday", "is not an ISO 8601 date"),
            ("clock", 12, "expected an ISO 8601 time"),
            ("size", 1.0, "expected 1 as a JSON number, got a JSON number"),
            ("size", True, "expected 1 as a JSON number, got a JSON boolean"),
            ("size", "medium", "is not a value of Size"),
            ("blob", "!!not base64!!", "is not base64"),
            ("blob", "AA=", "is not base64"),
            ("counts", "12", "expected an array, got a JSON string"),
            ("counts", {"0": 1}, "expected an array, got a JSON object"),
            ("pair", [1], "expected an array of 2 items, got 1"),
            ("pair", [1, "a", "b"], "expected an array of 2 items, got 3"),
            ("tags", ["a", "a"], "holds the same item twice"),
            ("scores", [["a", 1]], "expected an object"),
            ("by_number", {"01": "x"}, "expected an integer as a key"),
            ("inner", "Ada", "expected an object, got a JSON string"),
            ("note", 5, "expected a string, got a JSON number"),
            ("mode", True, "is not one of"),
        ],
    )
    def test_a_value_of_another_type_is_refused_naming_the_field(self, field, value, says):
        """A stored value that does not have its field's type raises, naming the field path."""
        with pytest.raises(SerializationError) as info:
            decode(record_with(**{field: value}))
        message = str(info.value)
        assert message.startswith("stream 'orders-7', version 3, position 3, event type ")
        assert f"{says}" in message
        assert f"@ $.{field}" in message

    @pytest.mark.parametrize(
        ("field", "value", "path"),
        [
            ("counts", [1, "2"], "$.counts[1]"),
            ("names", ["a", None], "$.names[1]"),
            ("pair", ["1", "a"], "$.pair[0]"),
            ("tags", ["a", 1], "$.tags[1]"),
            ("inner", {"name": 1, "rank": 0}, "$.inner.name"),
        ],
    )
    def test_a_wrong_item_inside_a_container_is_named_by_its_path(self, field, value, path):
        """A wrongly typed item of a list, tuple, set or nested class is named by its index."""
        with pytest.raises(SerializationError) as info:
            decode(record_with(**{field: value}))
        assert str(info.value).endswith(f"@ {path}")


class TestPythonValues:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("amount", Decimal("1.5")),
            ("ref", uuid.UUID(int=5)),
            ("at", datetime(2024, 1, 1, tzinfo=UTC)),
            ("day", date(2024, 1, 1)),
            ("clock", time(1, 2)),
            ("blob", b"\x01"),
            ("counts", (1, 2)),
            ("tags", {"a"}),
        ],
    )
    def test_an_upcasters_python_value_of_the_fields_type_is_kept(self, field, value):
        """An upcaster may return the field's own Python type: it is exact, so it is kept."""
        converter = make_converter()
        data = converter.unstructure(WRITTEN) | {field: value}
        assert getattr(converter.structure(data, Fields), field) == value

    @pytest.mark.parametrize(
        ("field", "value", "says"),
        [
            ("at", datetime(2024, 1, 1), "has no timezone"),  # noqa: DTZ001
            ("at", date(2024, 1, 1), "expected an ISO 8601 datetime"),
            ("day", datetime(2024, 1, 1, tzinfo=UTC), "expected an ISO 8601 date"),
            ("blob", bytearray(b"x"), "expected base64 text"),
            ("amount", 1.5, "expected a decimal number as a string"),
        ],
    )
    def test_an_upcasters_python_value_of_another_type_is_refused(self, field, value, says):
        """A Python value of another type than the field's is refused, as stored data is."""
        converter = make_converter()
        data = converter.unstructure(WRITTEN) | {field: value}
        with pytest.raises(Exception) as info:  # noqa: PT011 (cattrs' error, described below)
            converter.structure(data, Fields)
        assert says in describe(info.value)

    def test_subclasses_of_builtins_and_generic_classes_read_exactly(self):
        """A str subclass field and a generic attrs class read back exactly, strictly."""
        codec = Codec(registry)
        value = Odds(Code("c-1"), Box(3))
        decoded = codec.decode(stored(codec.encode(value))).event
        assert (decoded, type(decoded.code)) == (value, Code)

    @pytest.mark.parametrize(
        ("changes", "path"),
        [
            ({"code": 5}, "$.code"),
            ({"box": {"item": "3"}}, "$.box.item"),
            ({"small": 10**400}, "$.small"),
        ],
    )
    def test_subclasses_and_generic_classes_are_read_strictly(self, changes, path):
        """The same rules hold inside generic classes and for subclasses of builtins."""
        data = {"code": "c", "box": {"item": 1}, "small": 0.0} | changes
        record = NewRecord(uuid.uuid4(), "strict.Odds", 1, json.dumps(data), "{}")
        with pytest.raises(SerializationError) as info:
            Codec(registry).decode(stored(record))
        assert str(info.value).endswith(f"@ {path}")


class TestKeys:
    def test_a_missing_key_is_refused_though_the_field_has_a_default(self):
        """A key dropped from stored data is not filled with the field's default."""
        data = json.loads(record_with().data)
        del data["note"]
        record = NewRecord(uuid.uuid4(), "strict.Fields", 1, json.dumps(data), "{}")
        with pytest.raises(SerializationError, match=r"missing key @ \$\.note"):
            decode(record)

    def test_an_unknown_key_is_refused_not_dropped(self):
        """A key the class does not have (newer code wrote it) raises instead of being lost."""
        with pytest.raises(SerializationError, match=r"unknown keys \['colour'\].*@ \$"):
            decode(record_with(colour="red"))

    def test_an_unknown_key_in_a_nested_object_is_refused(self):
        """Nested classes are read as strictly as events."""
        with pytest.raises(SerializationError, match=r"unknown keys \['x'\].*@ \$\.inner"):
            decode(record_with(inner={"name": "a", "rank": 1, "x": 2}))

    def test_a_snapshot_with_an_unknown_key_is_refused_as_an_event_is(self):
        """Snapshot states follow the same rule as event data: exactly the class's keys."""
        codec = Codec(registry)
        state = json.loads(codec.encode_state(Inner("a"))) | {"extra": 1}
        with pytest.raises(SerializationError, match="unknown \\['extra'\\]"):
            codec.decode_state(json.dumps(state), Inner, fields={"name", "rank"})


class TestAcceptedValues:
    def test_every_field_reads_back_exactly(self):
        """What eventkit writes, it reads back equal."""
        value = Fields(
            text="t",
            count=-(2**70),
            ratio=0.1,
            flag=True,
            amount=Decimal("-1.50E+3"),
            ref=uuid.uuid4(),
            day=date(1999, 12, 31),
            clock=time(23, 59, 59, 999999),
            size=Size.LARGE,
            blob=b"\x00\xff",
            counts=(1, 2),
            pair=(3, "x"),
            tags=frozenset({"a", "b"}),
            names=["n"],
            scores={"s": 1},
            by_number={-1: "minus one", 10: "ten"},
            inner=Inner("i", 2),
            note="memo",
            mode=1,
        )
        codec = Codec(registry)
        assert codec.decode(stored(codec.encode(value))).event == value

    def test_an_integer_reads_as_a_float_when_it_is_exactly_one(self):
        """JSON writers may drop '.0': an integer that is exactly a float reads as that float."""
        ratio = decode(record_with(ratio=3)).ratio
        assert (ratio, type(ratio)) == (3.0, float)

    def test_an_integer_reads_as_a_decimal_exactly(self):
        """A JSON integer for a Decimal field is exact, so it reads as that Decimal."""
        assert decode(record_with(amount=10**30)).amount == Decimal(10**30)

    @given(all_text)
    def test_any_text_round_trips_lone_surrogates_included(self, text):
        """Any Python string, lone surrogates included, is stored as valid UTF-8 and read back."""
        codec = Codec(registry)
        record = codec.encode(Fields(text=text))
        record.data.encode()  # storable as UTF-8
        assert "\x00" not in record.data
        assert codec.decode(stored(record)).event.text == text


class TestConverterHooks:
    def test_a_hook_registered_for_a_users_type_is_used(self):
        """make_converter stays the extension point: users register hooks for their types."""
        converter = make_converter()
        converter.register_unstructure_hook(Money, lambda money: f"{money.cents}c")
        converter.register_structure_hook(Money, lambda text, _: Money(int(text[:-1])))
        codec = Codec(hooked, converter)
        record = codec.encode(Paid(Money(250)))
        assert (record.data, codec.decode(stored(record)).event) == (
            '{"price":"250c"}',
            Paid(Money(250)),
        )

    def test_a_users_hook_failing_is_a_located_serialization_error(self):
        """Whatever a user's hook raises, reading raises SerializationError naming the event."""
        converter = make_converter()
        converter.register_structure_hook(Odd, _refuse_odd)
        codec = Codec(hooked, converter)
        record = NewRecord(uuid.uuid4(), "strict.HasOdd", 1, '{"odd": 3}', "{}")
        with pytest.raises(SerializationError, match=r"'strict\.HasOdd'.*odd values") as info:
            codec.decode(stored(record))
        assert isinstance(info.value.__cause__, Exception)

    def test_a_naive_datetime_is_refused_when_written(self):
        """A datetime without a timezone cannot be read back exactly: encoding refuses it."""
        with pytest.raises(SerializationError, match="no timezone"):
            Codec(registry).encode(Fields(at=datetime(2024, 1, 1)))  # noqa: DTZ001

    def test_an_unregistered_type_still_raises_unknown_event_type(self):
        """Strictness does not change what an unknown type name raises."""
        record = NewRecord(uuid.uuid4(), "strict.Gone", 1, "{}", "{}")
        with pytest.raises(UnknownEventType):
            decode(record)


def _refuse_odd(value, _):
    raise RuntimeError(f"odd values like {value} are not stored")
