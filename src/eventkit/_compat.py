"""
The threading side of the primitives that the async sources use.

The sync twins generated from the async modules use these names where the sources
use their asyncio counterparts in `eventkit._acompat`; see there.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

Lock = threading.Lock
Event = threading.Event
Condition = threading.Condition
RLock = threading.RLock
sleep = time.sleep


def is_async() -> bool:
    """Return False: this is the sync side."""
    return False


def yield_to_loop() -> None:
    """Do nothing: there is no event loop to let run."""


def wait_event(event: threading.Event, timeout: float | None) -> bool:
    """Wait until *event* is set or *timeout* seconds pass; return whether it is set."""
    return event.wait(timeout)


def wait_condition(
    condition: threading.Condition, predicate: Callable[[], bool], timeout: float | None
) -> bool:
    """Wait on *condition* until *predicate* holds or *timeout* passes; return it."""
    with condition:
        return condition.wait_for(predicate, timeout)


def spawn(function: Callable[[], None], name: str) -> threading.Thread:
    """Run *function* in a new daemon thread."""
    thread = threading.Thread(target=function, name=name, daemon=True)
    thread.start()
    return thread


def join(thread: threading.Thread, timeout: float | None) -> bool:
    """Wait for *thread* to end, at most *timeout* seconds; return whether it ended."""
    thread.join(timeout)
    return not thread.is_alive()


def current_owner() -> object:
    """Return what holds a lock taken now: the current thread."""
    return threading.current_thread()


def owner_alive(owner: object) -> bool:
    """Return whether the lock holder *owner* (a thread) still runs."""
    return isinstance(owner, threading.Thread) and owner.is_alive()
