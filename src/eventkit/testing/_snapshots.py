"""The conformance suite for snapshot storage and stream listing."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from eventkit._envelope import StreamAppend
from eventkit._records import SnapshotRecord
from eventkit.testing._contract import EventStoreContract
from eventkit.testing._events import _deposits

if TYPE_CHECKING:
    from eventkit._store import EventStore


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


class SnapshotStoreContract:
    """
    The snapshot storage and stream listing every event store must provide, as pytest tests.

    Mix into the same ``Test*`` class as `EventStoreContract`, which provides the
    ``make_store`` fixture. A store keeps one snapshot per stream, the last one saved,
    beside the events and without changing them; `Repository` relies on nothing more.

    .. versionadded:: 0.1.0
    """

    # EventStoreContract's own fixture: each contract runs alone, and both run together.
    _contract_store = EventStoreContract._contract_store  # noqa: SLF001 (shared fixture)

    # -- snapshots ---------------------------------------------------------------------------

    def test_a_new_store_has_no_snapshots(self, store: EventStore) -> None:
        """load_snapshot returns None for a stream that never had a snapshot."""
        store.append("s", _deposits(1))
        assert store.load_snapshot("s") is None

    def test_a_saved_snapshot_loads_back_unchanged(self, store: EventStore) -> None:
        """Every field of a saved snapshot comes back equal, non-BMP text included."""
        record = _snapshot(state=json.dumps({"memo": "naïve 😀 𠜎"}, ensure_ascii=False))
        store.save_snapshot(record)
        assert store.load_snapshot("s") == record

    def test_taken_at_keeps_its_instant_and_a_timezone(self, store: EventStore) -> None:
        """taken_at in any timezone comes back as the same instant, timezone-aware."""
        taken = datetime(2024, 1, 1, 12, 0, 0, 999999, tzinfo=timezone(timedelta(hours=5)))
        store.save_snapshot(_snapshot(taken_at=taken))
        loaded = store.load_snapshot("s")
        assert loaded is not None
        assert (loaded.taken_at, loaded.taken_at.utcoffset() is not None) == (taken, True)

    def test_a_large_state_round_trips(self, store: EventStore) -> None:
        """A state of a few megabytes is stored and returned whole."""
        state = json.dumps({"items": [f"item-{n}" for n in range(200_000)]})
        store.save_snapshot(_snapshot(state=state))
        loaded = store.load_snapshot("s")
        assert loaded is not None
        assert loaded.state == state

    def test_saving_again_replaces_the_snapshot(self, store: EventStore) -> None:
        """The snapshot saved last is the one kept, even at a lower version."""
        store.save_snapshot(_snapshot(version=200))
        replacement = _snapshot(version=100, snapshot_version=2)
        store.save_snapshot(replacement)
        assert store.load_snapshot("s") == replacement

    def test_snapshots_are_kept_per_stream(self, store: EventStore) -> None:
        """Each stream has its own snapshot."""
        first, second = _snapshot("a", 1), _snapshot("b", 2)
        store.save_snapshot(first)
        store.save_snapshot(second)
        assert (store.load_snapshot("a"), store.load_snapshot("b")) == (first, second)

    def test_snapshots_leave_the_events_alone(self, store: EventStore) -> None:
        """Saving snapshots changes no event, version, position or stream list."""
        head = store.append("s", _deposits(1, 2)).positions[-1]
        before = [r.event for r in store.read_all()]
        store.save_snapshot(_snapshot("s", 2))
        store.save_snapshot(_snapshot("no-events", 5))
        assert (store.head_position(), store.stream_version("s")) == (head, 2)
        assert store.stream_version("no-events") == 0
        assert ([r.event for r in store.read_all()], list(store.stream_ids())) == (before, ["s"])

    def test_an_invalid_snapshot_is_refused_and_the_stored_one_kept(
        self, store: EventStore
    ) -> None:
        """A snapshot with a bad field raises, naming the field; the stored one stays."""
        good = _snapshot()
        store.save_snapshot(good)
        with pytest.raises(ValueError, match="version"):
            store.save_snapshot(_snapshot(version=0))
        with pytest.raises(TypeError, match="state"):
            store.save_snapshot(_snapshot(state=b"{}"))
        with pytest.raises(ValueError, match="taken_at"):
            store.save_snapshot(_snapshot(taken_at=datetime(2024, 1, 1)))  # noqa: DTZ001
        with pytest.raises(ValueError, match="build_seconds"):
            store.save_snapshot(_snapshot(build_seconds=float("nan")))
        assert store.load_snapshot("s") == good

    def test_load_snapshot_refuses_an_empty_stream_id(self, store: EventStore) -> None:
        """load_snapshot needs a non-empty stream id."""
        with pytest.raises(ValueError, match="stream_id"):
            store.load_snapshot("")

    def test_concurrent_snapshot_writes_leave_one_whole_snapshot(self, store: EventStore) -> None:
        """Threads replacing one stream's snapshot leave exactly one of theirs, intact."""
        writers, rounds = 4, 10
        barrier = threading.Barrier(writers)
        written: list[SnapshotRecord] = []

        def write(index: int) -> None:
            barrier.wait()
            for n in range(rounds):
                record = _snapshot(version=index * rounds + n + 1)
                written.append(record)
                store.save_snapshot(record)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.load_snapshot("s") in written

    # -- listing streams ---------------------------------------------------------------------

    def test_stream_ids_of_an_empty_store_is_empty(self, store: EventStore) -> None:
        """A store without events lists no streams."""
        assert list(store.stream_ids()) == []

    def test_stream_ids_lists_each_stream_once_in_order(self, store: EventStore) -> None:
        """Each stream with events is listed once, in Python's string order."""
        names = ["b", "a", "Z", "é", "😀", "a-1", "ab"]
        for name in names:
            store.append(name, _deposits(1, 2))
        assert list(store.stream_ids()) == sorted(names)

    def test_stream_ids_keeps_only_the_prefix(self, store: EventStore) -> None:
        """With a prefix, only the ids that start with it are listed."""
        for name in ["account-1", "account-2", "accounts", "order-1", "account"]:
            store.append(name, _deposits(1))
        assert list(store.stream_ids(prefix="account-")) == ["account-1", "account-2"]

    def test_stream_ids_takes_the_prefix_literally(self, store: EventStore) -> None:
        """Characters that are wildcards in SQL patterns match only themselves."""
        for name in ["a%1", "a_1", "ab1", "a\\1", "A%1"]:
            store.append(name, _deposits(1))
        listed = [list(store.stream_ids(prefix=p)) for p in ("a%", "a_", "a\\")]
        assert listed == [["a%1"], ["a_1"], ["a\\1"]]

    def test_stream_ids_crosses_page_boundaries(self, store: EventStore) -> None:
        """Many streams are listed completely and in order, across the backend's pages."""
        names = [f"s-{n:05d}" for n in range(1234)]
        store.append_many(StreamAppend(name, _deposits(1)) for name in names)
        assert list(store.stream_ids(prefix="s-")) == names

    def test_stream_ids_refuses_a_prefix_that_is_not_text(self, store: EventStore) -> None:
        """A prefix that is not a string raises TypeError at once."""
        with pytest.raises(TypeError, match="prefix"):
            store.stream_ids(prefix=None)  # type: ignore[arg-type]
