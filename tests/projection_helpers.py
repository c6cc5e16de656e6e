"""Projections and helpers shared by the projection tests."""

from decimal import Decimal

from eventkit import Projection
from tests.bank import AccountOpened, MoneyDeposited, MoneyWithdrawn

# Bounded waits for tests with threads: generous, because CI machines are shared.
WAIT = 10.0


class Crash(BaseException):
    """Injected to interrupt a runner as if its process died mid-batch."""


def fold(events):
    """The read model as a pure fold: balance per stream of the money events."""
    balances = {}
    for stream_id, event in events:
        match event:
            case MoneyDeposited(amount=amount):
                balances[stream_id] = balances.get(stream_id, Decimal(0)) + amount
            case MoneyWithdrawn(amount=amount):
                balances[stream_id] = balances.get(stream_id, Decimal(0)) - amount
    return balances


class Ledger(Projection):
    """
    Balances per stream kept in memory: at least once, so it skips positions it has seen.

    *fail* maps a position to how many times its handling fails (-1: always) before it
    succeeds; *crash_after* injects a `Crash` after that many handled events.
    """

    name = "ledger"
    event_types = (MoneyDeposited, MoneyWithdrawn)

    def __init__(self, *, fail=None, crash_after=None, block=None):
        self.balances = {}
        self.seen = set()
        self.calls = []
        self.fail = dict(fail or {})
        self.crash_after = crash_after
        self.block = block
        self.setups = 0
        self.teardowns = 0

    def setup(self, tx):
        self.setups += 1

    def teardown(self, tx):
        self.teardowns += 1
        self.balances, self.seen = {}, set()

    def staged(self):
        return type(self)()

    def adopt(self, staged):
        self.balances, self.seen = staged.balances, staged.seen

    def handle(self, recorded, tx):
        self.calls.append(recorded.position)
        if self.block is not None:
            self.block(recorded)
        if self.crash_after is not None and len(self.calls) > self.crash_after:
            raise Crash
        left = self.fail.get(recorded.position, 0)
        if left:
            self.fail[recorded.position] = left - 1 if left > 0 else left
            raise ValueError(f"cannot handle position {recorded.position}")
        if recorded.position in self.seen:
            return
        self.seen.add(recorded.position)
        amount = recorded.event.amount
        if isinstance(recorded.event, MoneyWithdrawn):
            amount = -amount
        self.balances[recorded.stream_id] = self.balances.get(recorded.stream_id, 0) + amount


def deposit(store, stream_id, *amounts):
    """Append deposits to a stream; return the last position written."""
    return store.append(stream_id, [MoneyDeposited(Decimal(a)) for a in amounts]).positions[-1]


def open_account(store, stream_id):
    """Append an event the ledger does not want; return its position."""
    return store.append(stream_id, [AccountOpened("someone")]).positions[-1]


async def deposit_async(store, stream_id, *amounts):
    """`deposit` for an async store."""
    result = await store.append(stream_id, [MoneyDeposited(Decimal(a)) for a in amounts])
    return result.positions[-1]


async def open_account_async(store, stream_id):
    """`open_account` for an async store."""
    return (await store.append(stream_id, [AccountOpened("someone")])).positions[-1]


class SQLLedger(Projection):
    """
    Balances per stream in SQL tables written through *tx*: exactly once, no deduplication.

    ``ledger_applied`` counts how often each position was applied, so a test can prove
    that none was applied twice. A failure injected by *fail* happens after the
    handler's writes, so a test can prove they were rolled back.
    """

    name = "sql_ledger"
    event_types = (MoneyDeposited, MoneyWithdrawn)
    tables = ("ledger_balances", "ledger_applied")

    def __init__(self, *, fail=None, crash_after=None, block=None, sign=1):
        self.calls = []
        self.fail = dict(fail or {})
        self.crash_after = crash_after
        self.block = block
        self.sign = sign  # -1 plays a bug: withdrawals added instead of subtracted

    def setup(self, tx):
        balances, applied = self.table("ledger_balances"), self.table("ledger_applied")
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {balances} (stream_id TEXT PRIMARY KEY, amount INTEGER)"
        )
        tx.execute(f"CREATE INDEX IF NOT EXISTS {balances}_by_amount ON {balances} (amount)")
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {applied} (position INTEGER PRIMARY KEY, times INTEGER)"
        )

    def handle(self, recorded, tx):
        self.calls.append(recorded.position)
        if self.block is not None:
            self.block(recorded)
        if self.crash_after is not None and len(self.calls) > self.crash_after:
            raise Crash
        match recorded.event:
            case MoneyDeposited(amount=amount):
                change = int(amount)
            case MoneyWithdrawn(amount=amount):
                change = -int(amount) * self.sign
        balances, applied = self.table("ledger_balances"), self.table("ledger_applied")
        tx.execute(
            f"INSERT INTO {balances} (stream_id, amount) VALUES (?, ?) "
            "ON CONFLICT (stream_id) DO UPDATE SET amount = amount + excluded.amount",
            (recorded.stream_id, change),
        )
        tx.execute(
            f"INSERT INTO {applied} (position, times) VALUES (?, 1) "
            "ON CONFLICT (position) DO UPDATE SET times = times + 1",
            (recorded.position,),
        )
        left = self.fail.get(recorded.position, 0)
        if left:
            self.fail[recorded.position] = left - 1 if left > 0 else left
            raise ValueError(f"cannot handle position {recorded.position}")


def sql_read_model(conn):
    """Return the SQL ledger's balances and how often each position was applied."""
    balances = dict(conn.execute("SELECT stream_id, amount FROM ledger_balances"))
    applied = dict(conn.execute("SELECT position, times FROM ledger_applied"))
    return balances, applied


def money_positions(store):
    """Return the positions of the events the ledgers want."""
    return [r.position for r in store.read_all(event_types=[MoneyDeposited, MoneyWithdrawn])]


def int_fold(store):
    """The fold of the store's events, with integer balances as the SQL ledger keeps them."""
    return {k: int(v) for k, v in fold((r.stream_id, r.event) for r in store.read_all()).items()}
