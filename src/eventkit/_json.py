"""
JSON text as eventkit stores it: compact, exact, and decoded quickly.

Event data, metadata and snapshot states are stored as JSON text, written here and
read back here. Nothing here knows about event classes: the codec turns the decoded
values into objects.

The text is storable by every backend: valid UTF-8 (a lone surrogate in a string is
written as its JSON escape, which reads back as the same surrogate) and free of NUL
characters (JSON escapes control characters). Reading refuses what a JSON writer
never produces and Python's parser would accept: ``NaN`` and infinities.
"""

from __future__ import annotations

import json
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

The C scanner itself, for the one path that runs per event: when *end* is not the
text's length (whitespace, more text) or it raises, call `decode_json`, which decides.
"""


def decode_json(text: str) -> Any:
    """
    Return the value that the JSON text *text* holds.

    Raises:
        ValueError: *text* is not JSON, or holds ``NaN`` or an infinity (which JSON
            does not have and eventkit never writes).
        TypeError: *text* is not a string.
    """
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
