"""
A bank account, event-sourced.

Opens an account, deposits and withdraws under an overdraft limit, shows a refused
withdrawal, a concurrent change caught by optimistic concurrency, and the account as it
was in the past. Then a monthly-interest read model, built by a projection, turns out
to have a bug; the bug is fixed and the read model rebuilt from history. The events
and the read model are kept in an SQLite file: ``bank.db`` in the current folder, or
the path given as the first argument. Each run starts from a new file.

Run it with ``make demo`` or ``python examples/bank_account.py [PATH]``.
"""

from __future__ import annotations

import sqlite3
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from eventkit import (
    Aggregate,
    ConcurrencyError,
    Projection,
    ProjectionRunner,
    Repository,
    SQLiteEventStore,
    event,
)

if TYPE_CHECKING:
    from eventkit import RecordedEvent

CENT = Decimal("0.01")
# The read-model tables the interest projection keeps in the same file as the events.
READ_MODEL_TABLES = ("interest_balances", "monthly_interest")


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


@event("MonthClosed")
@attrs.frozen
class MonthClosed:
    """The books of a month are closed: interest is due on every balance."""

    month: str
    annual_rate: Decimal


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


class MonthlyInterest(Projection):
    """Each account's balance, and the interest due on it when a month closes."""

    name = "monthly_interest"
    version = 1
    event_types = (MoneyDeposited, MoneyWithdrawn, MonthClosed)
    tables = READ_MODEL_TABLES

    def setup(self, tx: sqlite3.Connection) -> None:
        tx.execute(
            self.sql(
                "CREATE TABLE IF NOT EXISTS {interest_balances} "
                "(account TEXT PRIMARY KEY, balance TEXT NOT NULL)"
            )
        )
        tx.execute(
            self.sql(
                "CREATE TABLE IF NOT EXISTS {monthly_interest} (account TEXT, month TEXT, "
                "interest TEXT NOT NULL, PRIMARY KEY (account, month))"
            )
        )

    def handle(self, recorded: RecordedEvent[object], tx: sqlite3.Connection) -> None:
        # tx is the transaction that also moves this projection's checkpoint:
        # the read model gets every event exactly once.
        match recorded.event:
            case MoneyDeposited(amount=amount):
                self.change(tx, recorded.stream_id, amount)
            case MoneyWithdrawn(amount=amount):
                self.change(tx, recorded.stream_id, amount)  # the bug: a withdrawal adds
            case MonthClosed(month=month, annual_rate=rate):
                balances = tx.execute(self.sql("SELECT account, balance FROM {interest_balances}"))
                for account, balance in balances.fetchall():
                    interest = (Decimal(balance) * rate / 12).quantize(CENT)
                    tx.execute(
                        self.sql("INSERT INTO {monthly_interest} VALUES (?, ?, ?)"),
                        (account, month, str(interest)),
                    )

    def change(self, tx: sqlite3.Connection, account: str, amount: Decimal) -> None:
        row = tx.execute(
            self.sql("SELECT balance FROM {interest_balances} WHERE account = ?"), (account,)
        ).fetchone()
        balance = Decimal(row[0]) if row else Decimal(0)
        tx.execute(
            self.sql("INSERT OR REPLACE INTO {interest_balances} VALUES (?, ?)"),
            (account, str(balance + amount)),
        )


class CorrectedMonthlyInterest(MonthlyInterest):
    """The same read model with withdrawals subtracted."""

    version = 2  # the logic changed: a runner rebuilds the read model from history

    def handle(self, recorded: RecordedEvent[object], tx: sqlite3.Connection) -> None:
        match recorded.event:
            case MoneyWithdrawn(amount=amount):
                self.change(tx, recorded.stream_id, -amount)
            case _:
                super().handle(recorded, tx)


def print_interest(store: SQLiteEventStore, version: int) -> None:
    # A read transaction on the store's file: both tables as of one moment, without
    # the write lock, so runners and appends go on meanwhile.
    with store.reader() as conn:
        rows = conn.execute(
            "SELECT i.account, i.month, i.interest, b.balance FROM monthly_interest i "
            "JOIN interest_balances b USING (account) ORDER BY i.account, i.month"
        ).fetchall()
    for account, month, interest, balance in rows:
        print(f"interest for {month} (version {version}): {account} {interest} on {balance}")


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
    ours = [
        name.startswith("eventkit_") or name.removesuffix("__rebuild") in READ_MODEL_TABLES
        for name in tables
    ]
    if not tables or not all(ours):
        raise SystemExit(f"{path} is not a file this example wrote; give another path")
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    # Projection lock files live in .eventkit-locks beside the file, which ignores
    # itself in git; a lock file may stay, and is taken again by the next run.


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "bank.db")
    remove_previous_run(path)
    with SQLiteEventStore(path) as store:
        run(store)
        interest(store)
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


def interest(store: SQLiteEventStore) -> None:
    store.append("books", [MonthClosed("2026-01", annual_rate=Decimal("0.03"))])
    ProjectionRunner(store, MonthlyInterest()).run_until_caught_up()
    print_interest(store, version=1)

    # Withdrawals were added instead of subtracted. Fix the handler, bump the version:
    # the runner sees a read model of version 1 and rebuilds it from the first event,
    # beside the old one, which keeps serving until the new one is swapped in.
    ProjectionRunner(store, CorrectedMonthlyInterest()).run_until_caught_up()
    print_interest(store, version=2)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
