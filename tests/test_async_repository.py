"""The async repository: what test_repository and test_snapshots prove, through asyncio."""

import json
import logging
import uuid
from decimal import Decimal

import attrs
import pytest
import pytest_asyncio

from eventkit import (
    ANY,
    Aggregate,
    AsyncInMemoryEventStore,
    AsyncRepository,
    AsyncSQLiteEventStore,
    ConcurrencyError,
    SnapshotWarning,
    StoreError,
    StreamNotFound,
    VersionNotFoundError,
)
from eventkit._snapshots import take_snapshot
from eventkit.backends import NewRecord, RecordWrite
from tests.bank import Account, AccountOpened, MoneyDeposited, registry

pytestmark = pytest.mark.asyncio

LOGGER = "eventkit.snapshots"


class Crash(BaseException):
    """Stands for the process dying: nothing in eventkit may catch it."""


class FlakyStore(AsyncInMemoryEventStore):
    """An async in-memory store whose appends, snapshot writes or reads can fail."""

    failure: BaseException | None = None
    snapshot_read_failure: BaseException | None = None
    read_failure: BaseException | None = None
    lose_first_response = False
    first_ids: tuple = ()

    async def _append(self, writes):
        results = await super()._append(writes)
        if self.lose_first_response and not self.first_ids:
            # Committed, but reported as failed, like a link dropped after the commit.
            self.first_ids = tuple(r.event_id for w in writes for r in w.records)
            raise StoreError("connection lost after commit")
        return results

    async def _load_snapshot(self, stream_id):
        if self.snapshot_read_failure is not None:
            raise self.snapshot_read_failure
        return await super()._load_snapshot(stream_id)

    async def _save_snapshot(self, record):
        if self.failure is not None:
            raise self.failure
        await super()._save_snapshot(record)

    async def _read_stream(self, stream_id, low, high, *, backwards, limit):
        if self.read_failure is not None:
            raise self.read_failure
        return await super()._read_stream(stream_id, low, high, backwards=backwards, limit=limit)


@pytest.fixture(name="store")
def _store():
    return FlakyStore(registry=registry)


@pytest.fixture(name="replayed")
def _replayed(store):
    """A repository without snapshots: loads replay every event."""
    return AsyncRepository(store, Account, stream_prefix="account-")


@pytest.fixture(name="accounts")
def _accounts(store):
    """A repository that snapshots every third version."""
    return AsyncRepository(store, Account, stream_prefix="account-", snapshot_every=3)


async def open_account(accounts, account_id="1", *deposits, each_saved=True):
    account = Account(account_id)
    account.open("ada")
    for amount in deposits:
        if each_saved:
            await accounts.save(account)
        account.deposit(Decimal(amount))
    await accounts.save(account)
    return account


def snapshot_of(account, store):
    return take_snapshot(
        account, stream_id=f"account-{account.id}", event_id=uuid.uuid4(), codec=store.codec
    )


async def tamper(store, stream_id, **state_changes):
    """Change fields in the stored snapshot's state, keeping it valid."""
    record = await store.load_snapshot(stream_id)
    state = json.loads(record.state) | state_changes
    await store.save_snapshot(record._replace(state=json.dumps(state)))


class Undecorated(Aggregate):
    def apply(self, event):
        pass


@attrs.define
class Strict(Aggregate):
    owner: str

    def apply(self, event):
        pass


class TestArguments:
    @pytest.mark.parametrize(
        ("aggregate_type", "message"),
        [
            (int, "needs an Aggregate subclass"),
            (Undecorated, r"Undecorated must be decorated with @attrs\.define"),
            (Strict, r"Strict\.owner needs a default"),
        ],
    )
    async def test_an_aggregate_class_is_required(self, store, aggregate_type, message):
        """Not an aggregate, an aggregate without attrs, or fields without defaults: refused."""
        with pytest.raises(TypeError, match=message):
            AsyncRepository(store, aggregate_type)

    @pytest.mark.parametrize("at_version", [0, True, 1.0])
    async def test_load_refuses_a_bad_version(self, accounts, at_version):
        """at_version must be an integer >= 1."""
        with pytest.raises(ValueError, match="at_version must be an integer >= 1"):
            await accounts.load("1", at_version=at_version)

    async def test_repr_names_class_and_store(self, accounts):
        """The repr names the aggregate class and the store."""
        assert repr(accounts).startswith("<AsyncRepository of Account in <FlakyStore")


