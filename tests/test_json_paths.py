"""The two ways of reading JSON, orjson and the standard library, give identical results.

eventkit reads stored JSON with orjson when it is installed and with the standard
library otherwise (or with ``EVENTKIT_JSON=stdlib``); here orjson is given text of every
length, not only the longer text it reads by default. Each property here reads the same
input both ways: the values must be equal and of equal types all the way down
(``1`` is not ``1.0``, ``-0.0`` is not ``0.0``, key order counts), or both ways must
raise the same exception type with the same message. The inputs are where the two
parsers are known to differ (integers beyond 64 bits, numbers beyond a float's range,
escaped lone surrogates, duplicate keys, deep nesting, ``NaN``, bytes), valid JSON of
every shape, damaged JSON, the text of generated events and damaged stored events.
"""

from __future__ import annotations

import inspect
import json
import string
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import eventkit._json
import eventkit._serialization
from eventkit import NewEvent
from eventkit._json import decode_json, decode_metadata, use_orjson
from eventkit.backends import Codec
from tests.exact_events import ACCEPTED, registry
from tests.records import stored
from tests.strategies import all_text, any_event, damaged_metadata, damaged_object, metadata

pytest.importorskip("orjson", reason="the fast path needs the fast extra (orjson)")


@pytest.fixture(autouse=True, scope="module")
def _orjson_for_all_lengths():
    """Give orjson text of any length (it gets only longer text by default), then restore."""
    before, length = eventkit._json._orjson_loads is not None, eventkit._json.ORJSON_FROM
    eventkit._json.ORJSON_FROM = eventkit._serialization.ORJSON_FROM = 0
    yield
    eventkit._json.ORJSON_FROM = eventkit._serialization.ORJSON_FROM = length
    use_orjson(enabled=before)


def outcome(read, *args):
    """Return ("value", what *read* returns) or ("error", its type and message)."""
    try:
        return "value", read(*args)
    except Exception as error:  # noqa: BLE001 (any exception must match)
        return "error", (type(error), str(error))


def both(read, *args):
    """Return what *read* gives with orjson and with the standard library only."""
    assert use_orjson(enabled=True)
    fast = outcome(read, *args)
    use_orjson(enabled=False)
    try:
        slow = outcome(read, *args)
    finally:
        use_orjson(enabled=True)
    return fast, slow


def identical(a, b) -> bool:
    """Whether *a* and *b* are equal, of equal types, in equal order, all the way down."""
    pairs = [(a, b)]  # a loop, not recursion: deeply nested values are compared too
    while pairs:
        x, y = pairs.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, dict):
            if list(x) != list(y):
                return False
            pairs.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list | tuple):
            if len(x) != len(y):
                return False
            pairs.extend(zip(x, y, strict=True))
        elif isinstance(x, float):
            if repr(x) != repr(y):  # tells -0.0 from 0.0; inf equals inf
                return False
        elif x != y:
            return False
    return True


def assert_same(read, *args):
    fast, slow = both(read, *args)
    assert fast[0] == slow[0], (fast, slow)
    assert identical(fast[1], slow[1]), (fast, slow)


# -- generated JSON text ------------------------------------------------------------------

# Integers on both sides of 64 bits, where orjson would switch to floats.
edge_ints = st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(
    [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**18, 10**19, 10**30]
)
# Number literals as text: long mantissas, huge and tiny exponents, negative zero.
number_literals = st.from_regex(
    r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
) | st.sampled_from(
    ["1e400", "-1e400", "1e-400", "1.7976931348623157e308", "1.7976931348623159e308", "-0",
     "-0.0", "5e-324", "2.4e-324", "9007199254740993", "1" + "0" * 400 + ".0", "9" * 5000]
)  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | edge_ints | st.floats(allow_nan=False) | all_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(all_text, children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def json_texts(draw):
    """Return JSON text as a writer might have written it: escaped, spaced, or not."""
    value = draw(json_values)
    spacing = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", "\t:\r")]))
    text = json.dumps(value, ensure_ascii=draw(st.booleans()), separators=spacing)
    before, after = (
        draw(st.sampled_from(["", " ", "\n\t", "\r "])),
        draw(st.sampled_from(["", " ", "\n"])),
    )
    return before + text + after


@st.composite
def duplicate_keys(draw):
    """Return a JSON object text in which some keys come more than once."""
    pairs = draw(st.lists(st.tuples(st.sampled_from("abc"), json_values), min_size=2, max_size=6))
    return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}"


