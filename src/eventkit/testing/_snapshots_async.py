"""
The conformance suite for snapshot storage and stream listing.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from eventkit._acompat import ABarrier, run_concurrently, yield_to_loop
from eventkit._envelope import StreamAppend
from eventkit._records import SnapshotRecord
from eventkit.testing._contract_async import AsyncEventStoreContract
from eventkit.testing._events import _deposits

if TYPE_CHECKING:
    from eventkit._store_async import AsyncEventStore


def _snapshot(stream_id: str = "s", version: int = 3, **changes: Any) -> SnapshotRecord:
    record = SnapshotRecord(
        stream_id=stream_id,
        aggregate_type="contract.Account",
        version=version,
        event_id=uuid.uuid4(),
        snapshot_version=1,
        state=json.dumps({"id": stream_id, "version": version, "balance": "12.50"}),
        taken_at=datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
        build_seconds=0.25,
    )
    return record._replace(**changes)


class AsyncSnapshotStoreContract:
    """
    The snapshot storage and stream listing every event store must provide, as pytest tests.

    Mix into the same ``Test*`` class as `AsyncEventStoreContract`, which provides the
    ``make_store`` fixture. A store keeps one snapshot per stream, the last one saved,
    beside the events and without changing them; `AsyncRepository` relies on nothing
    more.

    .. versionadded:: 0.1.0
    """

    # AsyncEventStoreContract's own fixture: each contract runs alone, and both together.
    _contract_store = AsyncEventStoreContract._contract_store  # noqa: SLF001 (shared fixture)

    # -- snapshots ---------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_a_new_store_has_no_snapshots(self, store: AsyncEventStore) -> None:
        """load_snapshot returns None for a stream that never had a snapshot."""
        await store.append("s", _deposits(1))
        assert await store.load_snapshot("s") is None

    @pytest.mark.asyncio
    async def test_a_saved_snapshot_loads_back_unchanged(self, store: AsyncEventStore) -> None:
        """Every field of a saved snapshot comes back equal, non-BMP text included."""
        record = _snapshot(state=json.dumps({"memo": "naïve 😀 𠜎"}, ensure_ascii=False))
        await store.save_snapshot(record)
        assert await store.load_snapshot("s") == record

    @pytest.mark.asyncio
    async def test_taken_at_keeps_its_instant_and_a_timezone(self, store: AsyncEventStore) -> None:
        """taken_at in any timezone comes back as the same instant, timezone-aware."""
        taken = datetime(2024, 1, 1, 12, 0, 0, 999999, tzinfo=timezone(timedelta(hours=5)))
        await store.save_snapshot(_snapshot(taken_at=taken))
        loaded = await store.load_snapshot("s")
        assert loaded is not None
        assert (loaded.taken_at, loaded.taken_at.utcoffset() is not None) == (taken, True)

    @pytest.mark.asyncio
    async def test_a_large_state_round_trips(self, store: AsyncEventStore) -> None:
        """A state of a few megabytes is stored and returned whole."""
        state = json.dumps({"items": [f"item-{n}" for n in range(200_000)]})
        await store.save_snapshot(_snapshot(state=state))
        loaded = await store.load_snapshot("s")
        assert loaded is not None
        assert loaded.state == state

    @pytest.mark.asyncio
    async def test_saving_again_replaces_the_snapshot(self, store: AsyncEventStore) -> None:
        """The snapshot saved last is the one kept, even at a lower version."""
        await store.save_snapshot(_snapshot(version=200))
        replacement = _snapshot(version=100, snapshot_version=2)
        await store.save_snapshot(replacement)
        assert await store.load_snapshot("s") == replacement

    @pytest.mark.asyncio
    async def test_snapshots_are_kept_per_stream(self, store: AsyncEventStore) -> None:
        """Each stream has its own snapshot."""
        first, second = _snapshot("a", 1), _snapshot("b", 2)
        await store.save_snapshot(first)
        await store.save_snapshot(second)
        assert (await store.load_snapshot("a"), await store.load_snapshot("b")) == (first, second)

    @pytest.mark.asyncio
    async def test_snapshots_leave_the_events_alone(self, store: AsyncEventStore) -> None:
        """Saving snapshots changes no event, version, position or stream list."""
        written = await store.append("s", _deposits(1, 2))
        before = [r.event async for r in store.read_all()]
        await store.save_snapshot(_snapshot("s", 2))
        await store.save_snapshot(_snapshot("no-events", 5))
        assert (await store.head_position(), await store.stream_version("s")) == (
            written.positions[-1],
            2,
        )
        assert await store.stream_version("no-events") == 0
        after = [r.event async for r in store.read_all()]
        assert (after, [s async for s in store.stream_ids()]) == (before, ["s"])

    @pytest.mark.asyncio
    async def test_an_invalid_snapshot_is_refused_and_the_stored_one_kept(
        self, store: AsyncEventStore
    ) -> None:
        """A snapshot with a bad field raises, naming the field; the stored one stays."""
        good = _snapshot()
        await store.save_snapshot(good)
        with pytest.raises(ValueError, match="version"):
            await store.save_snapshot(_snapshot(version=0))
        with pytest.raises(TypeError, match="state"):
            await store.save_snapshot(_snapshot(state=b"{}"))
        with pytest.raises(ValueError, match="taken_at"):
            await store.save_snapshot(_snapshot(taken_at=datetime(2024, 1, 1)))  # noqa: DTZ001
        with pytest.raises(ValueError, match="build_seconds"):
            await store.save_snapshot(_snapshot(build_seconds=float("nan")))
        assert await store.load_snapshot("s") == good

    @pytest.mark.asyncio
    async def test_load_snapshot_refuses_an_empty_stream_id(self, store: AsyncEventStore) -> None:
        """load_snapshot needs a non-empty stream id."""
        with pytest.raises(ValueError, match="stream_id"):
            await store.load_snapshot("")

    @pytest.mark.asyncio
    async def test_concurrent_snapshot_writes_leave_one_whole_snapshot(
        self, store: AsyncEventStore
    ) -> None:
        """Racing writers replacing one stream's snapshot leave exactly one of theirs, whole."""
        writers, rounds = 4, 10
        barrier = ABarrier(writers)
        written: list[SnapshotRecord] = []

        async def write(index: int) -> None:
            await barrier.wait()
            for n in range(rounds):
                record = _snapshot(version=index * rounds + n + 1)
                written.append(record)
                await store.save_snapshot(record)
                await yield_to_loop()

        await run_concurrently(*(functools.partial(write, i) for i in range(writers)))
        assert await store.load_snapshot("s") in written

    # -- listing streams ---------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_stream_ids_of_an_empty_store_is_empty(self, store: AsyncEventStore) -> None:
        """A store without events lists no streams."""
        assert [s async for s in store.stream_ids()] == []

    @pytest.mark.asyncio
    async def test_stream_ids_lists_each_stream_once_in_order(self, store: AsyncEventStore) -> None:
        """Each stream with events is listed once, in Python's string order."""
        names = ["b", "a", "Z", "é", "😀", "a-1", "ab"]
        for name in names:
            await store.append(name, _deposits(1, 2))
        assert [s async for s in store.stream_ids()] == sorted(names)

    @pytest.mark.asyncio
    async def test_stream_ids_keeps_only_the_prefix(self, store: AsyncEventStore) -> None:
        """With a prefix, only the ids that start with it are listed."""
        for name in ["account-1", "account-2", "accounts", "order-1", "account"]:
            await store.append(name, _deposits(1))
        assert [s async for s in store.stream_ids(prefix="account-")] == ["account-1", "account-2"]

    @pytest.mark.asyncio
    async def test_stream_ids_takes_the_prefix_literally(self, store: AsyncEventStore) -> None:
        """Characters that are wildcards in SQL patterns match only themselves."""
        for name in ["a%1", "a_1", "ab1", "a\\1", "A%1"]:
            await store.append(name, _deposits(1))
        listed = [[s async for s in store.stream_ids(prefix=p)] for p in ("a%", "a_", "a\\")]
        assert listed == [["a%1"], ["a_1"], ["a\\1"]]

    @pytest.mark.asyncio
    async def test_stream_ids_crosses_page_boundaries(self, store: AsyncEventStore) -> None:
        """Many streams are listed completely and in order, across the backend's pages."""
        names = [f"s-{n:05d}" for n in range(1234)]
        await store.append_many(StreamAppend(name, _deposits(1)) for name in names)
        assert [s async for s in store.stream_ids(prefix="s-")] == names

    @pytest.mark.asyncio
    async def test_stream_ids_refuses_a_prefix_that_is_not_text(
        self, store: AsyncEventStore
    ) -> None:
        """A prefix that is not a string raises TypeError at once."""
        with pytest.raises(TypeError, match="prefix"):
            store.stream_ids(prefix=None)  # type: ignore[arg-type]