class TestSavingAndLoading:
    async def test_save_then_load_returns_an_equal_aggregate(self, replayed):
        """A saved aggregate loads back equal, with no pending events."""
        saved = await open_account(replayed, "1", 5, 7)
        loaded = await replayed.load("1")
        assert (loaded, loaded.version, loaded.pending_events) == (saved, 3, ())

    async def test_saving_an_unchanged_aggregate_appends_nothing(self, replayed, store):
        """save() of an aggregate with no pending events writes nothing and returns None."""
        await open_account(replayed)
        head = await store.head_position()
        unchanged = await replayed.save(await replayed.load("1"))
        assert (unchanged, await store.head_position()) == (None, head)

    async def test_metadata_is_stored_with_every_event(self, replayed, store):
        """Metadata given to save() is attached to each appended event."""
        account = Account("1")
        account.open("ada")
        account.deposit(Decimal(1))
        await replayed.save(account, metadata={"correlation_id": "req-9"})
        stored = await store.read_stream("account-1")
        assert [dict(r.metadata) for r in stored] == [{"correlation_id": "req-9"}] * 2

    async def test_a_save_retried_after_a_lost_response_stores_nothing_twice(self, store):
        """Saving again after an append that committed but reported an error is a retry."""
        store.lose_first_response = True
        accounts = AsyncRepository(store, Account)
        account = Account("1")
        account.open("ada")
        account.deposit(Decimal(5))
        with pytest.raises(StoreError):
            await accounts.save(account)
        result = await accounts.save(account)
        stored = [r.event_id for r in await store.read_stream("1")]
        assert (result.version, stored, account.pending_events) == (2, list(store.first_ids), ())

    async def test_a_concurrent_change_raises_and_keeps_pending_events(self, replayed):
        """Saving a stale copy raises ConcurrencyError; its pending events survive."""
        await open_account(replayed)
        first, second = await replayed.load("1"), await replayed.load("1")
        first.deposit(Decimal(1))
        second.deposit(Decimal(2))
        await replayed.save(first)
        with pytest.raises(ConcurrencyError) as info:
            await replayed.save(second)
        assert (info.value.expected_version, info.value.actual_version) == (1, 2)
        assert second.pending_events == (MoneyDeposited(Decimal(2)),)

    async def test_loading_an_unknown_id_raises_stream_not_found(self, replayed):
        """load() of an id with no events raises StreamNotFound naming the stream."""
        with pytest.raises(StreamNotFound, match="'account-nope'"):
            await replayed.load("nope")

    async def test_load_at_version_travels_in_time(self, replayed):
        """load(at_version=n) returns the aggregate as it was after n events."""
        await open_account(replayed, "1", 5, 7)
        past = await replayed.load("1", at_version=2)
        assert (past.balance, past.version) == (5, 2)

    @pytest.mark.parametrize("snapshots", [False, True])
    async def test_load_beyond_the_stream_raises_version_not_found(
        self, replayed, accounts, snapshots
    ):
        """A version the stream never reached raises, with or without a snapshot to start from."""
        await open_account(accounts, "1", 1, 2, 3)
        repository = accounts if snapshots else replayed
        with pytest.raises(VersionNotFoundError, match=r"no version 9 \(its version is 4\)"):
            await repository.load("1", at_version=9)

    async def test_exists(self, replayed):
        """exists() is true once an aggregate has events."""
        await open_account(replayed)
        assert (await replayed.exists("1"), await replayed.exists("2")) == (True, False)

    async def test_an_sqlite_store_saves_and_travels_in_time(self, tmp_path):
        """The same repository over async SQLite: save, reload, an older version."""
        async with AsyncSQLiteEventStore(tmp_path / "bank.db", registry=registry) as store:
            accounts = AsyncRepository(store, Account, snapshot_every=2)
            await open_account(accounts, "1", 5, 7)
            loaded, past = await accounts.load("1"), await accounts.load("1", at_version=2)
            snapshot = await store.load_snapshot("1")
        assert (loaded.balance, past.balance, snapshot.version) == (12, 5, 2)


