"""
Schema evolution: events written by an old release, read by the current one.

Three releases of a bank's code open one SQLite file in turn. Each release is a registry
of its own, as each deployed version of the code would be. Release 1 writes deposits with a note;
release 2 renames the note to a memo and adds a currency; release 3 nests the amount in
a `Money` value, takes the booking date from when the event was recorded, and renames
`AccountCreated` to `AccountOpened`. Release 3 reads every event at its current shape,
through upcasters, without rewriting any stored row.

Run it with ``python examples/schema_evolution.py``.
"""

from __future__ import annotations

import pathlib
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs

from eventkit import (
    EventRegistry,
    SQLiteEventStore,
    UpcastContext,
    event,
    upcaster,
    verify,
)

# -- release 1 ------------------------------------------------------------------------

release_1 = EventRegistry()


@event("AccountCreated", registry=release_1)
@attrs.frozen
class AccountCreated:
    owner: str


@event("MoneyDeposited", registry=release_1)
@attrs.frozen
class MoneyDepositedV1:
    amount: Decimal
    note: str = ""


# -- release 2: `note` becomes `memo`, and deposits get a currency ---------------------

release_2 = EventRegistry()
event("AccountCreated", registry=release_2)(AccountCreated)


@event("MoneyDeposited", version=2, registry=release_2)
@attrs.frozen
class MoneyDepositedV2:
    amount: Decimal
    currency: str
    memo: str = ""


def money_deposited_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # Every deposit before release 2 was in euros.
    return {"amount": data["amount"], "currency": "EUR", "memo": data.get("note", "")}


upcaster("MoneyDeposited", 1, registry=release_2)(money_deposited_v1_to_v2)


# -- release 3: Money values, a booking date, and AccountCreated renamed ---------------

release_3 = EventRegistry()
upcaster("MoneyDeposited", 1, registry=release_3)(money_deposited_v1_to_v2)


@attrs.frozen
class Money:
    value: Decimal
    currency: str


@event("MoneyDeposited", version=3, registry=release_3)
@attrs.frozen
class MoneyDeposited:
    amount: Money
    booked_at: datetime
    memo: str = ""


@upcaster("MoneyDeposited", 2, context=True, registry=release_3)
def money_deposited_v2_to_v3(data: dict[str, Any], context: UpcastContext) -> dict[str, Any]:
    # Before release 3 a deposit was booked when it was recorded.
    return {
        "amount": {"value": data["amount"], "currency": data["currency"]},
        "booked_at": context.recorded_at.isoformat(),
        "memo": data["memo"],
    }


@event("AccountOpened", version=2, oldest_version=2, registry=release_3)
@attrs.frozen
class AccountOpened:
    owner: str


@upcaster("AccountCreated", 1, to="AccountOpened", registry=release_3)
def account_created_v1_to_account_opened_v2(data: dict[str, Any]) -> dict[str, Any]:
    return data


# -- one store file, opened by each release in turn ------------------------------------


def main(path: pathlib.Path) -> None:
    with SQLiteEventStore(path, registry=release_1) as store:
        store.append(
            "account-ada",
            [AccountCreated("ada"), MoneyDepositedV1(Decimal("100.00"), "opening deposit")],
        )
    with SQLiteEventStore(path, registry=release_2) as store:
        store.append("account-ada", [MoneyDepositedV2(Decimal("20.00"), "CHF", "birthday")])
    with SQLiteEventStore(path, registry=release_3) as store:
        booked = datetime(2024, 1, 31, tzinfo=UTC)
        store.append("account-ada", [MoneyDeposited(Money(Decimal(5), "EUR"), booked, "refund")])
        show(store)


def show(store: SQLiteEventStore) -> None:
    print("stored rows, never rewritten:")
    for row in store.read_all_records():
        print(f"  {row.version}. {row.event_type} v{row.schema_version} {row.data}")

    print("release 3 reads:")
    for recorded in store.read_stream("account-ada"):
        match recorded.event:
            case AccountOpened(owner=owner):
                print(f"  {recorded.version}. {recorded.event_type}: owner {owner}")
            case MoneyDeposited(amount=Money(value=value, currency=currency), memo=memo):
                booked_at = recorded.event.booked_at
                booked = "when recorded" if booked_at == recorded.recorded_at else booked_at.date()
                print(
                    f"  {recorded.version}. {recorded.event_type}: {value} {currency} "
                    f"({memo}), booked {booked}"
                )

    print(verify(store))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        main(pathlib.Path(folder) / "bank.db")
