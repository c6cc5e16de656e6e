"""
The threading side of the primitives that the async sources use.

The sync twins generated from the async modules use these names where the sources
use their asyncio counterparts in `eventkit._acompat`; see there.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")
P = ParamSpec("P")

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


# -- for the conformance suites: their calls and races, with threads here ------------------

Barrier = threading.Barrier


class Caller:
    """Calls functions: the counterpart of ``ACaller``, which runs coroutines on its loop."""

    def call(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Return what ``function(*args, **kwargs)`` returns."""
        return function(*args, **kwargs)

    def close(self) -> None:
        """Do nothing: there is no loop to close."""


def run_concurrently(*functions: Callable[[], object]) -> None:
    """
    Call each of *functions* in a thread of its own, all at once; return when all ended.

    When some raised, the first one's exception (in argument order) is raised again,
    after the others ended: a failing racer never leaves the rest running.
    """
    outcomes: list[BaseException | None] = [None] * len(functions)

    def call(index: int) -> None:
        try:
            functions[index]()
        except BaseException as exc:  # noqa: BLE001 (raised again below, in the caller's thread)
            outcomes[index] = exc

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(functions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for outcome in outcomes:
        if outcome is not None:
            raise outcome
