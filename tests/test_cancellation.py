"""A cancelled write to the async SQLite store rolls back, however late its task hears of it."""

import asyncio
import threading
import time
from decimal import Decimal

import pytest
import pytest_asyncio

from eventkit import AsyncSQLiteEventStore
from eventkit.backends import Checkpoint
from tests.bank import MoneyDeposited, registry

WAIT = 10.0


class HoldFirst:
    """A tracer that holds the writer thread on the first statement that matches."""

    def __init__(self, match):
        self.match = match
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, statement):
        if self.match in statement and not self.entered.is_set():
            self.entered.set()
            self.release.wait(WAIT)


@pytest.fixture(name="hold")
def _hold():
    return HoldFirst("INSERT INTO eventkit_events")


@pytest_asyncio.fixture(name="store")
async def _store(tmp_path, hold):
    store = AsyncSQLiteEventStore(tmp_path / "events.db", registry=registry, tracer=hold)
    yield store
    await store.close()


async def cancel_while_the_loop_is_busy(task, released):
    """Cancel *task*, let its thread go on, and keep the loop from running the task a while."""
    task.cancel()
    released.set()
    # Block the loop on purpose: the writer thread reaches COMMIT before the task runs.
    time.sleep(0.2)  # noqa: ASYNC251
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.asyncio
async def test_a_cancelled_append_stores_nothing_though_its_thread_got_there_first(store, hold):
    """An append cancelled before it committed stores nothing, even if the task hears late."""
    task = asyncio.create_task(store.append("s", [MoneyDeposited(Decimal(n)) for n in range(5)]))
    await asyncio.to_thread(hold.entered.wait, WAIT)
    await cancel_while_the_loop_is_busy(task, hold.release)
    assert (await store.head_position(), await store.stream_version("s")) == (0, 0)


@pytest.mark.asyncio
async def test_a_cancelled_projection_transaction_keeps_nothing(store):
    """A projection transaction cancelled before it committed leaves no checkpoint."""
    inside, release = threading.Event(), threading.Event()

    def body(tx):
        tx.save_checkpoint("p", Checkpoint(1, 1))
        inside.set()
        release.wait(WAIT)

    task = asyncio.create_task(store.run_projection_transaction(body))
    await asyncio.to_thread(inside.wait, WAIT)
    await cancel_while_the_loop_is_busy(task, release)
    assert await store.projection_checkpoints() == {}
