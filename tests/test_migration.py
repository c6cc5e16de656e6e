"""verify (does every stored event still load?) and migrate (copy at current versions)."""

import uuid
from decimal import Decimal

import attrs
import pytest

from eventkit import (
    ANY,
    EventRegistry,
    InMemoryEventStore,
    MigrationReport,
    NewEvent,
    SerializationError,
    VerifyFailure,
    VerifyGroup,
    VerifyReport,
    event,
    make_converter,
    migrate,
    verify,
)
from eventkit.backends import NewRecord, RecordWrite
from tests.evolution import (
    AccountCreated,
    DailyLimitSet,
    MoneyDepositedV2,
    release_2,
    release_3,
)


class FussyError(Exception):
    """Raised by a converter hook: not one of the errors the codec translates."""


fussy_registry = EventRegistry()


@event("tests.Fussy", registry=fussy_registry)
@attrs.frozen
class Fussy:
    n: int


def structure_fussy(data, cls):
    if data["n"] == 13:
        raise FussyError("unlucky")
    return cls(data["n"])


def raw(stream_id, event_type, schema_version, data, version=ANY):
    record = NewRecord(uuid.uuid4(), event_type, schema_version, data, "{}")
    return RecordWrite(stream_id, (record,), version)


FAILURE = (
    "UpcastError: stream 'a', version 2, event type 'ledger.MoneyDeposited': upcaster "
    "'ledger.MoneyDeposited' v2 -> 'ledger.MoneyDeposited' v3 "
    "(tests.evolution.money_deposited_v2_to_v3) failed: KeyError: 'memo'"
)


@pytest.fixture(name="old_store")
def _old_store():
    """A release 3 store with a renamed, a v1, a retired and two broken v2 events."""
    store = InMemoryEventStore(registry=release_3)
    store.append_records(
        [
            raw("a", "ledger.AccountCreated", 1, '{"owner":"ada"}'),
            raw("b", "ledger.MoneyDeposited", 1, '{"amount":"1","note":"x"}'),
        ]
    )
    store.append_records([raw("a", "ledger.MoneyDeposited", 2, '{"amount":"2","currency":"EUR"}')])
    store.append_records([raw("a", "ledger.MoneyDeposited", 2, '{"amount":"3","memo":"m"}')])
    store.append_records([raw("b", "ledger.DailyLimitSet", 1, '{"limit":"9"}')])
    return store


class TestVerify:
    def test_an_empty_store_verifies(self):
        """Nothing stored: no groups, nothing failed."""
        report = verify(InMemoryEventStore(registry=release_3))
        assert (report, report.ok, str(report)) == (
            VerifyReport(()),
            True,
            "verified 0 events: 0 load, 0 fail",
        )

    def test_counts_loads_and_failures_per_type_and_version(self, old_store):
        """Each stored (type, schema version) gets its counts and its first failure."""
        report = verify(old_store)
        failure = VerifyFailure("a", 2, 3, FAILURE)
        assert report.groups == (
            VerifyGroup("ledger.AccountCreated", 1, 1, 0),
            VerifyGroup("ledger.DailyLimitSet", 1, 1, 0),
            VerifyGroup("ledger.MoneyDeposited", 1, 1, 0),
            VerifyGroup("ledger.MoneyDeposited", 2, 0, 2, failure),
        )

    def test_the_report_reads_as_text(self, old_store):
        """str(report) gives a total, then one line per group with the first failure."""
        assert str(verify(old_store)).splitlines() == [
            "verified 5 events: 3 load, 2 fail",
            "  ledger.AccountCreated v1: 1 load",
            "  ledger.DailyLimitSet v1: 1 load",
            "  ledger.MoneyDeposited v1: 1 load",
            f"  ledger.MoneyDeposited v2: 0 load, 2 fail; first: stream 'a' version 2: {FAILURE}",
        ]

    def test_unknown_types_are_reported_not_raised(self):
        """A type no registry knows is counted as failing, with its error."""
        store = InMemoryEventStore(registry=release_3)
        store.append_records([raw("s", "ledger.Vanished", 1, "{}")])
        (group,) = verify(store).groups
        assert (group.failed, group.first_failure.error.split(":")[0]) == (1, "UnknownEventType")

    def test_any_exception_while_decoding_is_reported(self):
        """A converter hook raising its own error is counted as a located decoding error."""
        converter = make_converter()
        converter.register_structure_hook(Fussy, structure_fussy)
        store = InMemoryEventStore(registry=fussy_registry, converter=converter)
        store.append("s", [Fussy(1)])
        store.append_records([raw("s", "tests.Fussy", 1, '{"n":13}')])
        report = verify(store)
        assert (report.loaded, report.failed, report.ok) == (1, 1, False)
        assert report.groups[0].first_failure.error == (
            "SerializationError: stream 's', version 2, position 2, event type 'tests.Fussy': "
            "stored data does not fit Fussy: FussyError: unlucky"
        )


