"""What `ProjectionRunner.status` reports about each projection."""

from __future__ import annotations

import enum

import attrs

from eventkit.exceptions import ProjectionError


class ProjectionState(enum.Enum):
    """
    Where a projection stands in a runner.

    .. versionadded:: 0.1.0
    """

    ACTIVE = "active"
    """This runner holds the projection's lock and applies events."""
    STANDBY = "standby"
    """Another runner holds the lock; this one waits to take over."""
    FAILED = "failed"
    """Stopped at an event that its error policy could not get past."""
    STOPPED = "stopped"
    """Not running in this runner."""


@attrs.frozen
class ProjectionStatus:
    """
    One projection's progress, as `ProjectionRunner.status` sees it.

    Attributes:
        name: The projection's name.
        version: The projection version that built the read model (0 before any).
        state: Whether this runner applies its events, waits, or has stopped.
        position: The checkpoint: every event up to this position is in the read model.
        head: The store's head position.
        lag_events: How many events the read model is behind the head (counted: positions
            may have gaps).
        lag_seconds: How long the oldest event not yet in the read model has waited
            (0 when caught up).
        events_per_second: Events handled per second by this runner, recently.
        dead_letters: How many events are parked.
        error: The error that stopped the projection, when `state` is failed.

    .. versionadded:: 0.1.0
    """

    name: str
    version: int
    state: ProjectionState
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    events_per_second: float
    dead_letters: int
    error: ProjectionError | None = None
