"""Snapshots: the pure decisions, the repository that uses them, and bulk rebuilds."""

# Annotations stay strings here on purpose: snapshots of aggregates defined this way must
# work (cattrs resolves them through the class's bases, eventkit's Aggregate included).
from __future__ import annotations

import json
import logging
import uuid
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventkit import (
    ANY,
    Aggregate,
    InMemoryEventStore,
    RecordedEvent,
    Repository,
    SerializationError,
    SnapshotProgress,
    SnapshotWarning,
    StoreError,
    StreamNotFound,
    VersionNotFoundError,
)
from eventkit._snapshots import (
    boundary_reason,
    choose_policy,
    restore,
    snapshot_every,
    take_snapshot,
    unusable_reason,
)
from eventkit.backends import NewRecord, RecordWrite
from tests.bank import Account, AccountOpened, MoneyDeposited, registry

LOGGER = "eventkit.snapshots"


class Crash(BaseException):
    """Stands for the process dying: nothing in eventkit may catch it."""


class FlakyStore(InMemoryEventStore):
    """An in-memory store whose snapshot writes, snapshot reads or stream reads fail."""

    failure: BaseException | None = None
    snapshot_read_failure: BaseException | None = None
    read_failure: BaseException | None = None

    def _load_snapshot(self, stream_id):
        if self.snapshot_read_failure is not None:
            raise self.snapshot_read_failure
        return super()._load_snapshot(stream_id)

    def _save_snapshot(self, record):
        if self.failure is not None:
            raise self.failure
        super()._save_snapshot(record)

    def _read_stream(self, stream_id, low, high, *, backwards, limit):
        if self.read_failure is not None:
            raise self.read_failure
        return super()._read_stream(stream_id, low, high, backwards=backwards, limit=limit)


@pytest.fixture(name="store")
def _store():
    return FlakyStore(registry=registry)


@pytest.fixture(name="accounts")
def _accounts(store):
    return Repository(store, Account, stream_prefix="account-", snapshot_every=3)


@pytest.fixture(name="replayed")
def _replayed(store):
    """A repository without snapshots over the same store: loads replay every event."""
    return Repository(store, Account, stream_prefix="account-")


def open_account(accounts, account_id="1", *deposits, each_saved=True):
    account = Account(account_id)
    account.open("ada")
    for amount in deposits:
        if each_saved:
            accounts.save(account)
        account.deposit(Decimal(amount))
    accounts.save(account)
    return account


def at_version(version, new_events=1):
    account = Account("a", version=version)
    return account, [MoneyDeposited(Decimal(1))] * new_events


def recorded(version, event_id):
    return RecordedEvent(
        stream_id="s",
        version=version,
        position=version,
        event_id=event_id,
        recorded_at=None,
        metadata={},
        event_type="bank.MoneyDeposited",
        event=MoneyDeposited(Decimal(1)),
    )


def snapshot_of(account, event_id=None):
    return take_snapshot(
        account,
        stream_id=f"account-{account.id}",
        event_id=event_id or uuid.uuid4(),
        codec=InMemoryEventStore(registry=registry).codec,
    )


def tamper(store, stream_id, **state_changes):
    """Change fields in the stored snapshot's state, keeping it valid."""
    record = store.load_snapshot(stream_id)
    state = json.loads(record.state) | state_changes
    store.save_snapshot(record._replace(state=json.dumps(state)))


@attrs.define
class Ledger(Aggregate):
    """An aggregate with container fields, defined under postponed annotations."""

    entries: list[Decimal] = attrs.field(factory=list)
    by_memo: dict[str, Decimal] = attrs.field(factory=dict)

    def apply(self, event: object) -> None:
        match event:
            case MoneyDeposited(amount=amount):
                self.entries.append(amount)
                self.by_memo[f"m{len(self.entries)}"] = amount


# -- the pure decisions -------------------------------------------------------------------


