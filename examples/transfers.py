"""
Money transfers between accounts, as a process manager.

A transfer is a chain of events in several streams. It is requested in its own
stream; the process manager reacts by debiting the source account; once the debit is
stored it credits the target; once the credit is stored it marks the transfer
completed. When the target account is closed, it compensates: the source is refunded
and the transfer marked failed. A transfer the source cannot cover fails at once.

Each reaction is appended in the same transaction that moves the process manager's
checkpoint, so a crash anywhere never loses a step or repeats one. Every event the
manager appends carries the id of the event that caused it (``causation_id``) and the
id of the request that started the chain (``correlation_id``): the program prints one
transfer's chain from them.

Run it with ``python examples/transfers.py [STORE_URL]``: an SQLite file in a temporary
folder by default, or any store URL (``memory://``, ``sqlite:///transfers.db``,
``postgresql://user@host/db?schema=transfers``). The store should be new or empty.
"""

from __future__ import annotations

import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from eventkit import (
    Aggregate,
    ProcessManager,
    ProcessManagerRunner,
    Repository,
    event,
    open_store,
)

if TYPE_CHECKING:
    from eventkit import EventStore, ProcessContext, RecordedEvent


@event("transfers.AccountOpened")
@attrs.frozen
class AccountOpened:
    owner: str
    balance: Decimal


@event("transfers.AccountClosed")
@attrs.frozen
class AccountClosed:
    pass


@event("transfers.AccountDebited")
@attrs.frozen
class AccountDebited:
    transfer_id: str
    amount: Decimal


@event("transfers.AccountCredited")
@attrs.frozen
class AccountCredited:
    transfer_id: str
    amount: Decimal


@event("transfers.DebitRefunded")
@attrs.frozen
class DebitRefunded:
    transfer_id: str
    amount: Decimal


@event("transfers.TransferRequested")
@attrs.frozen
class TransferRequested:
    transfer_id: str
    source: str
    target: str
    amount: Decimal


@event("transfers.TransferCompleted")
@attrs.frozen
class TransferCompleted:
    transfer_id: str


@event("transfers.TransferFailed")
@attrs.frozen
class TransferFailed:
    transfer_id: str
    reason: str


class RefusedError(Exception):
    """A command an account cannot accept."""


@attrs.define
class Account(Aggregate):
    owner: str = ""
    balance: Decimal = Decimal(0)
    closed: bool = False

    def open(self, owner: str, balance: Decimal) -> None:
        self.record(AccountOpened(owner, balance))

    def close(self) -> None:
        self.record(AccountClosed())

    def debit(self, transfer_id: str, amount: Decimal) -> None:
        if self.closed:
            raise RefusedError(f"account {self.id} is closed")
        if amount > self.balance:
            raise RefusedError(f"account {self.id} holds {self.balance}, not {amount}")
        self.record(AccountDebited(transfer_id, amount))

    def credit(self, transfer_id: str, amount: Decimal) -> None:
        if self.closed:
            raise RefusedError(f"account {self.id} is closed")
        self.record(AccountCredited(transfer_id, amount))

    def refund(self, transfer_id: str, amount: Decimal) -> None:
        # A refund returns money already taken: it is accepted even by a closed account.
        self.record(DebitRefunded(transfer_id, amount))

    def apply(self, event: Any) -> None:
        match event:
            case AccountOpened(owner=owner, balance=balance):
                self.owner, self.balance = owner, balance
            case AccountClosed():
                self.closed = True
            case AccountDebited(amount=amount):
                self.balance -= amount
            case AccountCredited(amount=amount) | DebitRefunded(amount=amount):
                self.balance += amount


def transfer_stream(transfer_id: str) -> str:
    return f"transfer-{transfer_id}"


