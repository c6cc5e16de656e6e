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

from tests.exact_events import Colour, Labelled, Place, Scalars, Shapes, Values  # noqa: E402

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
