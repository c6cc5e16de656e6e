"""Argument checks of the runner: each names what was wrong."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from eventkit._projections._policies import ParkOnError, RetryOnError, StopOnError
from eventkit._projections._projection import STAGING_SUFFIX, Projection
from eventkit._rules import storable
from eventkit.exceptions import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    from eventkit._events import EventRegistry


def check_projection(projection: object) -> Projection:
    """Return *projection* if it is a `Projection` with a usable name, version and policy."""
    if not isinstance(projection, Projection):
        raise ArgumentTypeError(f"expected a Projection instance, got {projection!r}")
    name = getattr(projection, "name", None)
    if not isinstance(name, str) or not name or name != name.strip() or not storable(name):
        raise ArgumentError(
            f"{type(projection).__qualname__}.name must be a non-empty string without "
            f"surrounding whitespace, NUL or lone surrogates, got {name!r}"
        )
    if name.endswith(STAGING_SUFFIX):
        raise ArgumentError(f"projection name {name!r} must not end with {STAGING_SUFFIX!r}")
    check_number(f"projection {name!r}: version", projection.version, integer=True, minimum=1)
    if not isinstance(projection.error_policy, (StopOnError, RetryOnError, ParkOnError)):
        raise ArgumentTypeError(
            f"projection {name!r}: error_policy must be StopOnError(), RetryOnError(...) "
            f"or ParkOnError(), got {projection.error_policy!r}"
        )
    return projection


def check_number(what: str, value: object, *, integer: bool, minimum: float) -> None:
    """Raise ValueError unless *value* is a number (an integer if *integer*) >= *minimum*."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ArgumentError(f"{what} must be {kind} >= {minimum}, got {value!r}")


def check_deadline(deadline: float | None, what: str) -> None:
    """Raise TimeoutError once the monotonic *deadline* has passed."""
    if deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError(f"timed out: {what}")


def type_names(registry: EventRegistry, projection: Projection) -> frozenset[str] | None:
    """Return the stored type names of the projection's event types; None for every event."""
    wanted = projection.event_types
    return None if wanted is None else registry.stored_names(wanted)