class TestSnapshots:
    async def test_a_snapshot_is_written_when_the_policy_says_so(self, accounts, store):
        """With snapshot_every=3, five single-event saves leave a snapshot at version 3."""
        await open_account(accounts, "1", 1, 2, 3, 4)
        assert (await store.load_snapshot("account-1")).version == 3

    async def test_load_starts_from_the_snapshot_and_applies_the_rest(self, accounts, store):
        """The loaded aggregate is built on the snapshot's state (seen by altering it)."""
        await open_account(accounts, "1", 10, 20, 30, 40)
        await tamper(store, "account-1", owner="from the snapshot")
        loaded = await accounts.load("1")
        assert (loaded.owner, loaded.balance, loaded.version) == ("from the snapshot", 100, 5)

    async def test_load_below_the_snapshot_replays_silently(self, accounts, replayed, caplog):
        """A version older than the snapshot is replayed from the start, without a warning."""
        await open_account(accounts, "1", 1, 2, 3, 4)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            loaded = await accounts.load("1", at_version=2)
        assert (loaded, caplog.records) == (await replayed.load("1", at_version=2), [])

    async def test_a_failing_snapshot_write_is_logged_and_the_save_succeeds(
        self, accounts, store, replayed, caplog
    ):
        """A snapshot write that fails is logged; save returns and the events are stored."""
        store.failure = OSError("disk full")
        account = Account("1")
        account.open("ada")
        account.deposit(Decimal(1))
        account.deposit(Decimal(2))
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            result = await accounts.save(account)
        assert (result.version, account.pending_events) == (3, ())
        assert "writing their snapshot failed" in caplog.text
        assert "disk full" in caplog.text
        assert await accounts.load("1") == await replayed.load("1") == account

    async def test_a_crash_after_the_append_leaves_a_loadable_aggregate(
        self, accounts, store, replayed
    ):
        """A process dying between append and snapshot write loses nothing: load works."""
        account = await open_account(accounts, "1", 1, 2)  # snapshot at version 3
        for amount in (3, 4, 5):
            account.deposit(Decimal(amount))
        store.failure = Crash()
        with pytest.raises(Crash):
            await accounts.save(account)
        store.failure = None
        loaded = await accounts.load("1")
        assert (loaded, loaded.balance) == (await replayed.load("1"), 15)

    async def test_a_snapshot_row_the_backend_cannot_read_is_ignored(
        self, accounts, store, replayed, caplog
    ):
        """A row so corrupt that the backend fails to read it is logged; load replays."""
        await open_account(accounts, "1", 1, 2, 3)
        store.snapshot_read_failure = ValueError("badly formed hexadecimal UUID string")
        with (
            caplog.at_level(logging.WARNING, logger=LOGGER),
            pytest.warns(SnapshotWarning, match="cannot be read"),
        ):
            loaded = await accounts.load("1")
        assert (loaded, "hexadecimal UUID" in caplog.text) == (await replayed.load("1"), True)

    async def test_a_corrupt_snapshot_is_ignored_and_replaced_at_the_next_save(
        self, accounts, store, replayed
    ):
        """State that does not load is ignored; the next save replaces it off the policy."""
        await open_account(accounts, "1", 1, 2, 3)
        record = await store.load_snapshot("account-1")
        await store.save_snapshot(record._replace(state='{"id": "1", "bal'))
        with pytest.warns(SnapshotWarning, match="'account-1'.*not valid JSON"):
            account = await accounts.load("1")
        assert account == await replayed.load("1")
        account.deposit(Decimal(4))  # version 5: not a multiple of 3
        await accounts.save(account)
        replaced = await store.load_snapshot("account-1")
        assert (replaced.version, await accounts.load("1")) == (5, account)

    async def test_a_snapshot_of_a_rewritten_stream_is_ignored(self, accounts, store, replayed):
        """A snapshot whose event is no longer in the stream is ignored with a warning."""
        await open_account(accounts, "1", 1, 2, 3)
        await tamper(store, "account-1", owner="stale")
        record = await store.load_snapshot("account-1")
        await store.save_snapshot(record._replace(event_id=uuid.uuid4()))
        with pytest.warns(SnapshotWarning, match="not the one it was taken after"):
            loaded = await accounts.load("1")
        assert (loaded, loaded.owner) == (await replayed.load("1"), "ada")

    async def test_a_snapshot_without_events_does_not_make_the_aggregate_exist(
        self, accounts, store
    ):
        """A snapshot whose stream has no events is ignored: the stream is still missing."""
        await store.save_snapshot(snapshot_of(Account("9", version=2), store))
        with (
            pytest.raises(StreamNotFound),
            pytest.warns(SnapshotWarning, match="ends before version 2"),
        ):
            await accounts.load("9")


