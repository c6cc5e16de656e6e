"""
The bank, as an asyncio program.

Three tasks deposit into shared accounts at once, each retrying when another task got
there first (optimistic concurrency, through `AsyncRepository`). A projection follows
the log live in the background, keeping a balances table in the same SQLite file,
and every task reads its own write from it with `AsyncProjectionRunner.wait_for`.
At the end the read model is checked against the accounts themselves.

The domain code (events, the aggregate, the projection's handler) is the same plain
synchronous Python as in a sync program: only the store, the repository and the
runner are their async forms.

Run it with ``python examples/async_bank.py [PATH]``: the events go to PATH, or to a
temporary file; each run starts afresh.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from eventkit import (
    Aggregate,
    AsyncProjectionRunner,
    AsyncRepository,
    AsyncSQLiteEventStore,
    ConcurrencyError,
    Projection,
    event,
)

if TYPE_CHECKING:
    import sqlite3

    from eventkit import RecordedEvent

ACCOUNTS = ("ada", "grace", "linus")
DEPOSITS_PER_TASK = 20


@event("async_bank.AccountOpened")
@attrs.frozen
class AccountOpened:
    owner: str


@event("async_bank.MoneyDeposited")
@attrs.frozen
class MoneyDeposited:
    amount: Decimal
    by: str


@attrs.define
class Account(Aggregate):
    owner: str = ""
    balance: Decimal = Decimal(0)

    def open(self, owner: str) -> None:
        self.record(AccountOpened(owner))

    def deposit(self, amount: Decimal, by: str) -> None:
        if amount <= 0:
            raise ValueError("a deposit must be positive")
        self.record(MoneyDeposited(amount, by))

    def apply(self, event: object) -> None:
        match event:
            case AccountOpened(owner=owner):
                self.owner = owner
            case MoneyDeposited(amount=amount):
                self.balance += amount


class Balances(Projection):
    """Each account's balance, in a table beside the events: updated exactly once."""

    name = "balances"
    event_types = (AccountOpened, MoneyDeposited)
    tables = ("balances",)

    def setup(self, tx: sqlite3.Connection) -> None:
        tx.execute(
            self.sql(
                "CREATE TABLE IF NOT EXISTS {balances} (account TEXT PRIMARY KEY, cents INTEGER)"
            )
        )

    def handle(self, recorded: RecordedEvent[object], tx: sqlite3.Connection) -> None:
        account = recorded.stream_id.removeprefix("account-")
        match recorded.event:
            case AccountOpened():
                tx.execute(self.sql("INSERT INTO {balances} VALUES (?, 0)"), (account,))
            case MoneyDeposited(amount=amount):
                cents = int(amount * 100)
                tx.execute(
                    self.sql("UPDATE {balances} SET cents = cents + ? WHERE account = ?"),
                    (cents, account),
                )


async def balance_in_read_model(store: AsyncSQLiteEventStore, account: str) -> Decimal:
    """Read one balance from the read model, in the store's thread (off the loop)."""

    def query(conn: sqlite3.Connection) -> Decimal:
        row = conn.execute("SELECT cents FROM balances WHERE account = ?", (account,)).fetchone()
        return (Decimal(row[0]) / 100).quantize(Decimal("0.01"))

    return await store.run_in_transaction(query)


async def teller(
    name: str,
    accounts: AsyncRepository[Account],
    runner: AsyncProjectionRunner,
    store: AsyncSQLiteEventStore,
) -> int:
    """Deposit into every account in turn; return how many conflicts were retried."""
    conflicts = 0
    for n in range(DEPOSITS_PER_TASK):
        account_id = ACCOUNTS[n % len(ACCOUNTS)]
        while True:
            account = await accounts.load(account_id)
            account.deposit(Decimal("1.25"), by=name)
            try:
                result = await accounts.save(account)
            except ConcurrencyError:
                conflicts += 1  # another teller saved first: reload and try again
                continue
            break
        # Read your own write: the projection has applied this deposit once this returns.
        assert result is not None
        await runner.wait_for(result.positions[-1])
        seen = await balance_in_read_model(store, account_id)
        assert seen >= Decimal("1.25"), seen
    return conflicts


async def main(path: Path) -> None:
    store = AsyncSQLiteEventStore(path)
    accounts = AsyncRepository(store, Account, stream_prefix="account-")
    for owner in ACCOUNTS:
        account = Account(owner)
        account.open(owner)
        await accounts.save(account)

    async with AsyncProjectionRunner(store, Balances(), poll_interval=0.05) as runner:
        conflicts = await asyncio.gather(
            *(teller(name, accounts, runner, store) for name in ("t1", "t2", "t3"))
        )
        head = await store.head_position()
        await runner.wait_for(head)
        print(f"{3 * DEPOSITS_PER_TASK} deposits by 3 tasks, {sum(conflicts)} conflicts retried")
        for owner in ACCOUNTS:
            account = await accounts.load(owner)
            in_read_model = await balance_in_read_model(store, owner)
            print(
                f"{owner}: {account.balance} after {account.version - 1} deposits; "
                f"read model says {in_read_model}"
            )
            assert in_read_model == account.balance
        status = (await runner.status())["balances"]
        print(f"read model at position {status.position} of {status.head}, lag {status.lag_events}")
    await store.close()
    print("read model equals the accounts: yes")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        given = Path(sys.argv[1])
        for suffix in ("", "-wal", "-shm"):  # start afresh
            Path(f"{given}{suffix}").unlink(missing_ok=True)
        asyncio.run(main(given))
    else:
        with tempfile.TemporaryDirectory() as folder:
            asyncio.run(main(Path(folder) / "async_bank.db"))
