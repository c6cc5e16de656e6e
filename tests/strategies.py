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