class TestSnapshotEvery:
    def test_one_event_per_save_snapshots_at_each_multiple(self):
        """With single-event saves, snapshots fall on versions n, 2n, 3n."""
        policy = snapshot_every(3)
        assert [v for v in range(1, 11) if policy(*at_version(v))] == [3, 6, 9]

    def test_a_batch_that_crosses_a_multiple_snapshots_once(self):
        """A save of several events snapshots when it passed a multiple, not otherwise."""
        policy = snapshot_every(10)
        assert (policy(*at_version(12, 5)), policy(*at_version(19, 5))) == (True, False)

    @pytest.mark.parametrize("bad", [0, -1, True, 2.5, "10"])
    def test_refuses_an_interval_that_is_not_a_positive_integer(self, bad):
        """snapshot_every needs an integer >= 1, and says so."""
        with pytest.raises(ValueError, match="snapshot_every must be an integer >= 1"):
            snapshot_every(bad)


class TestChoosePolicy:
    def test_no_setting_means_no_snapshots(self):
        """Without snapshot_every or snapshot_policy there is no policy."""
        assert choose_policy(None, None) is None

    def test_a_policy_callable_is_used_as_it_is(self):
        """A snapshot_policy is returned unchanged."""

        def policy(aggregate, new_events):
            return True

        assert choose_policy(None, policy) is policy

    def test_both_settings_are_refused(self):
        """snapshot_every and snapshot_policy together are ambiguous: refused."""
        with pytest.raises(ValueError, match="not both"):
            choose_policy(5, lambda aggregate, new_events: True)

    def test_a_policy_that_is_not_callable_is_refused(self):
        """snapshot_policy must be a callable."""
        with pytest.raises(TypeError, match="snapshot_policy must be a callable"):
            choose_policy(None, 5)  # type: ignore[arg-type]


class TestTakeSnapshot:
    def test_records_the_class_version_and_event(self):
        """A snapshot names the class, the aggregate's version and snapshot_version, the event."""
        account = Account("1").replay([AccountOpened("ada"), MoneyDeposited(Decimal(5))])
        event_id = uuid.uuid4()
        record = snapshot_of(account, event_id)
        assert (record.stream_id, record.aggregate_type, record.version) == (
            "account-1",
            "Account",
            2,
        )
        assert (record.event_id, record.snapshot_version) == (event_id, 1)
        assert record.taken_at.utcoffset() is not None

    def test_state_leaves_out_pending_events(self):
        """The stored state holds the fields, not the events waiting to be saved."""
        account = Account("1")
        account.open("ada")
        assert json.loads(snapshot_of(account).state) == {
            "id": "1",
            "version": 1,
            "owner": "ada",
            "balance": "0",
            "overdraft_limit": "0",
            "is_open": True,
        }

    def test_build_seconds_counts_from_the_given_start(self):
        """build_seconds includes the time before the call when a start is given."""
        account = Account("1").replay([AccountOpened("ada")])
        record = take_snapshot(
            account,
            stream_id="s",
            event_id=uuid.uuid4(),
            codec=InMemoryEventStore().codec,
            started=0.0,
        )
        assert record.build_seconds > 0

    def test_state_that_cannot_be_encoded_raises_serialization_error(self):
        """A field the converter cannot turn into JSON raises SerializationError."""
        account = Account("1").replay([AccountOpened("ada")])
        account.owner = object()  # type: ignore[assignment]
        with pytest.raises(SerializationError, match="Account"):
            snapshot_of(account)


class TestUnusableReason:
    def test_a_snapshot_of_the_class_at_its_version_is_usable(self):
        """A snapshot of this class at the current snapshot_version has no problem."""
        record = snapshot_of(Account("1").replay([AccountOpened("ada")]))
        assert unusable_reason(record, Account) is None

    def test_another_snapshot_version_is_unusable(self):
        """A snapshot taken at another snapshot_version is refused, naming both."""
        record = snapshot_of(Account("1").replay([AccountOpened("ada")]))._replace(
            snapshot_version=7
        )
        assert unusable_reason(record, Account) == (
            "it was taken at snapshot_version 7, and Account is now at snapshot_version 1"
        )

    def test_another_aggregate_type_is_unusable(self):
        """A snapshot of another class is refused, naming both."""
        record = snapshot_of(Account("1").replay([AccountOpened("ada")]))
        assert unusable_reason(record, Ledger) == "it holds a Account, not a Ledger"


