"""The repository: load, time travel, save with optimistic concurrency, exists."""

from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventkit import (
    Aggregate,
    ConcurrencyError,
    InMemoryEventStore,
    Repository,
    StoreError,
    StreamNotFound,
    VersionNotFoundError,
)
from tests.bank import Account, AccountOpened, MoneyDeposited, registry


class LosesFirstResponse(InMemoryEventStore):
    """Commits every append, but reports the first one as failed, like a dropped link."""

    first_ids: tuple = ()

    def _append(self, writes):
        results = super()._append(writes)
        if not self.first_ids:
            self.first_ids = tuple(r.event_id for w in writes for r in w.records)
            raise StoreError("connection lost after commit")
        return results


@pytest.fixture(name="store")
def _store():
    return InMemoryEventStore(registry=registry)


@pytest.fixture(name="accounts")
def _accounts(store):
    return Repository(store, Account, stream_prefix="account-")


def opened(accounts, account_id="1", *deposits):
    account = Account(account_id)
    account.open("ada")
    for amount in deposits:
        account.deposit(Decimal(amount))
    accounts.save(account)
    return account


class TestRepository:
    def test_save_then_load_returns_an_equal_aggregate(self, accounts):
        """A saved aggregate loads back equal, with no pending events."""
        saved = opened(accounts, "1", 5, 7)
        loaded = accounts.load("1")
        assert (loaded, loaded.version, loaded.pending_events) == (saved, 3, ())

    def test_streams_are_named_with_the_prefix(self, accounts, store):
        """The aggregate id is prefixed to form its stream id."""
        opened(accounts, "42")
        assert (accounts.stream_id("42"), store.stream_version("account-42")) == ("account-42", 1)

    def test_save_clears_pending_and_returns_what_was_appended(self, accounts):
        """save() appends the pending events, then clears them."""
        account = Account("1")
        account.open("ada")
        result = accounts.save(account)
        assert (result.version, len(result.positions), account.pending_events) == (1, 1, ())

    def test_saving_an_unchanged_aggregate_appends_nothing(self, accounts, store):
        """save() of an aggregate with no pending events writes nothing, returns None."""
        opened(accounts)
        head = store.head_position()
        assert (accounts.save(accounts.load("1")), store.head_position()) == (None, head)

    def test_metadata_is_stored_with_every_event(self, accounts, store):
        """Metadata given to save() is attached to each appended event."""
        account = Account("1")
        account.open("ada")
        account.deposit(Decimal(1))
        accounts.save(account, metadata={"correlation_id": "req-9"})
        assert [dict(r.metadata) for r in store.read_stream("account-1")] == [
            {"correlation_id": "req-9"}
        ] * 2

    def test_a_save_retried_after_a_lost_response_stores_nothing_twice(self):
        """Saving again after an append that committed but reported an error is a retry."""
        store = LosesFirstResponse(registry=registry)
        accounts = Repository(store, Account)
        account = Account("1")
        account.open("ada")
        account.deposit(Decimal(5))
        with pytest.raises(StoreError):
            accounts.save(account)
        result = accounts.save(account)
        assert (result.version, store.stream_version("1"), account.pending_events) == (2, 2, ())
        assert [r.event_id for r in store.read_stream("1")] == list(store.first_ids)

    def test_pending_events_keep_their_ids_until_saved(self):
        """Each recorded event gets an id once; it is the id the event is stored with."""
        store = InMemoryEventStore(registry=registry)
        account = Account("1")
        account.open("ada")
        ids = account.pending_event_ids
        assert (len(ids), account.pending_event_ids) == (1, ids)
        Repository(store, Account).save(account)
        assert (store.read_stream("1")[0].event_id, account.pending_event_ids) == (ids[0], ())

    def test_a_concurrent_change_raises_and_keeps_pending_events(self, accounts):
        """Saving a stale copy raises ConcurrencyError; its pending events survive."""
        opened(accounts)
        first, second = accounts.load("1"), accounts.load("1")
        first.deposit(Decimal(1))
        second.deposit(Decimal(2))
        accounts.save(first)
        with pytest.raises(ConcurrencyError) as info:
            accounts.save(second)
        assert (info.value.expected_version, info.value.actual_version) == (1, 2)
        assert second.pending_events == (MoneyDeposited(Decimal(2)),)

    def test_two_new_aggregates_with_one_id_conflict(self, accounts):
        """Creating an aggregate whose stream already exists is a conflict."""
        opened(accounts)
        duplicate = Account("1")
        duplicate.open("eve")
        with pytest.raises(ConcurrencyError):
            accounts.save(duplicate)

    def test_loading_an_unknown_id_raises_stream_not_found(self, accounts):
        """load() of an id with no events raises StreamNotFound naming the stream."""
        with pytest.raises(StreamNotFound, match="'account-nope'") as info:
            accounts.load("nope")
        assert info.value.stream_id == "account-nope"

    def test_load_at_version_travels_in_time(self, accounts):
        """load(at_version=n) returns the aggregate as it was after n events."""
        opened(accounts, "1", 5, 7)
        past = accounts.load("1", at_version=2)
        assert (past.balance, past.version) == (5, 2)

    def test_load_beyond_the_stream_raises_version_not_found(self, accounts):
        """Asking for a version the stream never reached raises, naming both versions."""
        opened(accounts, "1", 5)
        with pytest.raises(VersionNotFoundError, match="no version 9 \\(its version is 2\\)"):
            accounts.load("1", at_version=9)

    def test_load_at_version_zero_is_refused(self, accounts):
        """at_version must be >= 1."""
        opened(accounts)
        with pytest.raises(ValueError, match="at_version"):
            accounts.load("1", at_version=0)

    def test_exists(self, accounts):
        """exists() is true once an aggregate has events."""
        opened(accounts)
        assert (accounts.exists("1"), accounts.exists("2")) == (True, False)

    def test_refuses_a_class_that_is_not_an_aggregate(self, store):
        """A repository needs an Aggregate subclass."""
        with pytest.raises(TypeError, match="Aggregate subclass"):
            Repository(store, int)  # type: ignore[type-var]

    def test_refuses_an_aggregate_without_attrs(self, store):
        """An Aggregate subclass that forgot @attrs.define is refused."""

        class Bare(Aggregate):
            def apply(self, event):
                pass

        with pytest.raises(TypeError, match=r"@attrs\.define"):
            Repository(store, Bare)

    def test_refuses_fields_without_defaults(self, store):
        """An aggregate whose state fields lack defaults cannot be built empty: refused."""

        @attrs.define
        class Strict(Aggregate):
            owner: str

            def apply(self, event):
                pass

        with pytest.raises(TypeError, match=r"Strict.owner needs a default"):
            Repository(store, Strict)

    def test_repr_names_class_and_store(self, accounts):
        """The repr names the aggregate class."""
        assert repr(accounts).startswith("<Repository of Account in <InMemoryEventStore")


amounts = st.lists(st.integers(1, 1000), min_size=1, max_size=25)


@given(amounts, st.data())
def test_load_at_version_equals_replaying_the_first_k_events(deposits, data):
    """For any history, load(at_version=k) equals replaying the first k stored events."""
    accounts = Repository(InMemoryEventStore(registry=registry), Account)
    opened(accounts, "1", *deposits)
    history = [AccountOpened("ada")] + [MoneyDeposited(Decimal(a)) for a in deposits]
    k = data.draw(st.integers(1, len(history)))
    assert accounts.load("1", at_version=k) == Account("1").replay(history[:k])
