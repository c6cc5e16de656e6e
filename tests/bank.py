"""A small bank domain shared by the aggregate, repository and projection tests."""

from decimal import Decimal

import attrs

from eventkit import Aggregate, EventRegistry, event

registry = EventRegistry()


class OverdraftError(ValueError):
    """A withdrawal would take the balance below the overdraft limit."""


@event("bank.AccountOpened", registry=registry)
@attrs.frozen
class AccountOpened:
    owner: str
    overdraft_limit: Decimal = Decimal(0)


@event("bank.MoneyDeposited", registry=registry)
@attrs.frozen
class MoneyDeposited:
    amount: Decimal


@event("bank.MoneyWithdrawn", registry=registry)
@attrs.frozen
class MoneyWithdrawn:
    amount: Decimal


@attrs.define
class Account(Aggregate):
    owner: str = ""
    balance: Decimal = Decimal(0)
    overdraft_limit: Decimal = Decimal(0)
    is_open: bool = False

    def open(self, owner: str, overdraft_limit: Decimal = Decimal(0)) -> None:
        if self.is_open:
            raise ValueError(f"account {self.id} is already open")
        self.record(AccountOpened(owner, overdraft_limit))

    def deposit(self, amount: Decimal) -> None:
        self._require_open()
        if amount <= 0:
            raise ValueError("deposit must be positive")
        self.record(MoneyDeposited(amount))

    def withdraw(self, amount: Decimal) -> None:
        self._require_open()
        if amount <= 0:
            raise ValueError("withdrawal must be positive")
        if self.balance - amount < -self.overdraft_limit:
            raise OverdraftError(f"account {self.id}: {amount} exceeds the overdraft limit")
        self.record(MoneyWithdrawn(amount))

    def _require_open(self) -> None:
        if not self.is_open:
            raise ValueError(f"account {self.id} is not open")

    def apply(self, event: object) -> None:
        match event:
            case AccountOpened(owner=owner, overdraft_limit=limit):
                self.owner, self.overdraft_limit, self.is_open = owner, limit, True
            case MoneyDeposited(amount=amount):
                self.balance += amount
            case MoneyWithdrawn(amount=amount):
                self.balance -= amount