class TestBoundaryReason:
    def test_the_same_event_at_the_snapshot_version_fits(self):
        """The stream's event at the snapshot's version is the one it was taken after."""
        event_id = uuid.uuid4()
        record = snapshot_of(Account("1", version=4), event_id)
        assert boundary_reason(record, recorded(4, event_id)) is None

    def test_a_stream_that_ends_before_the_snapshot_does_not_fit(self):
        """A stream shorter than the snapshot's version was truncated or restored."""
        record = snapshot_of(Account("1", version=4))
        assert "ends before version 4" in boundary_reason(record, None)

    def test_another_event_at_the_snapshot_version_does_not_fit(self):
        """A different event at the snapshot's version means the stream was rewritten."""
        record = snapshot_of(Account("1", version=4))
        assert "not the one it was taken after" in boundary_reason(
            record, recorded(4, uuid.uuid4())
        )


class TestRestore:
    @pytest.fixture(name="record")
    def _record(self):
        return snapshot_of(Account("1").replay([AccountOpened("ada")]))

    def restore(self, record, **changes):
        codec = InMemoryEventStore().codec
        return restore(record._replace(**changes), Account, "1", codec)

    def test_restores_the_state_it_holds(self, record):
        """A snapshot restores an aggregate equal to the one it was taken of."""
        assert self.restore(record) == Account("1").replay([AccountOpened("ada")])

    def test_text_that_is_not_json_raises(self, record):
        """Corrupt state raises SerializationError."""
        with pytest.raises(SerializationError, match="not valid JSON"):
            self.restore(record, state="{corrupt")

    def test_json_that_is_not_an_object_raises(self, record):
        """State that is JSON but not an object raises SerializationError."""
        with pytest.raises(SerializationError, match="not an object"):
            self.restore(record, state="[1, 2]")

    def test_a_missing_or_unknown_field_raises(self, record):
        """State written before a field was added or removed raises, naming the fields."""
        state = json.loads(record.state)
        del state["balance"]
        state["colour"] = "red"
        with pytest.raises(
            SerializationError, match=r"missing \['balance'\], unknown \['colour'\]"
        ):
            self.restore(record, state=json.dumps(state))

    def test_a_field_of_the_wrong_type_raises(self, record):
        """State whose field no longer structures raises, naming the field."""
        state = json.loads(record.state) | {"balance": "lots"}
        with pytest.raises(SerializationError, match=r"\$\.balance"):
            self.restore(record, state=json.dumps(state))

    def test_state_of_another_aggregate_or_version_raises(self, record):
        """State whose id or version differs from the record's is refused."""
        with pytest.raises(SerializationError, match="not '1' at version 5"):
            self.restore(record, version=5)


class TestSnapshotProgress:
    def test_advancing_counts_written_and_failed_streams(self):
        """advanced() counts one more stream, written or failed."""
        progress = SnapshotProgress().advanced("a", written=True, elapsed=1.0)
        progress = progress.advanced("b", written=False, elapsed=2.5)
        assert progress == SnapshotProgress(done=2, written=1, failed=1, stream_id="b", elapsed=2.5)

    def test_text_is_one_line_for_a_terminal(self):
        """str() gives the counts, the time and the last stream."""
        progress = SnapshotProgress(done=3, written=2, failed=1, stream_id="a-3", elapsed=1.25)
        assert str(progress) == "snapshots: 3 streams, 2 written, 1 failed in 1.2s (last: 'a-3')"


# -- the repository ---------------------------------------------------------------------------


