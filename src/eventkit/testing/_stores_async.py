"""
The stores under test: what makes them, the fixture that hands them out, a reader.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest_asyncio

from eventkit._events import EventRegistry
from eventkit._store_async import AsyncEventStore

AsyncStoreFactory = Callable[[EventRegistry], AsyncEventStore]
"""Makes a new, empty store that uses the given registry."""

store_fixture = pytest_asyncio.fixture(name="store")
"""Declares a contract's ``store`` fixture, which makes a store and closes it after the test."""


async def _amounts(store: AsyncEventStore, stream_id: str, **kwargs: Any) -> list[int]:
    return [int(r.event.amount) for r in await store.read_stream(stream_id, **kwargs)]
