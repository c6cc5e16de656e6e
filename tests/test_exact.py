"""Exact or typed: whatever is damaged in a store, reading returns what was written or says where.

Each property stores generated events, damages one stored row the way an operator's
edit or a failing disk would, and reads everything back: each row must come back
exactly as written, or reading it must raise an `EventKitError` naming its stream and
version (or position). The damage helpers live in `tests/corruption.py`, one class per
backend.
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
from tests.corruption import (
    EVENT_COLUMN_DAMAGE,
    ROWS,
    damaged_metadata,
    damaged_object,
    field_kinds,
)
from tests.exact_events import (
    ACCEPTED,
    REPLACEMENTS,
    Mistake,
    Wallet,
    json_kind,
    registry,
    upcast_registry,
)
from tests.strategies import any_event, labelled, metadata, scalars, shapes

STREAMS = ("a", "b", "c")
OTHER_TYPES = ["exact.Scalars", "exact.Values", "exact.Shapes", "exact.Gone"]
WALLET_FIELDS = {
    "id": {"string"},
    "version": {"integer"},
    "owner": {"string"},
    "total": {"string", "integer"},
    "count": {"integer"},
    "tags": {"array"},
}
SNAPSHOT_COLUMN_DAMAGE = {
    "version": ["x", 1.5, b"\x01"],
    "event_id": [b"\x00" * 15, "0" * 32, 3],
    "snapshot_version": ["one", 1.5],
    "state": [b"{}", 5],
    "taken_at": ["yesterday", "2024-01-01T00:00:00", 5, b"\x00"],
    "aggregate_type": [b"Wallet", 7],
    "build_seconds": ["slow", b"\x00"],
}


@st.composite
def event_damage(draw, rows, columns):
    """Return new values for some columns of a stored event, such that it cannot fit."""
    kinds = ["data", "metadata", "event_type", "schema_version"]
    if not rows.typed_columns:
        kinds.append("column")
    kind = draw(st.sampled_from(kinds))
    if kind == "data":
        return {"data": draw(damaged_object(columns["data"], field_kinds()))}
    if kind == "metadata":
        return {"metadata": draw(damaged_metadata(columns["metadata"]))}
    if kind == "event_type":
        others = [name for name in OTHER_TYPES if name != columns["event_type"]]
        return {"event_type": draw(st.sampled_from(others))}
    if kind == "schema_version":
        return {"schema_version": draw(st.sampled_from([0, 2, 99]))}
    name = draw(st.sampled_from(sorted(EVENT_COLUMN_DAMAGE)))
    return {name: draw(st.sampled_from(EVENT_COLUMN_DAMAGE[name]))}


@st.composite
def snapshot_damage(draw, rows, columns):
    """Return new values for some columns of a stored snapshot, such that it cannot load."""
    if rows.typed_columns or draw(st.booleans()):
        return {"state": draw(damaged_object(columns["state"], WALLET_FIELDS))}
    name = draw(st.sampled_from(sorted(SNAPSHOT_COLUMN_DAMAGE)))
    return {name: draw(st.sampled_from(SNAPSHOT_COLUMN_DAMAGE[name]))}


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
        before, after = written[: target.position - 1], written[target.position :]
        assert list(store.read_all(limit=target.position - 1)) == before
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


@st.composite
def mistakes(draw):
    """Return a function that gets an upcaster's result wrong, and what it does."""
    way = draw(st.sampled_from(["change a type", "drop a key", "add a key", "not a dict"]))
    key = draw(st.sampled_from(["amount", "label", "size"]))
    if way == "drop a key":
        return lambda data: {k: v for k, v in data.items() if k != key}
    if way == "add a key":
        return lambda data: {**data, "extra": 1}
    if way == "not a dict":
        return lambda data: list(data.items())
    wrong = sorted(set(REPLACEMENTS) - ACCEPTED[key])
    value = REPLACEMENTS[draw(st.sampled_from(wrong))]
    return lambda data: {**data, key: value}


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