class TestSnapshotSettings:
    def test_a_repository_refuses_both_settings(self, store):
        """snapshot_every and snapshot_policy cannot be combined."""
        with pytest.raises(ValueError, match="not both"):
            Repository(store, Account, snapshot_every=2, snapshot_policy=lambda a, e: True)

    def test_a_repository_refuses_a_zero_interval(self, store):
        """snapshot_every=0 is refused."""
        with pytest.raises(ValueError, match="snapshot_every"):
            Repository(store, Account, snapshot_every=0)

    def test_fields_a_snapshot_would_lose_are_refused(self, store):
        """With snapshots, a field declared init=False (left out of snapshots) is refused."""

        @attrs.define
        class Cached(Aggregate):
            total: int = attrs.field(default=0, init=False)

            def apply(self, event):
                pass

        with pytest.raises(TypeError, match=r"init=False \(total\)"):
            Repository(store, Cached, snapshot_every=10)

    def test_without_snapshots_nothing_is_written(self, store, replayed):
        """A repository without snapshot settings never writes a snapshot."""
        open_account(replayed, "1", *range(1, 10))
        assert store.load_snapshot("account-1") is None


class TestSavingSnapshots:
    def test_a_snapshot_is_written_when_the_policy_says_so(self, accounts, store):
        """With snapshot_every=3, five single-event saves leave a snapshot at version 3."""
        open_account(accounts, "1", 1, 2, 3, 4)
        assert store.load_snapshot("account-1").version == 3

    def test_no_snapshot_before_the_first_interval(self, accounts, store):
        """Two events with snapshot_every=3 leave no snapshot."""
        open_account(accounts, "1", 1)
        assert store.load_snapshot("account-1") is None

    def test_a_policy_sees_the_saved_aggregate_and_its_new_events(self, store):
        """snapshot_policy is called after the save with the aggregate and what it appended."""
        calls = []

        def policy(aggregate, new_events):
            calls.append((aggregate.version, aggregate.pending_events, list(new_events)))
            return False

        open_account(Repository(store, Account, snapshot_policy=policy), "1", 5, each_saved=False)
        assert calls == [(2, (), [AccountOpened("ada"), MoneyDeposited(Decimal(5))])]

    def test_a_failing_snapshot_write_is_logged_and_the_save_succeeds(
        self, accounts, store, replayed, caplog
    ):
        """A snapshot write that fails is logged; save returns and the events are stored."""
        store.failure = OSError("disk full")
        account = Account("1")
        account.open("ada")
        for amount in (1, 2):
            account.deposit(Decimal(amount))
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            result = accounts.save(account)
        assert (result.version, account.pending_events) == (3, ())
        assert "writing their snapshot failed" in caplog.text
        assert "disk full" in caplog.text
        assert accounts.load("1") == replayed.load("1") == account

    def test_a_failing_policy_is_logged_and_the_save_succeeds(self, store, caplog):
        """A policy that raises is logged; the save still stands."""

        def policy(aggregate, new_events):
            raise RuntimeError("policy bug")

        accounts = Repository(store, Account, snapshot_policy=policy)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            open_account(accounts)
        assert (store.stream_version("1"), "policy bug" in caplog.text) == (1, True)

    def test_a_crash_after_the_append_leaves_a_loadable_aggregate(self, accounts, store, replayed):
        """A process dying between append and snapshot write loses nothing: load works."""
        account = open_account(accounts, "1", 1, 2)  # snapshot at version 3
        account.deposit(Decimal(3))
        account.deposit(Decimal(4))
        account.deposit(Decimal(5))
        store.failure = Crash()
        with pytest.raises(Crash):
            accounts.save(account)
        store.failure = None
        fresh = Repository(store, Account, stream_prefix="account-", snapshot_every=3)
        assert (store.stream_version("account-1"), store.load_snapshot("account-1").version) == (
            6,
            3,
        )
        assert fresh.load("1") == replayed.load("1")
        assert fresh.load("1").balance == 15


