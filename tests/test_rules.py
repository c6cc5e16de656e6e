"""The rules every backend shares: expected versions, the append decision, valid snapshots."""

import uuid
from datetime import UTC, datetime

import pytest

from eventkit import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    ConcurrencyError,
    DuplicateEventIdError,
    InMemoryEventStore,
    StreamAppend,
)
from eventkit.backends import (
    NewRecord,
    RecordWrite,
    SnapshotRecord,
    StoredEventRef,
    check_expected_version,
    decide_append,
    resolve_existing,
)
from tests.bank import MoneyDeposited


def records(n):
    return tuple(NewRecord(uuid.uuid4(), "t", 1, "{}", "{}") for _ in range(n))


class TestCheckExpectedVersion:
    @pytest.mark.parametrize(
        ("expected", "actual"),
        [(ANY, 0), (ANY, 5), (NO_STREAM, 0), (0, 0), (STREAM_EXISTS, 1), (3, 3)],
    )
    def test_accepts_matching_versions(self, expected, actual):
        """Each expectation accepts the stream versions it describes."""
        check_expected_version("s", expected, actual)

    @pytest.mark.parametrize(
        ("expected", "actual"),
        [(NO_STREAM, 1), (0, 2), (STREAM_EXISTS, 0), (3, 2), (3, 4)],
    )
    def test_refuses_other_versions(self, expected, actual):
        """Each expectation refuses every other version, naming both."""
        with pytest.raises(ConcurrencyError) as info:
            check_expected_version("s", expected, actual)
        assert (info.value.expected_version, info.value.actual_version) == (expected, actual)

    def test_message_names_stream_and_versions(self):
        """The message reads as a sentence naming the stream and both versions."""
        with pytest.raises(ConcurrencyError) as info:
            check_expected_version("account-42", NO_STREAM, 5)
        message = "stream 'account-42': expected version NO_STREAM, actual version 5"
        assert str(info.value) == message


class TestResolveExisting:
    def test_an_exact_repeat_returns_the_original_result(self):
        """All ids stored consecutively in this stream: the stored positions come back."""
        write = RecordWrite("s", records(2), 3)
        found = {
            write.records[0].event_id: StoredEventRef("s", 4, 10),
            write.records[1].event_id: StoredEventRef("s", 5, 12),
        }
        assert resolve_existing(write, found, 9) == AppendResult("s", 5, (10, 12))

    def test_ids_in_another_stream_raise(self):
        """An id stored in another stream is a collision, not a retry."""
        write = RecordWrite("s", records(1), ANY)
        found = {write.records[0].event_id: StoredEventRef("t", 1, 1)}
        with pytest.raises(DuplicateEventIdError) as info:
            resolve_existing(write, found, 2)
        assert info.value.existing_stream_id == "t"

    def test_a_partial_overlap_raises(self):
        """Some ids stored, some new: refused, naming a stored id."""
        write = RecordWrite("s", records(2), ANY)
        found = {write.records[1].event_id: StoredEventRef("s", 1, 1)}
        with pytest.raises(DuplicateEventIdError) as info:
            resolve_existing(write, found, 2)
        assert info.value.event_id == write.records[1].event_id

    def test_ids_in_a_different_order_raise(self):
        """Stored ids at non-consecutive versions are not a repeat of one append."""
        write = RecordWrite("s", records(2), ANY)
        found = {
            write.records[0].event_id: StoredEventRef("s", 2, 2),
            write.records[1].event_id: StoredEventRef("s", 1, 1),
        }
        with pytest.raises(DuplicateEventIdError):
            resolve_existing(write, found, 2)

    def test_a_repeat_with_the_wrong_expected_version_conflicts(self):
        """The repeat must carry an expected version the original append satisfied."""
        write = RecordWrite("s", records(1), NO_STREAM)
        found = {write.records[0].event_id: StoredEventRef("s", 2, 2)}
        with pytest.raises(ConcurrencyError) as info:
            resolve_existing(write, found, 7)
        assert (info.value.expected_version, info.value.actual_version) == (NO_STREAM, 7)


