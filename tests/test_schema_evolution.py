"""
Schema evolution end to end: events written by one release of the code, read by the next.

Each test opens one storage with the registries of successive releases of the ledger
(`tests.evolution`), as a deployment would after each upgrade. The storage fixture is
parametrized per backend: for a durable backend each open is a new store on the same
file; the in-memory store stands in by copying the raw records into each new store.
"""

from decimal import Decimal

import attrs
import pytest

from eventkit import (
    Aggregate,
    InMemoryEventStore,
    Repository,
    RetiredEvent,
    SQLiteEventStore,
    UpcastError,
    migrate,
    verify,
)
from eventkit.backends import NewRecord, RecordWrite
from tests.evolution import (
    AccountCreated,
    AccountOpened,
    DailyLimitSet,
    Money,
    MoneyDeposited,
    MoneyDepositedV1,
    MoneyDepositedV2,
    release_1,
    release_2,
    release_3,
)


class InMemoryFile:
    """Stands in for a store file: each open copies the last store's raw records."""

    def __init__(self):
        self.last = None

    def __call__(self, registry):
        store = InMemoryEventStore(registry=registry)
        if self.last is not None:
            for record in self.last.read_all_records():
                new = NewRecord(
                    record.event_id,
                    record.event_type,
                    record.schema_version,
                    record.data,
                    record.metadata,
                )
                store.append_records([RecordWrite(record.stream_id, (new,), record.version - 1)])
        self.last = store
        return store

    @staticmethod
    def other(registry):
        """Open another, empty storage."""
        return InMemoryEventStore(registry=registry)


class SQLiteFile:
    """One SQLite file, opened anew by each release."""

    def __init__(self, folder):
        self.folder = folder

    def __call__(self, registry):
        return SQLiteEventStore(self.folder / "ledger.db", registry=registry)

    def other(self, registry):
        """Open another, empty storage."""
        return SQLiteEventStore(self.folder / "other.db", registry=registry)


@pytest.fixture(name="open_store", params=["memory", "sqlite"])
def _open_store(request, tmp_path):
    """A function that opens one and the same storage with a given registry."""
    return SQLiteFile(tmp_path) if request.param == "sqlite" else InMemoryFile()


@attrs.define
class Ledger(Aggregate):
    owner: str = ""
    balance: Decimal = Decimal(0)

    def apply(self, event):
        match event:
            case AccountOpened(owner=owner):
                self.owner = owner
            case MoneyDeposited(amount=Money(value=value)):
                self.balance += value


def history(open_store):
    """Write release 1 events, then a release 2 deposit, to stream 'ledger-1'."""
    with open_store(release_1) as store:
        store.append(
            "ledger-1",
            [
                AccountCreated("ada"),
                MoneyDepositedV1(Decimal("12.50"), "salary"),
                DailyLimitSet(Decimal(500)),
            ],
        )
    with open_store(release_2) as store:
        store.append("ledger-1", [MoneyDepositedV2(Decimal("0.10"), "CHF", "interest")])


class TestSchemaEvolution:
    def test_events_written_by_old_releases_read_at_the_current_shape(self, open_store):
        """v1 and v2 rows, a renamed and a retired type, all read back as release 3 knows them."""
        history(open_store)
        with open_store(release_3) as store:
            recorded = store.read_stream("ledger-1")
            times = [record.recorded_at for record in store.read_all_records()]
        assert [r.event for r in recorded] == [
            AccountOpened("ada", "branch"),
            MoneyDeposited(Money(Decimal("12.50"), "EUR"), times[1], "salary"),
            RetiredEvent("ledger.DailyLimitSet", 1, {"limit": "500"}),
            MoneyDeposited(Money(Decimal("0.10"), "CHF"), times[3], "interest"),
        ]

    def test_reading_rewrites_nothing(self, open_store):
        """After release 3 read everything, the rows keep the versions they were written at."""
        history(open_store)
        with open_store(release_3) as store:
            store.read_stream("ledger-1")
            stored = [(r.event_type, r.schema_version) for r in store.read_all_records()]
        assert stored == [
            ("ledger.AccountCreated", 1),
            ("ledger.MoneyDeposited", 1),
            ("ledger.DailyLimitSet", 1),
            ("ledger.MoneyDeposited", 2),
        ]

    def test_reading_a_renamed_type_by_its_new_name_finds_its_old_events(self, open_store):
        """read_all(event_types=[AccountOpened]) also returns events stored as AccountCreated."""
        history(open_store)
        with open_store(release_3) as store:
            found = [r.event for r in store.read_all(event_types=[AccountOpened])]
        assert found == [AccountOpened("ada", "branch")]

    def test_an_aggregate_loads_and_saves_over_retired_events(self, open_store):
        """Retired events keep their versions: the aggregate loads and saves without conflict."""
        history(open_store)
        with open_store(release_3) as store:
            ledgers = Repository(store, Ledger, stream_prefix="ledger-")
            ledger = ledgers.load("1")
            assert (ledger.owner, ledger.balance, ledger.version) == ("ada", Decimal("12.60"), 4)
            ledger.record(MoneyDeposited(Money(Decimal(1), "EUR"), ledger_time(store)))
            assert ledgers.save(ledger).version == 5

    def test_a_rolled_back_release_refuses_newer_events_and_loses_nothing(self, open_store):
        """Release 2 reading a v3 row raises UpcastError; release 3 still reads it afterwards."""
        history(open_store)
        with open_store(release_3) as store:
            deposit = MoneyDeposited(Money(Decimal(7), "EUR"), ledger_time(store), "late")
            store.append("ledger-1", [deposit])
        with open_store(release_2) as store, pytest.raises(UpcastError) as info:
            store.read_stream("ledger-1")
        assert (info.value.stream_id, info.value.version, info.value.from_version) == (
            "ledger-1",
            5,
            3,
        )
        assert "newer than the current version 2" in str(info.value)
        with open_store(release_3) as store:
            assert store.read_stream("ledger-1", from_version=5)[0].event == deposit

    def test_verify_reports_what_a_release_cannot_read(self, open_store):
        """verify, run with the rolled-back release, names the v3 deposits it cannot load."""
        history(open_store)
        with open_store(release_3) as store:
            store.append("ledger-1", [MoneyDeposited(Money(Decimal(7), "EUR"), ledger_time(store))])
        with open_store(release_2) as store:
            report = verify(store)
        assert (report.loaded, report.failed) == (4, 1)
        failing = [group for group in report.groups if group.failed]
        assert [(g.event_type, g.schema_version, g.first_failure.version) for g in failing] == [
            ("ledger.MoneyDeposited", 3, 5)
        ]

    def test_migrate_brings_every_event_to_its_current_version(self, open_store):
        """After migrate, the copy holds current versions only and reads the same events."""
        history(open_store)
        with open_store(release_3) as source, open_store.other(release_3) as target:
            migrate(source, target)
            stored = [(r.event_type, r.schema_version) for r in target.read_all_records()]
            assert [r.event for r in target.read_stream("ledger-1")] == [
                r.event for r in source.read_stream("ledger-1")
            ]
        assert stored == [
            ("ledger.AccountOpened", 2),
            ("ledger.MoneyDeposited", 3),
            ("ledger.DailyLimitSet", 1),
            ("ledger.MoneyDeposited", 3),
        ]


def ledger_time(store):
    """Return the time the newest event was recorded: a deterministic deposit time."""
    return list(store.read_all_records())[-1].recorded_at