class Transfers(ProcessManager):
    """Moves money for each requested transfer, step by step, compensating on failure."""

    name = "transfers"
    event_types = (TransferRequested, AccountDebited, AccountCredited, DebitRefunded)

    def __init__(self, accounts: Repository[Account]) -> None:
        self.accounts = accounts

    def handle(self, recorded: RecordedEvent[Any], process: ProcessContext) -> None:
        match recorded.event:
            case TransferRequested(transfer_id=transfer_id, source=source, amount=amount):
                account = process.load(self.accounts, source)
                try:
                    account.debit(transfer_id, amount)
                except RefusedError as refused:
                    self._fail(process, transfer_id, str(refused))
                    return
                process.save(self.accounts, account)
            case AccountDebited(transfer_id=transfer_id, amount=amount):
                request = self._request(process, transfer_id)
                target = process.load(self.accounts, request.target)
                try:
                    target.credit(transfer_id, amount)
                    process.save(self.accounts, target)
                except RefusedError:
                    source = process.load(self.accounts, request.source)
                    source.refund(transfer_id, amount)
                    process.save(self.accounts, source)
            case AccountCredited(transfer_id=transfer_id):
                process.append(transfer_stream(transfer_id), [TransferCompleted(transfer_id)])
            case DebitRefunded(transfer_id=transfer_id):
                self._fail(process, transfer_id, "the target account is closed; refunded")

    @staticmethod
    def _request(process: ProcessContext, transfer_id: str) -> TransferRequested:
        first = process.read_stream(transfer_stream(transfer_id))[0].event
        assert isinstance(first, TransferRequested)
        return first

    @staticmethod
    def _fail(process: ProcessContext, transfer_id: str, reason: str) -> None:
        process.append(transfer_stream(transfer_id), [TransferFailed(transfer_id, reason)])


def request(store: EventStore, transfer_id: str, source: str, target: str, amount: str) -> str:
    """Request a transfer: one event in a new stream, as a command handler would store it."""
    store.append(
        transfer_stream(transfer_id),
        [TransferRequested(transfer_id, source, target, Decimal(amount))],
        expected_version=0,
    )
    return transfer_id


def outcome(store: EventStore, transfer_id: str) -> str:
    last = store.read_stream(transfer_stream(transfer_id), backwards=True, limit=1)[0].event
    match last:
        case TransferCompleted():
            return "completed"
        case TransferFailed(reason=reason):
            return f"failed: {reason}"
    return "in progress"


def chain(store: EventStore, transfer_id: str) -> list[str]:
    """The events of one transfer's chain, in order, each with the event that caused it."""
    first = store.read_stream(transfer_stream(transfer_id))[0]
    names = {str(first.event_id): "request"}
    lines = [f"  {first.event_type.split('.')[-1]} in {first.stream_id}"]
    for recorded in store.read_all():
        if recorded.metadata.get("correlation_id") != str(first.event_id):
            continue
        names[str(recorded.event_id)] = recorded.event_type.split(".")[-1]
        cause = names.get(recorded.metadata["causation_id"], "?")
        lines.append(
            f"  {names[str(recorded.event_id)]} in {recorded.stream_id}, caused by {cause}"
        )
    return lines


def main(url: str) -> None:
    store = open_store(url)
    try:
        accounts = Repository(store, Account, stream_prefix="account-")
        for owner, balance in (("ada", "100"), ("grace", "50"), ("linus", "10")):
            account = Account(id=owner)
            account.open(owner, Decimal(balance))
            accounts.save(account)
        linus = accounts.load("linus")
        linus.close()
        accounts.save(linus)

        transfers = {
            "ada -> grace, 30": request(store, "t1", "ada", "grace", "30"),
            "grace -> ada, 500": request(store, "t2", "grace", "ada", "500"),
            "ada -> linus, 20": request(store, "t3", "ada", "linus", "20"),
        }
        runner = ProcessManagerRunner(store, Transfers(accounts))
        # The chain is several rounds deep: each step's events are the next step's input.
        while runner.run_until_caught_up():
            pass

        for label, transfer_id in transfers.items():
            print(f"{label}: {outcome(store, transfer_id)}")
        for owner in ("ada", "grace", "linus"):
            print(f"{owner} holds {accounts.load(owner).balance}")
        print("the chain of ada -> linus:")
        for line in chain(store, transfers["ada -> linus, 20"]):
            print(line)
    finally:
        store.close()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(f"sqlite:///{Path(folder) / 'transfers.db'}")
