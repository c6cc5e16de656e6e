"""
JSON text as eventkit stores it: compact, exact, and decoded quickly.

Event data, metadata and snapshot states are stored as JSON text, written here and
read back here. Nothing here knows about event classes: the codec turns the decoded
values into objects.

The text is storable by every backend: valid UTF-8 (a lone surrogate in a string is
written as its JSON escape, which reads back as the same surrogate) and free of NUL
characters (JSON escapes control characters). Reading refuses what a JSON writer
never produces and Python's parser would accept: ``NaN`` and infinities.

Reading uses orjson when it is installed (the ``fast`` extra), for text of 256
characters or more: there it parses about twice as fast as the standard library, and
on shorter text its lead is smaller than the cost of checking its result. Results are
the standard library's, exactly: a result of orjson that the standard library could
give otherwise (an integer beyond 64 bits, deep nesting) is thrown away, and whatever
orjson refuses goes to the standard library's decoder, which decides (so errors are
the same too). Setting ``EVENTKIT_JSON=stdlib`` before eventkit is imported keeps
reading on the standard library. Writing always uses the standard library: orjson
writes NaN as ``null``, formats some floats differently and refuses integers beyond
64 bits, so it would store other text than eventkit has always stored.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

EMPTY_METADATA = "{}"
"""The stored text of empty metadata."""

_SURROGATE = re.compile("[\ud800-\udfff]")

_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def encode_json(value: Any) -> str:
    """
    Return *value* as compact JSON text that any backend can store.

    Text is written as itself, except lone surrogates, which no UTF-8 database can
    hold: they are written as JSON escapes, and read back as themselves.

    Raises:
        ValueError: *value* holds NaN or an infinity.
        TypeError: *value* holds something JSON cannot express.
    """
    text = _encode(value)
    # isascii() is a flag check: the scan runs only for text with non-ASCII characters.
    if not text.isascii() and _SURROGATE.search(text):
        return _SURROGATE.sub(_escape_surrogate, text)
    return text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_json_decoder = json.JSONDecoder(parse_constant=_refuse_constant)
# The decoder's C scanner (an instance attribute, untyped in the stubs).
_scan_json: Callable[[str, int], tuple[Any, int]] = vars(_json_decoder)["scan_once"]
scan_json = _scan_json
"""
Return ``(value, end)`` for the JSON value at the start of a text, as `decode_json` reads it.

The C scanner itself, for the one path that runs per event on text shorter than
`ORJSON_FROM`: when *end* is not the text's length (whitespace, more text) or it
raises, call `decode_json`, which decides.
"""


# orjson and Python's parser differ on valid JSON in two ways, both seen in orjson's
# result: it reads an integer beyond 64 bits as a float (Python: an exact int), and it
# reads nesting deeper than Python's parser can (which raises RecursionError past the
# recursion limit, 1000 by default less the caller's own depth). A result holding no
# float beyond 64 bits and nested at most _MAX_DEPTH deep is what Python's parser gives;
# any other goes to Python's parser. A float below 2**63 in size was written as a float:
# orjson keeps every integer in [-2**63, 2**64) an int.
_MAX_DEPTH = 100
ORJSON_FROM = 256
"""
The length of text from which `decode_json` asks orjson, if installed.

Measured on flat objects of strings (the usual event): on shorter text orjson's lead
is smaller than the cost of checking its result.
"""
_BIG = float(2**63)
_SCALARS = frozenset({str, int, bool, type(None)})


def _is_exact(value: Any, depth: int) -> bool:
    """Return whether orjson's *value* (a dict or a list) is Python's parser's, too."""
    if depth > _MAX_DEPTH:
        return False
    for item in value.values() if value.__class__ is dict else value:
        cls = item.__class__
        if cls is dict:
            # Most objects in events are flat: one pass in C over their values' types.
            if not _SCALARS.issuperset(map(type, item.values())) and not _is_exact(item, depth + 1):
                return False
        elif cls is list:
            if not _SCALARS.issuperset(map(type, item)) and not _is_exact(item, depth + 1):
                return False
        elif cls is float and not -_BIG < item < _BIG:
            return False
    return True


def _is_exact_value(value: Any) -> bool:
    """Return whether orjson's *value* is Python's parser's, too."""
    cls = value.__class__
    if cls is dict or cls is list:
        try:
            return _is_exact(value, 1)
        except RecursionError:
            return False  # the caller is near its recursion limit: Python's parser decides
    return cls is not float or -_BIG < value < _BIG


_orjson_loads: Callable[[str], Any] | None = None
_OrjsonError: type[Exception] = ValueError


def use_orjson(enabled: bool) -> bool:  # noqa: FBT001 (a switch, set by tests and at import)
    """
    Read JSON with orjson if *enabled* and it is installed; return whether it now is.

    Either way the decoded values and errors are the same: only speed changes.
    """
    global _orjson_loads, _OrjsonError  # noqa: PLW0603 (the one switch of this module)
    _orjson_loads = None
    if enabled:
        try:
            import orjson  # noqa: PLC0415 (optional, and only loaded when used)
        except ImportError:
            return False
        _orjson_loads, _OrjsonError = orjson.loads, orjson.JSONDecodeError
    return _orjson_loads is not None


def using_orjson() -> bool:
    """Return whether `decode_json` asks orjson (about text of `ORJSON_FROM` or more)."""
    return _orjson_loads is not None


def decode_json(text: str) -> Any:
    """
    Return the value that the JSON text *text* holds.

    Raises:
        ValueError: *text* is not JSON, or holds ``NaN`` or an infinity (which JSON
            does not have and eventkit never writes).
        TypeError: *text* is not a string.
    """
    # orjson also reads bytes, which Python's parser refuses: only exact str goes to it.
    # Short text stays with Python's scanner: orjson is faster at reading it, but not
    # by as much as checking its result costs.
    if _orjson_loads is not None and text.__class__ is str and len(text) >= ORJSON_FROM:
        try:
            value = _orjson_loads(text)
        except _OrjsonError:
            pass  # Python's parser decides: it accepts or raises as it always has
        else:
            # Most events are flat objects: their check is one pass in C over the types.
            if value.__class__ is dict and _SCALARS.issuperset(map(type, value.values())):
                return value
            if _is_exact_value(value):
                return value
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


use_orjson(os.environ.get("EVENTKIT_JSON", "").lower() != "stdlib")


def encode_metadata(metadata: Mapping[str, str]) -> str:
    """Return *metadata* as the JSON text that backends store."""
    return encode_json(dict(metadata)) if metadata else EMPTY_METADATA


def decode_metadata(text: str) -> dict[str, str]:
    """
    Return the metadata mapping stored as *text*.

    Raises:
        ValueError: *text* is not JSON, or not a JSON object whose values are strings.
        TypeError: *text* is not a string.
    """
    if text == EMPTY_METADATA:
        return {}
    result = decode_json(text)
    if result.__class__ is not dict:
        raise ValueError(f"metadata must be a JSON object, got a JSON {json_kind(result)}")
    for key, value in result.items():
        if value.__class__ is not str:
            raise ValueError(
                f"metadata values must be strings; {key!r} is a JSON {json_kind(value)}"
            )
    return result


_KINDS = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def json_kind(value: object) -> str:
    """Return the JSON name of a decoded value's type, for messages."""
    return _KINDS.get(type(value), type(value).__name__)