class TestLoadingFromSnapshots:
    def test_load_starts_from_the_snapshot(self, accounts, store):
        """The loaded aggregate is built on the snapshot's state (seen by altering it)."""
        open_account(accounts, "1", 1, 2, 3)
        tamper(store, "account-1", owner="from the snapshot")
        assert accounts.load("1").owner == "from the snapshot"

    def test_load_applies_the_events_after_the_snapshot(self, accounts, replayed):
        """Snapshot at version 3 plus the events after it equals the full replay."""
        open_account(accounts, "1", 10, 20, 30, 40)
        assert (accounts.load("1"), accounts.load("1").balance) == (replayed.load("1"), 100)

    def test_load_at_a_version_at_or_above_the_snapshot_uses_it(self, accounts, store):
        """load(at_version=n) starts from a snapshot at or below n."""
        open_account(accounts, "1", 1, 2, 3, 4)
        tamper(store, "account-1", owner="from the snapshot")
        loaded = [accounts.load("1", at_version=n).owner for n in (3, 4)]
        assert loaded == ["from the snapshot"] * 2

    def test_load_below_the_snapshot_replays_silently(self, accounts, store, replayed, caplog):
        """A version older than the snapshot is replayed from the start, without a warning."""
        open_account(accounts, "1", 1, 2, 3, 4)
        tamper(store, "account-1", owner="from the snapshot")
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            loaded = accounts.load("1", at_version=2)
        assert (loaded, caplog.records) == (replayed.load("1", at_version=2), [])

    def test_load_beyond_the_stream_still_raises(self, accounts):
        """With a snapshot, a version the stream never reached raises VersionNotFoundError."""
        open_account(accounts, "1", 1, 2, 3)
        with pytest.raises(VersionNotFoundError, match="no version 9 \\(its version is 4\\)"):
            accounts.load("1", at_version=9)

    def test_load_refuses_a_bad_version(self, accounts):
        """at_version must be an integer >= 1."""
        with pytest.raises(ValueError, match="at_version must be an integer >= 1"):
            accounts.load("1", at_version=True)

    def test_a_snapshot_without_events_is_ignored_and_the_stream_missing(self, accounts, store):
        """A snapshot whose stream has no events does not make the aggregate exist."""
        store.save_snapshot(snapshot_of(Account("9", version=2)))
        with (
            pytest.raises(StreamNotFound),
            pytest.warns(SnapshotWarning, match="ends before version 2"),
        ):
            accounts.load("9")

    def test_an_aggregate_with_containers_round_trips(self, store):
        """Lists and dicts of an aggregate (postponed annotations) survive a snapshot."""
        ledgers = Repository(store, Ledger, snapshot_every=2)
        events = [MoneyDeposited(Decimal(amount)) for amount in ("1.10", "2.20", "3.30")]
        ledger = Ledger("l")
        for event in events:
            ledger.record(event)
        ledgers.save(ledger)
        assert store.load_snapshot("l").version == 3
        assert ledgers.load("l") == Ledger("l").replay(events)