@st.composite
def damaged_texts(draw):
    """Return JSON text cut, spliced or edited at one place."""
    text = draw(json_texts())
    at = draw(st.integers(0, len(text)))
    way = draw(st.sampled_from(["cut", "insert", "delete", "replace"]))
    piece = draw(
        st.sampled_from([*'{}[]",:-.eE0 \\x\x00', "NaN", "Infinity", "\ud800", "\\ud800"])
        | st.text(max_size=2)
    )
    if way == "cut":
        return text[:at]
    if way == "insert":
        return text[:at] + piece + text[at:]
    if way == "delete":
        return text[:at] + text[at + 1 :]
    return text[:at] + piece + text[at + 1 :]


class TestDecodeJson:
    @given(json_texts())
    def test_valid_json_decodes_identically(self, text):
        """Any valid JSON text, however written, decodes to the same values both ways."""
        assert_same(decode_json, text)

    @given(number_literals)
    @example("123456789012345678901234567890")
    @example("[18446744073709551616]")
    def test_numbers_decode_identically(self, literal):
        """Number literals, beyond 64 bits and beyond a float's range included, read alike."""
        assert_same(decode_json, literal)
        assert_same(decode_json, f'{{"n":[{literal}]}}')

    @given(duplicate_keys())
    def test_duplicate_keys_keep_the_same_value_in_the_same_place(self, text):
        """Where a key repeats, the same value wins and the keys keep the same order."""
        assert_same(decode_json, text)

    @given(damaged_texts())
    @example('"\\ud800"')
    @example('"\\udfff\\ud800"')
    @example('"\ud800"')
    @example("NaN")
    @example("[-Infinity]")
    @example("1 2")
    @example("\ufeff{}")
    def test_damaged_json_fails_identically(self, text):
        """Damaged or odd text is refused with the same error, or read as the same value."""
        assert_same(decode_json, text)

    @given(st.text(string.printable + "\x00\u2028\ud800é😀", max_size=20))
    def test_arbitrary_text_reads_identically(self, text):
        """Text that is mostly not JSON at all gives the same error both ways."""
        assert_same(decode_json, text)

    @given(st.binary(max_size=10) | json_texts().map(str.encode))
    def test_bytes_are_refused_identically(self, raw):
        """Bytes, even of valid JSON, raise the same TypeError: only text is JSON text."""
        fast, slow = both(decode_json, raw)
        assert fast == slow
        assert fast[0] == "error"
        assert fast[1][0] is TypeError

    def test_a_subclass_of_str_reads_identically(self):
        """A str subclass takes the standard library's path, to the same value."""

        class Text(str):
            __slots__ = ()

        assert_same(decode_json, Text('{"a":[1,2.5,"x"]}'))

    @pytest.mark.parametrize("depth", [1, 100, 101, 500, 1023, 1024, 1025, 5000])
    def test_deep_nesting_reads_identically(self, depth):
        """Nesting near either parser's limit gives the same value or the same error."""
        assert_same(decode_json, "[" * depth + "]" * depth)
        assert_same(decode_json, '{"a":' * depth + "1" + "}" * depth)

    def test_deep_nesting_under_a_low_recursion_limit_reads_identically(self):
        """Nesting that a low recursion limit refuses is refused alike, by the same parser."""
        depth_now = len(inspect.stack(0))
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(depth_now + 150)
        try:
            for depth in (101, 140, 300, 1000):
                assert_same(decode_json, "[" * depth + "]" * depth)
        finally:
            sys.setrecursionlimit(limit)


class TestDecodeMetadata:
    @given(metadata.map(json.dumps) | metadata.map(json.dumps).flatmap(damaged_metadata))
    def test_metadata_reads_identically(self, text):
        """Stored metadata, whole or damaged, reads the same way both ways."""
        assert_same(decode_metadata, text)


class TestCodec:
    @given(any_event, metadata)
    def test_events_decode_identically(self, event, meta):
        """Every event the codec writes reads back the same way both ways, and exactly."""
        codec = Codec(registry)
        record = stored(codec.encode(NewEvent(event, metadata=meta)))
        assert_same(decode_json, record.data)
        fast, slow = both(codec.decode, record)
        assert fast == slow
        assert fast[0] == "value"
        assert fast[1].event == event

    @given(st.data())
    def test_damaged_events_fail_identically(self, data):
        """A damaged stored event raises the same error, with the same message, both ways."""
        codec = Codec(registry)
        record = stored(codec.encode(data.draw(any_event)))
        damaged = record._replace(data=data.draw(damaged_object(record.data, ACCEPTED)))
        fast, slow = both(codec.decode, damaged)
        assert fast == slow