class TestRebuildSnapshots:
    @pytest_asyncio.fixture(name="populated")
    async def _populated(self, store, replayed):
        for account_id in ("1", "2", "3"):
            await open_account(replayed, account_id, 5, 7, each_saved=False)
        await store.append("order-1", [MoneyDeposited(Decimal(1))])
        return store

    async def test_each_aggregate_with_the_prefix_gets_a_snapshot(self, accounts, populated):
        """Every stream with the prefix gets a snapshot at its head; progress hears of each."""
        seen = []
        final = await accounts.rebuild_snapshots(progress=seen.append)
        versions = [(await populated.load_snapshot(f"account-{n}")).version for n in "123"]
        assert (versions, await populated.load_snapshot("order-1")) == ([3, 3, 3], None)
        assert [(p.done, p.written, p.stream_id) for p in seen] == [
            (1, 1, "account-1"),
            (2, 2, "account-2"),
            (3, 3, "account-3"),
        ]
        assert final == seen[-1]

    async def test_a_broken_stream_is_counted_and_the_rest_rebuilt(
        self, accounts, populated, caplog
    ):
        """A stream that cannot be replayed is logged and counted; the others get snapshots."""
        record = NewRecord(uuid.uuid4(), "bank.MoneyDeposited", 1, '{"amount": "x"}', "{}")
        await populated.append_records([RecordWrite("account-2", (record,), ANY)])
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            final = await accounts.rebuild_snapshots()
        assert (final.done, final.written, final.failed) == (3, 2, 1)
        assert "'account-2': could not rebuild its snapshot" in caplog.text
        assert await populated.load_snapshot("account-2") is None

    async def test_given_ids_are_rebuilt_and_missing_ones_counted(self, store, replayed, caplog):
        """With aggregate_ids, only those are rebuilt; an id without events counts as failed."""
        await open_account(replayed, "1", 5)
        accounts = AsyncRepository(store, Account, snapshot_every=100)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            final = await accounts.rebuild_snapshots(aggregate_ids=["account-1", "nobody"])
        assert (final.written, final.failed, "'nobody': no snapshot rebuilt" in caplog.text) == (
            1,
            1,
            True,
        )
        assert (await store.load_snapshot("account-1")).version == 2

    @pytest.mark.parametrize("failing", ["failure", "read_failure"])
    async def test_a_store_failure_stops_the_rebuild(self, accounts, populated, failing):
        """A StoreError, reading or writing, is not one broken aggregate: it stops the rebuild."""
        setattr(populated, failing, StoreError("database is gone"))
        with pytest.raises(StoreError, match="database is gone"):
            await accounts.rebuild_snapshots()

    async def test_without_a_prefix_the_ids_must_be_given(self, store):
        """Without a stream prefix, listing streams would mix aggregate types: refused."""
        with pytest.raises(ValueError, match="pass aggregate_ids"):
            await AsyncRepository(store, Account, snapshot_every=10).rebuild_snapshots()

    async def test_a_repository_without_snapshots_refuses(self, replayed):
        """Rebuilding snapshots a repository would never read is refused."""
        with pytest.raises(ValueError, match="takes no snapshots"):
            await replayed.rebuild_snapshots()


async def test_loading_at_every_version_equals_replaying_the_first_events(accounts, replayed):
    """With snapshots, load(at_version=k) equals a replay of the first k events, for every k."""
    await open_account(accounts, "1", *range(1, 9))
    history = [AccountOpened("ada")] + [MoneyDeposited(Decimal(a)) for a in range(1, 9)]
    for k in range(1, len(history) + 1):
        expected = Account("1").replay(history[:k])
        assert await accounts.load("1", at_version=k) == expected
        assert await replayed.load("1", at_version=k) == expected