class TestUnusableSnapshots:
    """Whatever is wrong with a stored snapshot, load logs it and replays; a save fixes it."""

    def test_a_new_snapshot_version_ignores_old_snapshots(
        self, accounts, store, monkeypatch, caplog
    ):
        """After snapshot_version changes, old snapshots are ignored with a warning, not fatal."""
        open_account(accounts, "1", 1, 2, 3)
        monkeypatch.setattr(Account, "snapshot_version", 2)  # a later release of the class
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            loaded = accounts.load("1")
        assert (loaded.balance, loaded.version) == (6, 4)
        assert "taken at snapshot_version 1, and Account is now at snapshot_version 2" in (
            caplog.text
        )

    def test_a_corrupt_snapshot_is_ignored_with_a_warning(self, accounts, store, replayed, caplog):
        """A snapshot row that is not JSON is ignored with a warning; load equals replay."""
        open_account(accounts, "1", 1, 2, 3)
        record = store.load_snapshot("account-1")
        store.save_snapshot(record._replace(state='{"id": "1", "bal'))
        with (
            caplog.at_level(logging.WARNING, logger=LOGGER),
            pytest.warns(SnapshotWarning, match="'account-1'.*not valid JSON"),
        ):
            loaded = accounts.load("1")
        assert loaded == replayed.load("1")
        assert "ignoring the snapshot at version 3" in caplog.text
        assert "not valid JSON" in caplog.text

    def test_a_snapshot_beyond_the_stream_is_ignored(self, accounts, store, replayed, caplog):
        """A snapshot newer than the stream (a restored store) is ignored with a warning."""
        open_account(accounts, "1", 1)
        store.save_snapshot(snapshot_of(Account("1", version=50))._replace(stream_id="account-1"))
        with (
            caplog.at_level(logging.WARNING, logger=LOGGER),
            pytest.warns(SnapshotWarning, match="ends before version 50"),
        ):
            loaded = accounts.load("1")
        assert (loaded, "ends before version 50" in caplog.text) == (replayed.load("1"), True)

    def test_a_snapshot_of_a_rewritten_stream_is_ignored(self, accounts, store, replayed, caplog):
        """A snapshot whose event is no longer in the stream is ignored with a warning."""
        open_account(accounts, "1", 1, 2, 3)
        tamper(store, "account-1", owner="stale")
        record = store.load_snapshot("account-1")
        store.save_snapshot(record._replace(event_id=uuid.uuid4()))
        with (
            caplog.at_level(logging.WARNING, logger=LOGGER),
            pytest.warns(SnapshotWarning, match="not the one it was taken after"),
        ):
            loaded = accounts.load("1")
        assert (loaded, "not the one it was taken after" in caplog.text) == (
            replayed.load("1"),
            True,
        )

    def test_a_snapshot_row_the_backend_cannot_read_is_ignored(
        self, accounts, store, replayed, caplog
    ):
        """A row so corrupt that the backend fails to read it is logged; load replays."""
        open_account(accounts, "1", 1, 2, 3)
        store.snapshot_read_failure = ValueError("badly formed hexadecimal UUID string")
        with (
            caplog.at_level(logging.WARNING, logger=LOGGER),
            pytest.warns(SnapshotWarning, match="cannot be read"),
        ):
            loaded = accounts.load("1")
        assert (loaded, "snapshot that cannot be read" in caplog.text) == (
            replayed.load("1"),
            True,
        )
        assert "hexadecimal UUID" in caplog.text

    def test_an_unusable_snapshot_is_replaced_at_the_next_save(self, accounts, store):
        """The next save replaces an ignored snapshot, even where the policy would not."""
        open_account(accounts, "1", 1, 2, 3)
        record = store.load_snapshot("account-1")
        store.save_snapshot(record._replace(state="corrupt"))
        with pytest.warns(SnapshotWarning):
            account = accounts.load("1")
        account.deposit(Decimal(4))  # version 5: not a multiple of 3
        accounts.save(account)
        replaced = store.load_snapshot("account-1")
        assert (replaced.version, restore(replaced, Account, "1", store.codec)) == (
            5,
            account,
        )

    def test_a_replaced_snapshot_is_not_replaced_again(self, accounts, store):
        """Once replaced, snapshots follow the policy again."""
        open_account(accounts, "1", 1, 2, 3)
        store.save_snapshot(store.load_snapshot("account-1")._replace(state="corrupt"))
        with pytest.warns(SnapshotWarning):
            account = accounts.load("1")
        account.deposit(Decimal(4))
        accounts.save(account)  # replaces, at version 5
        account.deposit(Decimal(5))
        accounts.save(account)  # version 6 crosses a multiple of 3
        account.deposit(Decimal(6))
        accounts.save(account)  # version 7 does not
        assert store.load_snapshot("account-1").version == 6


# -- bulk rebuilds ----------------------------------------------------------------------------