class TestDecideAppend:
    def test_new_events_go_at_the_next_versions(self):
        """Each write's events are planned at its stream's next versions, stream by stream."""
        a, b = RecordWrite("a", records(2), 3), RecordWrite("b", records(1), NO_STREAM)
        plan = decide_append([a, b], [3, 0])
        assert [(row.stream_id, row.version, row.record) for row in plan.rows] == [
            ("a", 4, a.records[0]),
            ("a", 5, a.records[1]),
            ("b", 1, b.records[0]),
        ]

    def test_results_take_the_positions_the_backend_gave(self):
        """Results report each write's new version and its rows' positions, in order."""
        plan = decide_append(
            [RecordWrite("a", records(2), ANY), RecordWrite("b", records(1), ANY)], [0, 7]
        )
        assert plan.results([101, 103, 107]) == [
            AppendResult("a", 2, (101, 103)),
            AppendResult("b", 8, (107,)),
        ]

    def test_results_need_one_position_per_row(self):
        """Positions that do not match the rows are refused, not silently misassigned."""
        plan = decide_append([RecordWrite("a", records(2), ANY)], [0])
        with pytest.raises(ValueError, match="expected 2 positions, got 1"):
            plan.results([1])

    def test_a_retry_stores_nothing_and_reports_the_first_result(self):
        """A write whose ids are stored as one run is a retry: no rows, the stored result."""
        retry, new = RecordWrite("a", records(1), 0), RecordWrite("b", records(1), ANY)
        found = {retry.records[0].event_id: StoredEventRef("a", 1, 40)}
        plan = decide_append([retry, new], [6, 2], found)
        assert [row.stream_id for row in plan.rows] == ["b"]
        assert plan.results([50]) == [AppendResult("a", 1, (40,)), AppendResult("b", 3, (50,))]

    def test_one_conflict_fails_the_whole_append(self):
        """A later write's conflict raises: nothing is planned for the earlier ones."""
        writes = [RecordWrite("a", records(1), ANY), RecordWrite("b", records(1), 2)]
        with pytest.raises(ConcurrencyError) as info:
            decide_append(writes, [0, 5])
        assert (info.value.stream_id, info.value.actual_version) == ("b", 5)

    def test_ids_found_elsewhere_are_a_collision(self):
        """An id stored in another stream is a DuplicateEventIdError, whatever the version."""
        write = RecordWrite("a", records(1), ANY)
        found = {write.records[0].event_id: StoredEventRef("z", 1, 1)}
        with pytest.raises(DuplicateEventIdError):
            decide_append([write], [0], found)

    def test_an_empty_write_still_checks_its_expected_version(self):
        """No events: no rows, the current version reported, the expectation enforced."""
        plan = decide_append([RecordWrite("a", (), 4)], [4])
        assert (plan.rows, plan.results([])) == ([], [AppendResult("a", 4, ())])
        with pytest.raises(ConcurrencyError):
            decide_append([RecordWrite("a", (), NO_STREAM)], [4])


class TestStreamAppend:
    def test_keeps_events_as_a_tuple(self):
        """Events given as any iterable are kept as a tuple."""
        assert StreamAppend("s", iter([1, 2])).events == (1, 2)

    def test_refuses_a_single_event(self):
        """A lone event instead of a list is refused with advice."""
        with pytest.raises(TypeError, match="wrap it in a list"):
            StreamAppend("s", MoneyDeposited(1))


def snapshot(**changes):
    record = SnapshotRecord(
        "s", "Account", 3, uuid.uuid4(), 1, "{}", datetime(2024, 1, 1, tzinfo=UTC), 0.5
    )
    return record._replace(**changes)


class TestSaveSnapshotValidation:
    @pytest.mark.parametrize(
        ("changes", "error", "message"),
        [
            ({"stream_id": ""}, ValueError, "stream_id"),
            ({"aggregate_type": ""}, ValueError, "aggregate_type"),
            ({"aggregate_type": None}, ValueError, "aggregate_type"),
            ({"version": 0}, ValueError, "version"),
            ({"version": "3"}, TypeError, "version"),
            ({"snapshot_version": 0}, ValueError, "snapshot_version"),
            ({"event_id": str(uuid.uuid4())}, TypeError, "event_id"),
            ({"state": {"id": "1"}}, TypeError, "state"),
            ({"taken_at": "2024-01-01T00:00:00+00:00"}, ValueError, "taken_at"),
            ({"build_seconds": True}, TypeError, "build_seconds"),
            ({"build_seconds": "1.5"}, TypeError, "build_seconds"),
            ({"build_seconds": -1.0}, ValueError, "build_seconds"),
            ({"build_seconds": float("inf")}, ValueError, "build_seconds"),
        ],
    )
    def test_a_bad_field_is_refused_naming_it(self, changes, error, message):
        """save_snapshot refuses a record with a bad field, naming the field, storing nothing."""
        store = InMemoryEventStore()
        with pytest.raises(error, match=message):
            store.save_snapshot(snapshot(**changes))
        assert store.load_snapshot(snapshot(**changes).stream_id or "s") is None

    def test_something_other_than_a_record_is_refused(self):
        """save_snapshot takes a SnapshotRecord, not a tuple or a dict."""
        with pytest.raises(TypeError, match="expected a SnapshotRecord, got tuple"):
            InMemoryEventStore().save_snapshot(tuple(snapshot()))  # type: ignore[arg-type]

    def test_an_integer_build_time_is_accepted(self):
        """build_seconds may be an int: it is a number of seconds."""
        store = InMemoryEventStore()
        store.save_snapshot(snapshot(build_seconds=2))
        assert store.load_snapshot("s") == snapshot(build_seconds=2)._replace(
            event_id=store.load_snapshot("s").event_id
        )
