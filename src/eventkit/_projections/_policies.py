"""Error policies: what a runner does when a projection's handler fails on an event."""

from __future__ import annotations

import enum
from typing import Any, TypeAlias

import attrs

from eventkit.exceptions import ArgumentError, ArgumentTypeError


@attrs.frozen
class StopOnError:
    """
    Stop the projection at the failing event: the default policy.

    The checkpoint stays just before the failing event and the runner raises (or, in
    the background, records) a `ProjectionError` naming the projection and the event.
    Fix the cause and run again: the event is handled again from there.

    .. versionadded:: 0.1.0
    """


@attrs.frozen
class ParkOnError:
    """
    Park the failing event in the projection's dead letters and go on with the next.

    Parked events can be listed (`ProjectionRunner.dead_letters`) and handled again
    later (`ProjectionRunner.retry_dead_letters`).

    .. versionadded:: 0.1.0
    """


def _positive(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ArgumentError(f"{attribute.name} must be a number >= 0, got {value!r}")


def _attempts(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ArgumentError(f"attempts must be an integer >= 1 or None, got {value!r}")


def _fallback(_: object, __: attrs.Attribute[StopOnError | ParkOnError], value: object) -> None:
    if not isinstance(value, (StopOnError, ParkOnError)):
        raise ArgumentTypeError(f"then must be StopOnError() or ParkOnError(), got {value!r}")


@attrs.frozen
class RetryOnError:
    """
    Handle the failing event again after growing pauses, then fall back to *then*.

    Each retry runs in a fresh transaction, so in the exactly-once case nothing of a
    failed attempt remains. The runner stays on the failing event while it waits; a
    `ProjectionRunner.stop` during a pause ends the wait at once and leaves the
    checkpoint before the event.

    Args:
        attempts: How many retries after the first failure; None retries without end
            (a relay does: it must never skip an event), until a stop.
        delay: The pause before the first retry, in seconds.
        factor: Each further pause is this many times the previous one.
        max_delay: No pause is longer than this.
        then: What to do when every retry failed: `StopOnError` (the default) or
            `ParkOnError`.

    Raises:
        ArgumentError: A number is out of range.
        ArgumentTypeError: *then* is not `StopOnError` or `ParkOnError`.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.1.0
       *attempts* may be None.
    """

    attempts: int | None = attrs.field(default=3, validator=_attempts)
    delay: float = attrs.field(default=0.1, validator=_positive)
    factor: float = attrs.field(default=2.0, validator=_positive)
    max_delay: float = attrs.field(default=30.0, validator=_positive)
    then: StopOnError | ParkOnError = attrs.field(factory=StopOnError, validator=_fallback)

    @property
    def delays(self) -> tuple[float, ...]:
        """
        The pause before each retry, in seconds.

        Without a limit on *attempts*, the pauses until they stop growing: every later
        pause equals the last one.
        """
        if self.attempts is not None:
            return tuple(self.delay_before(attempt) for attempt in range(self.attempts))
        pauses = [self.delay_before(0)]
        while len(pauses) < _MAX_LISTED and self.delay_before(len(pauses)) > pauses[-1]:
            pauses.append(self.delay_before(len(pauses)))
        return tuple(pauses)

    def delay_before(self, retry: int) -> float:
        """Return the pause before retry number *retry* (0 for the first), in seconds."""
        try:
            return min(self.delay * self.factor**retry, self.max_delay)
        except OverflowError:  # a pause that long is max_delay anyway
            return self.max_delay


_MAX_LISTED = 64

ErrorPolicy: TypeAlias = StopOnError | RetryOnError | ParkOnError
"""What a `Projection` does when its handler fails: stop, retry, or park the event."""


class Action(enum.Enum):
    """What a runner does next about a failed event."""

    RETRY = "retry"
    PARK = "park"
    STOP = "stop"


def next_action(policy: ErrorPolicy, retries_done: int) -> tuple[Action, float]:
    """
    Decide what to do after an event failed, when *retries_done* retries already failed.

    Returns:
        The action, and for `Action.RETRY` the pause before it (0 otherwise).
    """
    if isinstance(policy, RetryOnError):
        if policy.attempts is None or retries_done < policy.attempts:
            return Action.RETRY, policy.delay_before(retries_done)
        policy = policy.then
    if isinstance(policy, ParkOnError):
        return Action.PARK, 0.0
    return Action.STOP, 0.0
