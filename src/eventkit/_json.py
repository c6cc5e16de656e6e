"""
JSON text as eventkit stores it: compact, exact, and decoded quickly.

Event data, metadata and snapshot states are stored as JSON text, written here and
read back here. Nothing here knows about event classes: the codec turns the decoded
values into objects.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

EMPTY_METADATA = "{}"
"""The stored text of empty metadata."""

encode_json: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":")
).encode
"""Return *value* as compact JSON text; NaN and infinities are refused (ValueError)."""

_json_decoder = json.JSONDecoder()
# The decoder's C scanner (an instance attribute, untyped in the stubs).
_scan_json: Callable[[str, int], tuple[Any, int]] = vars(_json_decoder)["scan_once"]


def decode_json(text: str) -> Any:
    """
    Return the value that the JSON text *text* holds.

    Raises:
        ValueError: *text* is not JSON (``json.JSONDecodeError``).
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
    """Return the metadata mapping stored as *text*."""
    if text == EMPTY_METADATA:
        return {}
    result: dict[str, str] = decode_json(text)
    return result
