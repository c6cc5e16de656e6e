"""
The primitives that concurrent tests are written with behave alike in both forms.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

import functools
import threading

import pytest

from eventkit._acompat import ABarrier, ACaller, asleep, await_thread_event, run_concurrently

WAIT = 10.0


class TestRunConcurrently:
    @pytest.mark.asyncio
    async def test_every_function_runs_at_the_same_time(self):
        """All functions run, and overlap: a barrier that needs all of them is passed."""
        barrier, passed = ABarrier(3), []

        async def party(index):
            await barrier.wait()
            passed.append(index)

        await run_concurrently(*(functools.partial(party, i) for i in range(3)))
        assert sorted(passed) == [0, 1, 2]

    @pytest.mark.asyncio
    async def test_an_error_is_raised_after_the_others_ended(self):
        """A function's exception is raised once the other functions have finished."""
        finished = []

        async def fail():
            raise KeyError("racer")

        async def slow():
            await asleep(0.05)
            finished.append("slow")

        with pytest.raises(KeyError, match="racer"):
            await run_concurrently(fail, slow)
        assert finished == ["slow"]

    @pytest.mark.asyncio
    async def test_the_first_functions_error_wins(self):
        """When several fail, the exception of the first in argument order is raised."""

        async def fail(exc):
            raise exc

        with pytest.raises(KeyError):
            await run_concurrently(
                functools.partial(fail, KeyError()), functools.partial(fail, ValueError())
            )


class TestAwaitThreadEvent:
    @pytest.mark.asyncio
    async def test_an_event_set_by_another_thread_is_seen(self):
        """Waiting returns True once another thread sets the event."""
        event = threading.Event()
        setter = threading.Timer(0.05, event.set)
        setter.start()
        try:
            assert await await_thread_event(event, WAIT) is True
        finally:
            setter.join()

    @pytest.mark.asyncio
    async def test_a_wait_that_times_out_says_so(self):
        """Waiting on an event nobody sets returns False after the timeout."""
        assert await await_thread_event(threading.Event(), 0.05) is False


class TestCaller:
    def test_a_call_returns_the_functions_result(self):
        """A call runs the function with its arguments to its end and returns its result."""

        async def add(a, *, b):
            await asleep(0)
            return a + b

        caller = ACaller()
        try:
            assert caller.call(add, 1, b=2) == 3
        finally:
            caller.close()

    def test_a_call_raises_the_functions_error(self):
        """An exception raised by the function comes out of the call."""

        async def fail():
            raise KeyError("inside")

        caller = ACaller()
        try:
            with pytest.raises(KeyError, match="inside"):
                caller.call(fail)
        finally:
            caller.close()