class TestRebuildSnapshots:
    @pytest.fixture(name="populated")
    def _populated(self, store, replayed):
        for account_id in ("1", "2", "3"):
            open_account(replayed, account_id, 5, 7, each_saved=False)
        store.append("order-1", [MoneyDeposited(Decimal(1))])
        return store

    def test_writes_a_snapshot_of_each_aggregate_with_the_prefix(self, accounts, populated):
        """Every stream with the prefix gets a snapshot at its head; other streams none."""
        accounts.rebuild_snapshots()
        versions = [populated.load_snapshot(f"account-{n}").version for n in "123"]
        assert (versions, populated.load_snapshot("order-1")) == ([3, 3, 3], None)

    def test_reports_progress_after_each_stream(self, accounts, populated):
        """The progress callback sees each stream in turn; the result is the last one."""
        seen = []
        final = accounts.rebuild_snapshots(progress=seen.append)
        assert [(p.done, p.written, p.stream_id) for p in seen] == [
            (1, 1, "account-1"),
            (2, 2, "account-2"),
            (3, 3, "account-3"),
        ]
        assert final == seen[-1]

    def test_progress_can_be_printed(self, accounts, populated, capsys):
        """progress=print prints one line per stream."""
        accounts.rebuild_snapshots(progress=print)
        lines = capsys.readouterr().out.splitlines()
        assert [line.split(" in ")[0] for line in lines] == [
            f"snapshots: {n} streams, {n} written, 0 failed" for n in (1, 2, 3)
        ]

    def test_rebuilt_snapshots_replace_stale_ones(self, accounts, populated, store, caplog):
        """After a rebuild, a stale snapshot is gone: loads use the new one without warning."""
        store.save_snapshot(snapshot_of(Account("1"), uuid.uuid4())._replace(version=3))
        accounts.rebuild_snapshots()
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            loaded = accounts.load("1")
        assert (loaded.balance, caplog.records) == (12, [])

    def test_a_broken_stream_is_counted_and_the_rest_rebuilt(self, accounts, populated, caplog):
        """A stream that cannot be replayed is logged and counted; the others get snapshots."""
        record = NewRecord(uuid.uuid4(), "bank.MoneyDeposited", 1, '{"amount": "x"}', "{}")
        populated.append_records([RecordWrite("account-2", (record,), ANY)])
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            final = accounts.rebuild_snapshots()
        assert (final.done, final.written, final.failed) == (3, 2, 1)
        assert "'account-2': could not rebuild its snapshot" in caplog.text
        assert populated.load_snapshot("account-2") is None

    def test_given_ids_are_rebuilt_and_missing_ones_counted(self, store, replayed, caplog):
        """With aggregate_ids, only those are rebuilt; an id without events counts as failed."""
        open_account(replayed, "1", 5)
        accounts = Repository(store, Account, snapshot_every=100)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            final = accounts.rebuild_snapshots(aggregate_ids=["account-1", "nobody"])
        assert (final.written, final.failed, "'nobody': no snapshot rebuilt" in caplog.text) == (
            1,
            1,
            True,
        )

    @pytest.mark.parametrize("failing", ["failure", "read_failure"])
    def test_a_store_failure_stops_the_rebuild(self, accounts, populated, failing):
        """A StoreError, reading or writing, is not one broken aggregate: it stops the rebuild."""
        setattr(populated, failing, StoreError("database is gone"))
        with pytest.raises(StoreError, match="database is gone"):
            accounts.rebuild_snapshots()

    def test_without_a_prefix_the_ids_must_be_given(self, store):
        """Without a stream prefix, listing streams would mix aggregate types: refused."""
        with pytest.raises(ValueError, match="pass aggregate_ids"):
            Repository(store, Account, snapshot_every=10).rebuild_snapshots()

    def test_a_repository_without_snapshots_refuses(self, replayed):
        """Rebuilding snapshots a repository would never read is refused."""
        with pytest.raises(ValueError, match="takes no snapshots"):
            replayed.rebuild_snapshots()


# -- the property: snapshot + tail == replay --------------------------------------------------

batches = st.lists(st.lists(st.integers(-50, 100), min_size=1, max_size=6), min_size=1, max_size=12)


@given(batches=batches, every=st.integers(1, 12))
def test_loading_with_snapshots_equals_a_full_replay(batches, every):
    """For any history and interval, snapshot loads equal replays at the head and every version."""
    store = InMemoryEventStore(registry=registry)
    snapshots = Repository(store, Account, snapshot_every=every)
    replays = Repository(store, Account)
    account = Account("1")
    account.open("ada", overdraft_limit=Decimal(10**6))
    snapshots.save(account)
    for batch in batches:
        account = snapshots.load("1")
        for amount in batch:
            if amount > 0:
                account.deposit(Decimal(amount))
            else:
                account.withdraw(Decimal(1 - amount))
        snapshots.save(account)
    head = store.stream_version("1")
    assert (store.load_snapshot("1") is not None) == (head >= every)
    assert snapshots.load("1") == replays.load("1") == account
    for version in range(1, head + 1):
        assert snapshots.load("1", at_version=version) == replays.load("1", at_version=version)
