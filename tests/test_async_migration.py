"""verify_async and migrate_async: what test_migration proves of the sync tools, through asyncio."""

from decimal import Decimal

import pytest
import pytest_asyncio

from eventkit import (
    AsyncInMemoryEventStore,
    MigrationReport,
    NewEvent,
    SerializationError,
    VerifyFailure,
    VerifyGroup,
    migrate_async,
    verify_async,
)
from tests.evolution import AccountCreated, DailyLimitSet, MoneyDepositedV2, release_2, release_3
from tests.test_migration import FAILURE, raw

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(name="source")
async def _source():
    store = AsyncInMemoryEventStore(registry=release_2)
    for n in range(3):
        await store.append("a", [NewEvent(AccountCreated("ada"), metadata={"n": str(n)})])
        await store.append("b", [MoneyDepositedV2(Decimal(n), "EUR")])
    await store.append_records([raw("a", "ledger.MoneyDeposited", 1, '{"amount":"5"}')])
    return store


@pytest.fixture(name="target")
def _target():
    return AsyncInMemoryEventStore(registry=release_2)


async def kept(store):
    """What a migration keeps of each event: all but positions and recording times."""
    return [
        (r.stream_id, r.version, r.event_id, r.metadata, r.event) async for r in store.read_all()
    ]


class TestVerifyAsync:
    async def test_counts_loads_and_failures_per_type_and_version(self):
        """Each stored (type, schema version) gets its counts and its first failure."""
        store = AsyncInMemoryEventStore(registry=release_3)
        await store.append_records(
            [
                raw("a", "ledger.AccountCreated", 1, '{"owner":"ada"}'),
                raw("b", "ledger.MoneyDeposited", 1, '{"amount":"1","note":"x"}'),
            ]
        )
        await store.append_records(
            [raw("a", "ledger.MoneyDeposited", 2, '{"amount":"2","currency":"EUR"}')]
        )
        await store.append_records(
            [raw("a", "ledger.MoneyDeposited", 2, '{"amount":"3","memo":"m"}')]
        )
        await store.append_records([raw("b", "ledger.DailyLimitSet", 1, '{"limit":"9"}')])
        report = await verify_async(store)
        assert (report.ok, report.groups) == (
            False,
            (
                VerifyGroup("ledger.AccountCreated", 1, 1, 0),
                VerifyGroup("ledger.DailyLimitSet", 1, 1, 0),
                VerifyGroup("ledger.MoneyDeposited", 1, 1, 0),
                VerifyGroup("ledger.MoneyDeposited", 2, 0, 2, VerifyFailure("a", 2, 3, FAILURE)),
            ),
        )


class TestMigrateAsync:
    async def test_copies_every_event_at_its_current_version(self, source, target):
        """Streams, versions, ids, metadata and order are kept; no old schema version is left."""
        report = await migrate_async(source, target, batch_size=2)
        versions = {r.schema_version async for r in target.read_all_records()}
        assert (await kept(target), versions, report) == (
            await kept(source),
            {1, 2},
            MigrationReport(7, 1, 7, 7),
        )
        deposits = target.read_all_records(event_types=["ledger.MoneyDeposited"])
        assert {r.schema_version async for r in deposits} == {2}

    async def test_a_dry_run_reports_each_batch_and_writes_nothing(self, source, target):
        """dry_run converts every event and reports per batch, but the target stays empty."""
        seen = []
        report = await migrate_async(
            source, target, dry_run=True, batch_size=3, progress=seen.append
        )
        assert ([(r.copied, r.position) for r in seen], report.dry_run) == (
            [(3, 3), (6, 6), (7, 7)],
            True,
        )
        assert await target.head_position() == 0

    async def test_a_last_full_batch_is_not_followed_by_an_empty_report(self, source, target):
        """When the events fill the batches exactly, progress hears of each batch once."""
        seen = []
        await migrate_async(source, target, batch_size=7, progress=seen.append)
        assert ([r.copied for r in seen], await target.head_position()) == ([7], 7)

    async def test_an_empty_source_reports_once(self, target):
        """Migrating an empty store writes nothing and reports zero once."""
        seen = []
        empty = AsyncInMemoryEventStore(registry=release_2)
        report = await migrate_async(empty, target, progress=seen.append)
        assert seen == [report] == [MigrationReport(0, 0, 0, 0)]

    async def test_retired_events_are_copied_as_stored(self):
        """An event of a retired type keeps its stored type, version and data."""
        source = AsyncInMemoryEventStore(registry=release_3)
        await source.append_records([raw("s", "ledger.DailyLimitSet", 1, '{"limit":"9"}')])
        target = AsyncInMemoryEventStore(registry=release_3)
        await migrate_async(source, target)
        (old,) = [r async for r in source.read_all_records()]
        (new,) = [r async for r in target.read_all_records()]
        assert (new.event_type, new.schema_version, new.data) == (
            old.event_type,
            old.schema_version,
            old.data,
        )

    async def test_an_unreadable_event_stops_the_copy_after_the_batches_before(self, target):
        """A failing event raises its typed error; the batches before it are copied."""
        source = AsyncInMemoryEventStore(registry=release_2)
        await source.append("a", [AccountCreated("ada")])
        await source.append_records([raw("a", "ledger.MoneyDeposited", 2, "{}")])
        with pytest.raises(SerializationError) as info:
            await migrate_async(source, target, batch_size=1)
        assert (info.value.stream_id, info.value.version) == ("a", 2)
        assert await target.head_position() == 1

    async def test_a_non_empty_target_is_refused(self, source, target):
        """migrate_async copies into a new store only."""
        await target.append("x", [DailyLimitSet(Decimal(1))])
        with pytest.raises(ValueError, match=r"target store is not empty \(head position 1\)"):
            await migrate_async(source, target)

    async def test_a_store_cannot_be_migrated_into_itself(self, source):
        """Source and target must be different stores."""
        with pytest.raises(ValueError, match="into itself"):
            await migrate_async(source, source)

    @pytest.mark.parametrize("batch_size", [0, True, 1.5])
    async def test_a_bad_batch_size_is_refused(self, source, target, batch_size):
        """batch_size must be an integer >= 1."""
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            await migrate_async(source, target, batch_size=batch_size)
