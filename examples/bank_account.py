"""
A bank account, event-sourced.

Opens an account, deposits and withdraws under an overdraft limit, shows a refused
withdrawal, a concurrent change caught by optimistic concurrency, and the account as it
was in the past. The events are kept in an SQLite file: ``bank.db`` in the current
folder, or the path given as the first argument. Each run starts from a new file.

Run it with ``make demo`` or ``python examples/bank_account.py [PATH]``.
"""

from __future__ import annotations

import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import attrs

from eventkit import Aggregate, ConcurrencyError, Repository, SQLiteEventStore, event


class OverdraftError(ValueError):
    """A withdrawal would take the balance below the overdraft limit."""


@event("AccountOpened")
@attrs.frozen
class AccountOpened:
    owner: str
    overdraft_limit: Decimal


@event("MoneyDeposited")
@attrs.frozen
class MoneyDeposited:
    amount: Decimal
    memo: str = ""


@event("MoneyWithdrawn")
@attrs.frozen
class MoneyWithdrawn:
    amount: Decimal
    memo: str = ""


@attrs.define
class Account(Aggregate):
    owner: str = ""
    balance: Decimal = Decimal(0)
    overdraft_limit: Decimal = Decimal(0)

    def open(self, owner: str, overdraft_limit: Decimal) -> None:
        if self.version:
            raise ValueError(f"account {self.id} is already open")
        self.record(AccountOpened(owner, overdraft_limit))

    def deposit(self, amount: Decimal, memo: str = "") -> None:
        if amount <= 0:
            raise ValueError("a deposit must be positive")
        self.record(MoneyDeposited(amount, memo))

    def withdraw(self, amount: Decimal, memo: str = "") -> None:
        if amount <= 0:
            raise ValueError("a withdrawal must be positive")
        if self.balance - amount < -self.overdraft_limit:
            raise OverdraftError(
                f"cannot withdraw {amount}: balance {self.balance}, "
                f"overdraft limit {self.overdraft_limit}"
            )
        self.record(MoneyWithdrawn(amount, memo))

    def apply(self, event: object) -> None:
        match event:
            case AccountOpened(owner=owner, overdraft_limit=limit):
                self.owner, self.overdraft_limit = owner, limit
            case MoneyDeposited(amount=amount):
                self.balance += amount
            case MoneyWithdrawn(amount=amount):
                self.balance -= amount


def remove_previous_run(path: Path) -> None:
    """Delete the file a previous run left at *path*, and only such a file."""
    if not path.exists():
        return
    try:
        conn = sqlite3.connect(path)
        try:
            tables = [
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        tables = []
    if not tables or not all(name.startswith("eventkit_") for name in tables):
        raise SystemExit(f"{path} is not a file this example wrote; give another path")
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "bank.db")
    remove_previous_run(path)
    with SQLiteEventStore(path) as store:
        run(store)
    print(f"the events are in {path}")
    return 0


def run(store: SQLiteEventStore) -> None:
    accounts = Repository(store, Account, stream_prefix="account-")

    account = Account("ada")
    account.open("Ada Lovelace", overdraft_limit=Decimal(100))
    account.deposit(Decimal("250.00"), "salary")
    account.withdraw(Decimal("80.50"), "groceries")
    accounts.save(account, metadata={"correlation_id": "demo-1"})
    print(f"opened {account.id}: balance {account.balance}, version {account.version}")

    account = accounts.load("ada")
    try:
        account.withdraw(Decimal(1000))
    except OverdraftError as error:
        print(f"refused: {error}")

    # Two clerks load the same account; the second save is caught, not lost.
    clerk_a, clerk_b = accounts.load("ada"), accounts.load("ada")
    clerk_a.deposit(Decimal(10), "cash")
    clerk_b.withdraw(Decimal(20), "atm")
    accounts.save(clerk_a)
    try:
        accounts.save(clerk_b)
    except ConcurrencyError as error:
        print(f"conflict: {error}")
        clerk_b = accounts.load("ada")
        clerk_b.withdraw(Decimal(20), "atm")
        accounts.save(clerk_b)

    now = accounts.load("ada")
    then = accounts.load("ada", at_version=2)
    print(f"balance now {now.balance} (version {now.version}); after the salary {then.balance}")
    for recorded in store.read_stream("account-ada"):
        print(f"  v{recorded.version} @{recorded.position} {recorded.event}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
