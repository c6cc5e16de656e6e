"""Aggregates: recording, applying, replaying; properties over random command sequences."""

import contextlib
import typing
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventkit import Aggregate
from eventkit.testing import given as given_history
from tests.bank import Account, AccountOpened, MoneyDeposited, MoneyWithdrawn, OverdraftError

commands = st.lists(
    st.tuples(
        st.sampled_from(["deposit", "withdraw"]),
        st.decimals(min_value=-5, max_value=100, places=2),
    ),
    max_size=30,
)


def run(account: Account, script) -> Account:
    for name, amount in script:
        # A refused command records nothing; the properties below rely on that.
        with contextlib.suppress(ValueError):
            getattr(account, name)(amount)
    return account


class TestAggregate:
    def test_record_applies_and_queues(self):
        """record() changes state at once and keeps the event pending."""
        account = Account("a")
        account.open("ada")
        account.deposit(Decimal(10))
        assert (account.balance, account.version, account.saved_version) == (10, 2, 0)
        assert account.pending_events == (AccountOpened("ada"), MoneyDeposited(Decimal(10)))

    def test_a_refused_command_records_nothing(self):
        """A command whose invariant fails raises and leaves no event behind."""
        account = Account("a").replay([AccountOpened("ada")])
        with pytest.raises(OverdraftError):
            account.withdraw(Decimal(1))
        assert (account.pending_events, account.version) == ((), 1)

    def test_mark_saved_clears_pending_but_keeps_version(self):
        """After saving, nothing is pending and the saved version catches up."""
        account = Account("a")
        account.open("ada")
        account.mark_saved()
        assert (account.pending_events, account.version, account.saved_version) == ((), 1, 1)

    def test_replay_refuses_an_aggregate_with_pending_events(self):
        """Replaying history into an aggregate with unsaved events would misnumber them."""
        account = Account("a")
        account.open("ada")
        with pytest.raises(ValueError, match="1 unsaved events"):
            account.replay([MoneyDeposited(Decimal(1))])

    def test_equality_ignores_pending_events(self):
        """Two aggregates with the same state are equal whether or not events are pending."""
        live = Account("a")
        live.open("ada")
        assert live == Account("a").replay([AccountOpened("ada")])

    def test_type_hints_of_a_subclass_resolve(self):
        """The base class's annotations resolve although it presents itself as eventkit's."""
        hints = typing.get_type_hints(Account)
        assert (hints["id"], hints["snapshot_version"], hints["balance"]) == (
            str,
            typing.ClassVar[int],
            Decimal,
        )

    def test_apply_is_abstract(self):
        """An Aggregate subclass without apply() cannot be instantiated."""

        @attrs.define
        class Incomplete(Aggregate):
            pass

        with pytest.raises(TypeError, match="apply"):
            Incomplete("x")  # type: ignore[abstract]

    @given(commands)
    def test_replaying_the_recorded_history_rebuilds_the_live_aggregate(self, script):
        """For any command sequence, replaying what was recorded equals the live aggregate."""
        live = run(Account("a").replay([AccountOpened("ada", Decimal(20))]), script)
        history = [AccountOpened("ada", Decimal(20)), *live.pending_events]
        assert Account("a").replay(history) == live
        assert live.balance >= -20

    @given(commands, st.data())
    def test_a_prefix_of_the_history_gives_the_earlier_state(self, script, data):
        """Replaying the first k events equals the live aggregate after k events."""
        live = Account("a")
        live.open("ada", Decimal(20))
        states = [attrs.evolve(live)]
        for name, amount in script:
            before = live.version
            try:
                getattr(live, name)(amount)
            except ValueError:
                continue
            assert live.version == before + 1
            states.append(attrs.evolve(live))
        k = data.draw(st.integers(1, live.version))
        prefix = Account("a").replay(live.pending_events[:k])
        assert prefix == states[k - 1]


class TestAggregateScenario:
    def test_then_checks_the_recorded_events(self):
        """then() passes when the command recorded exactly the expected events."""
        account = (
            given_history(Account("a"), AccountOpened("ada"), MoneyDeposited(Decimal(10)))
            .when(lambda a: a.withdraw(Decimal(4)))
            .then(MoneyWithdrawn(Decimal(4)))
        )
        assert account.balance == 6

    def test_then_fails_on_different_events(self):
        """then() fails, showing both lists, when the events differ."""
        scenario = given_history(Account("a"), AccountOpened("ada")).when(
            lambda a: a.deposit(Decimal(1))
        )
        with pytest.raises(AssertionError, match="expected"):
            scenario.then(MoneyDeposited(Decimal(2)))

    def test_then_fails_when_the_command_raised(self):
        """then() reports a command that raised instead of recording."""
        scenario = given_history(Account("a")).when(lambda a: a.deposit(Decimal(1)))
        with pytest.raises(AssertionError, match="not open"):
            scenario.then(MoneyDeposited(Decimal(1)))

    def test_then_raises_checks_the_refusal(self):
        """then_raises() passes when the command raised the expected error."""
        error = (
            given_history(Account("a"), AccountOpened("ada"))
            .when(lambda a: a.withdraw(Decimal(1)))
            .then_raises(OverdraftError, match="overdraft")
        )
        assert isinstance(error, OverdraftError)

    def test_then_raises_fails_when_nothing_was_raised(self):
        """then_raises() fails when the command succeeded."""
        scenario = given_history(Account("a"), AccountOpened("ada")).when(
            lambda a: a.deposit(Decimal(1))
        )
        with pytest.raises(AssertionError, match="expected OverdraftError"):
            scenario.then_raises(OverdraftError)
