"""Hypothesis strategies shared by the test modules."""

from datetime import UTC, timedelta, timezone
from decimal import Decimal

from hypothesis import strategies as st

# Decimals with far more digits than a float holds, and the awkward ones.
exact_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None) | st.sampled_from(
    [Decimal("-0"), Decimal("1E+30"), Decimal("0.000000000000000000000000001")]
)
# Non-BMP characters included (emoji, CJK extension B); surrogates cannot be stored as UTF-8.
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
big_ints = st.integers(min_value=-(2**63), max_value=2**63) | st.sampled_from(
    [-(2**63), 2**63 - 1, 2**63, 2**64 + 1]
)
timezones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=45)), timezone(timedelta(hours=-11))]
)
aware_datetimes = st.datetimes(timezones=timezones)

# -- events of every supported type (tests/exact_events.py) ----------------------------------

import json  # noqa: E402

from tests.corruption import (  # noqa: E402
    EVENT_COLUMN_DAMAGE,
    OTHER_TYPES,
    SNAPSHOT_COLUMN_DAMAGE,
)
from tests.exact_events import (  # noqa: E402
    ACCEPTED,
    REPLACEMENTS,
    WALLET_ACCEPTED,
    Colour,
    Labelled,
    Place,
    Scalars,
    Shapes,
    Values,
    json_kind,
)

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.builds(
    Scalars,
    text=any_text,
    count=big_ints,
    ratio=finite_floats,
    flag=st.booleans(),
    amount=exact_decimals,
)
values = st.builds(
    Values,
    ref=st.uuids(),
    at=aware_datetimes,
    day=st.dates(),
    clock=st.times(),
    colour=st.sampled_from(Colour),
    blob=st.binary(max_size=12),
)
places = st.builds(Place, city=any_text, since=st.dates())
shapes = st.builds(
    Shapes,
    tags=st.frozensets(any_text, max_size=3),
    counts=st.lists(big_ints, max_size=3).map(tuple),
    pair=st.tuples(big_ints, any_text),
    names=st.lists(any_text, max_size=3),
    scores=st.dictionaries(any_text, big_ints, max_size=3),
    place=places,
    note=st.none() | any_text,
)
labelled = st.builds(Labelled, amount=exact_decimals, label=any_text, size=big_ints)
any_event = st.one_of(scalars, values, shapes)
metadata = st.dictionaries(any_text, any_text, max_size=3)

# Any text at all: control characters, NUL, lone surrogates, text outside the BMP.
surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
all_text = st.text(st.characters(exclude_categories=()) | surrogates, max_size=8)
# Ids, and prefixes, that some database could not store, and some every database can.
awkward_ids = all_text | st.sampled_from(
    ["\x00", "\ud800", "\udfff", "😀", "\x01", "\n", " ", "a\x00b", "é"]
)
stream_id_candidates = st.lists(awkward_ids, min_size=1, max_size=8, unique=True)


# -- ways to damage JSON text ------------------------------------------------------------------


@st.composite
def damaged_object(draw, text: str, accepted: dict[str, set[str]]) -> str:
    """
    Return the JSON object *text* damaged so that no strict reader can accept it.

    A value is given a JSON kind its field does not accept, a key is dropped or one
    added, the text is cut short or replaced by what is not an object.
    """
    data = json.loads(text)
    ways = ["truncate", "not json", "not an object", "add a key"]
    if data:
        ways += ["drop a key", "change a type"]
    way = draw(st.sampled_from(ways))
    if way == "truncate":
        return text[: draw(st.integers(0, len(text) - 1))]
    if way == "not json":
        return draw(st.sampled_from(["", "not json", "NaN", "{'single': 'quotes'}", "{1: 2}"]))
    if way == "not an object":
        return json.dumps(draw(st.sampled_from([[], "text", 3, None, True])))
    if way == "add a key":
        key = draw(st.text(min_size=1, max_size=5).filter(lambda k: k not in data))
        return json.dumps({**data, key: draw(st.sampled_from(list(REPLACEMENTS.values())))})
    key = draw(st.sampled_from(sorted(data)))
    if way == "drop a key":
        return json.dumps({k: v for k, v in data.items() if k != key})
    wrong = sorted(set(REPLACEMENTS) - accepted.get(key, set()) - {json_kind(data[key])})
    return json.dumps({**data, key: REPLACEMENTS[draw(st.sampled_from(wrong))]})


@st.composite
def damaged_metadata(draw, text: str) -> str:
    """Return metadata text that is not a JSON object of strings."""
    data = json.loads(text)
    ways = ["not json", "not an object", "a value not a string"]
    if text != "{}":
        ways.append("truncate")
    way = draw(st.sampled_from(ways))
    if way == "truncate":
        return text[: draw(st.integers(1, len(text) - 1))]
    if way == "not json":
        return draw(st.sampled_from(["", "nope", "{", "NaN"]))
    if way == "not an object":
        return json.dumps(draw(st.sampled_from([["a"], "a", 1, None])))
    value = draw(st.sampled_from([None, 1, 1.5, True, [], {}]))
    return json.dumps({**data, draw(st.text(max_size=4)): value})


# -- damage to whole rows, per backend (tests/corruption.py) ------------------------------


@st.composite
def event_damage(draw, rows, columns):
    """Return new values for some columns of a stored event, such that it cannot fit."""
    kinds = ["data", "metadata", "event_type", "schema_version"]
    if not rows.typed_columns:
        kinds.append("column")
    kind = draw(st.sampled_from(kinds))
    if kind == "data":
        return {"data": draw(damaged_object(columns["data"], ACCEPTED))}
    if kind == "metadata":
        return {"metadata": draw(damaged_metadata(columns["metadata"]))}
    if kind == "event_type":
        others = [name for name in OTHER_TYPES if name != columns["event_type"]]
        return {"event_type": draw(st.sampled_from(others))}
    if kind == "schema_version":
        return {"schema_version": draw(st.sampled_from([0, 2, 99]))}
    name = draw(st.sampled_from(sorted(EVENT_COLUMN_DAMAGE)))
    return {name: draw(st.sampled_from(EVENT_COLUMN_DAMAGE[name]))}


@st.composite
def snapshot_damage(draw, rows, columns):
    """Return new values for some columns of a stored snapshot, such that it cannot load."""
    if rows.typed_columns or draw(st.booleans()):
        return {"state": draw(damaged_object(columns["state"], WALLET_ACCEPTED))}
    name = draw(st.sampled_from(sorted(SNAPSHOT_COLUMN_DAMAGE)))
    return {name: draw(st.sampled_from(SNAPSHOT_COLUMN_DAMAGE[name]))}


@st.composite
def mistakes(draw):
    """Return a function that gets an upcaster's result wrong, and what it does."""
    way = draw(st.sampled_from(["change a type", "drop a key", "add a key", "not a dict"]))
    key = draw(st.sampled_from(["amount", "label", "size"]))
    if way == "drop a key":
        return lambda data: {k: v for k, v in data.items() if k != key}
    if way == "add a key":
        return lambda data: {**data, "extra": 1}
    if way == "not a dict":
        return lambda data: list(data.items())
    wrong = sorted(set(REPLACEMENTS) - ACCEPTED[key])
    value = REPLACEMENTS[draw(st.sampled_from(wrong))]
    return lambda data: {**data, key: value}
