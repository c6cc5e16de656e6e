"""Exact or typed: whatever is damaged in a store, reading returns what was written or says where.

Each property stores generated events, damages one stored row the way an operator's
edit or a failing disk would, and reads everything back: each row must come back
exactly as written, or reading it must raise an `EventKitError` naming its stream and
version (or position). The helpers that damage rows live in `tests/corruption.py`, one
class per backend; the strategies that choose the damage in `tests/strategies.py`.
"""

from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventkit import (
    EventKitError,
    NewEvent,
    Repository,
    SnapshotWarning,
    UpcastError,
)
from eventkit.backends import NewRecord, RecordWrite
from tests.corruption import ROWS
from tests.exact_events import (
    ACCEPTED,
    REPLACEMENTS,
    Mistake,
    Wallet,
    json_kind,
    registry,
    upcast_registry,
)
from tests.strategies import (
    any_event,
    event_damage,
    labelled,
    metadata,
    mistakes,
    scalars,
    shapes,
    snapshot_damage,
)

STREAMS = ("a", "b", "c")


@pytest.fixture(autouse=True, scope="module")
def _drop_what_stores_left():
    yield
    for rows in ROWS:
        if hasattr(rows, "cleanup"):
            rows.cleanup()


def outcome(read):
    """Return what *read* returns and None, or None and the EventKitError it raises."""
    try:
        return read(), None
    except EventKitError as error:
        return None, error


def read_exactly_or_name(read, expected, target):
    """Read; the result must equal *expected*, or the error must name *target*'s row."""
    got, error = outcome(read)
    if error is None:
        assert got == expected
    else:
        located = (getattr(error, "version", None), getattr(error, "position", None))
        assert error.stream_id == target.stream_id, error
        assert target.version in located or target.position in located, error


@pytest.mark.parametrize("rows", ROWS, ids=lambda rows: rows.name)
class TestDamagedEvents:
    @given(
        appends=st.lists(
            st.tuples(st.sampled_from(STREAMS), any_event, metadata), min_size=1, max_size=6
        ),
        data=st.data(),
    )
    def test_a_damaged_row_reads_exactly_or_raises_naming_it(self, rows, appends, data):
        """After one row is damaged, each read returns what was written or names that row."""
        store = rows.make_store(registry)
        for stream_id, event, meta in appends:
            store.append(stream_id, [NewEvent(event, metadata=meta)])
        written = list(store.read_all())
        target = data.draw(st.sampled_from(written))
        damage = data.draw(event_damage(rows, rows.event(store, target.position)))
        rows.change_event(store, target.position, **damage)
        for stream_id in STREAMS:
            expected = [r for r in written if r.stream_id == stream_id]
            if stream_id == target.stream_id:
                read_exactly_or_name(lambda s=stream_id: store.read_stream(s), expected, target)
            else:
                assert store.read_stream(stream_id) == expected
        read_exactly_or_name(lambda: list(store.read_all()), written, target)
        index = written.index(target)  # positions may have gaps (PostgreSQL)
        before, after = written[:index], written[index + 1 :]
        assert list(store.read_all(limit=index)) == before
        assert list(store.read_all(after_position=target.position)) == after
        store.close()


@pytest.mark.parametrize("rows", ROWS, ids=lambda rows: rows.name)
class TestDamagedSnapshots:
    @given(history=st.lists(scalars | shapes, min_size=1, max_size=5), data=st.data())
    def test_a_damaged_snapshot_never_changes_what_a_load_returns(self, rows, history, data):
        """Loading over a damaged snapshot equals a full replay, warned of, never an error."""
        store = rows.make_store(registry)
        wallets = Repository(store, Wallet, snapshot_every=1)
        wallet = Wallet("w")
        for event in history:
            wallet.record(event)
        wallets.save(wallet)
        replayed = Repository(store, Wallet).load("w")
        damage = data.draw(snapshot_damage(rows, rows.snapshot(store, "w")))
        rows.change_snapshot(store, "w", **damage)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = wallets.load("w")
        assert loaded == replayed
        assert all(issubclass(warning.category, SnapshotWarning) for warning in caught)
        store.close()

    @given(history=st.lists(scalars | shapes, min_size=1, max_size=3), data=st.data())
    def test_a_damaged_snapshot_row_reads_exactly_or_raises_naming_it(self, rows, history, data):
        """load_snapshot returns the row as stored, or raises an error naming its stream."""
        store = rows.make_store(registry)
        wallets = Repository(store, Wallet, snapshot_every=1)
        wallet = Wallet("w")
        for event in history:
            wallet.record(event)
        wallets.save(wallet)
        damage = data.draw(snapshot_damage(rows, rows.snapshot(store, "w")))
        rows.change_snapshot(store, "w", **damage)
        stored = rows.snapshot(store, "w")
        record, error = outcome(lambda: store.load_snapshot("w"))
        if error is not None:
            assert error.stream_id == "w"
        else:
            fields = ("aggregate_type", "version", "snapshot_version", "state")
            assert [getattr(record, f) for f in fields] == [stored[f] for f in fields]
            assert record.event_id.bytes == stored["event_id"]
        store.close()


@pytest.mark.parametrize("rows", ROWS, ids=lambda rows: rows.name)
class TestUpcasterResults:
    @given(value=labelled, mistake=st.none() | mistakes())
    def test_an_upcast_reads_exactly_or_raises_naming_the_upcaster(self, rows, value, mistake):
        """Data an upcaster returns is structured strictly: exact, or an error naming it."""
        store = rows.make_store(upcast_registry)
        stored = json.dumps({"amount": str(value.amount), "name": value.label, "size": value.size})
        record = NewRecord(NewEvent(value).event_id, "exact.Labelled", 1, stored, "{}")
        store.append_records([RecordWrite("s", (record,), 0)])
        Mistake.make = mistake
        try:
            if mistake is None:
                assert store.read_stream("s")[0].event == value
            else:
                with pytest.raises(UpcastError) as info:
                    store.read_stream("s")
                assert (info.value.stream_id, info.value.version) == ("s", 1)
                assert info.value.upcaster == "tests.exact_events.labelled_v1_to_v2"
        finally:
            Mistake.make = None
            store.close()


def test_the_damage_helpers_only_make_ill_typed_values():
    """Each replacement value the helpers choose has a JSON kind its field refuses."""
    for field, accepted in ACCEPTED.items():
        refused = set(REPLACEMENTS) - accepted
        assert refused, field
        assert all(json_kind(REPLACEMENTS[kind]) == kind for kind in refused)