class TestMigrate:
    @pytest.fixture(name="source")
    def _source(self):
        store = InMemoryEventStore(registry=release_2)
        for n in range(3):
            store.append("a", [NewEvent(AccountCreated("ada"), metadata={"n": str(n)})])
            store.append("b", [MoneyDepositedV2(Decimal(n), "EUR")])
        store.append_records([raw("a", "ledger.MoneyDeposited", 1, '{"amount":"5"}')])
        return store

    @pytest.fixture(name="target")
    def _target(self):
        return InMemoryEventStore(registry=release_2)

    def test_copies_streams_versions_ids_metadata_and_order(self, source, target):
        """Everything but positions and recording times is the same in the copy."""
        migrate(source, target, batch_size=2)

        def kept(store):
            return [
                (r.stream_id, r.version, r.event_id, r.metadata, r.event) for r in store.read_all()
            ]

        assert kept(target) == kept(source)

    def test_writes_every_event_at_its_current_version(self, source, target):
        """The copy holds no old schema version: upcasters ran once, on the way."""
        migrate(source, target)
        assert {
            r.schema_version for r in target.read_all_records(event_types=["ledger.MoneyDeposited"])
        } == {2}

    def test_reports_how_many_were_copied_and_upcast(self, source, target):
        """The final report counts events, upcast events and positions."""
        report = migrate(source, target)
        assert (report, str(report)) == (
            MigrationReport(7, 1, 7, 7),
            "copied 7 events (1 upcast), up to position 7 of 7",
        )

    def test_a_dry_run_writes_nothing(self, source, target):
        """dry_run converts every event and reports, but the target stays empty."""
        report = migrate(source, target, dry_run=True)
        assert (str(report), target.head_position()) == (
            "dry run: would copy 7 events (1 upcast), up to position 7 of 7",
            0,
        )

    def test_progress_is_reported_after_each_batch(self, source, target):
        """progress receives a report per batch; print turns it into progress lines."""
        seen = []
        migrate(source, target, batch_size=3, progress=seen.append)
        assert [(r.copied, r.position) for r in seen] == [(3, 3), (6, 6), (7, 7)]

    def test_a_last_full_batch_is_not_followed_by_an_empty_report(self, source, target):
        """When the events fill the batches exactly, progress hears of each batch once."""
        seen = []
        migrate(source, target, batch_size=7, progress=seen.append)
        assert [r.copied for r in seen] == [7]

    def test_an_empty_source_reports_once(self, target):
        """Migrating an empty store writes nothing and reports zero once."""
        seen = []
        report = migrate(InMemoryEventStore(registry=release_2), target, progress=seen.append)
        assert seen == [report] == [MigrationReport(0, 0, 0, 0)]

    def test_retired_events_are_copied_as_stored(self, target):
        """An event of a retired type keeps its stored type, version and data."""
        source = InMemoryEventStore(registry=release_3)
        source.append_records([raw("s", "ledger.DailyLimitSet", 1, '{"limit":"9"}')])
        target = InMemoryEventStore(registry=release_3)
        migrate(source, target)
        ((old, new),) = zip(source.read_all_records(), target.read_all_records(), strict=True)
        assert (new.event_type, new.schema_version, new.data) == (
            old.event_type,
            old.schema_version,
            old.data,
        )

    def test_an_unreadable_event_stops_the_copy_after_the_batches_before(self, target):
        """A failing event raises its typed error; the batches before it are copied."""
        source = InMemoryEventStore(registry=release_2)
        source.append("a", [AccountCreated("ada")])
        source.append_records([raw("a", "ledger.MoneyDeposited", 2, "{}")])
        with pytest.raises(SerializationError) as info:
            migrate(source, target, batch_size=1)
        assert (info.value.stream_id, info.value.version, target.head_position()) == ("a", 2, 1)

    def test_a_non_empty_target_is_refused(self, source, target):
        """migrate copies into a new store only."""
        target.append("x", [DailyLimitSet(Decimal(1))])
        with pytest.raises(ValueError, match=r"target store is not empty \(head position 1\)"):
            migrate(source, target)

    def test_a_store_cannot_be_migrated_into_itself(self, source):
        """Source and target must be different stores."""
        with pytest.raises(ValueError, match="into itself"):
            migrate(source, source)

    @pytest.mark.parametrize("batch_size", [0, True, 1.5])
    def test_a_bad_batch_size_is_refused(self, source, target, batch_size):
        """batch_size must be an integer >= 1."""
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            migrate(source, target, batch_size=batch_size)
