"""
Schema evolution: events written by an old release, read by the current one.

Three releases of a bank's code share one store. Each release is a registry of its own,
as each deployed version of the code would be. Release 1 writes deposits with a note;
release 2 renames the note to a memo and adds a currency; release 3 nests the amount in
a `Money` value, takes the booking date from when the event was recorded, and renames
`AccountCreated` to `AccountOpened`. Release 3 reads every event at its current shape,
through upcasters, without rewriting any stored row.

Run it with ``python examples/schema_evolution.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs

from eventkit import (
    EventRegistry,
    InMemoryEventStore,
    NewRecord,
    RecordWrite,
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


# -- one store, opened by each release in turn ------------------------------------------


def open_store(registry: EventRegistry, previous: InMemoryEventStore | None) -> InMemoryEventStore:
    """
    Open the store with *registry*, as a new release of the code would.

    An in-memory store stands in for a database file: the new store receives the stored
    rows of the *previous* one exactly as they are, through the raw record API.
    """
    store = InMemoryEventStore(registry=registry)
    for r in previous.read_all_records() if previous is not None else ():
        row = NewRecord(r.event_id, r.event_type, r.schema_version, r.data, r.metadata)
        store.append_records([RecordWrite(r.stream_id, (row,), r.version - 1)])
    return store


def main() -> None:
    store = open_store(release_1, None)
    store.append(
        "account-ada",
        [AccountCreated("ada"), MoneyDepositedV1(Decimal("100.00"), "opening deposit")],
    )
    store = open_store(release_2, store)
    store.append("account-ada", [MoneyDepositedV2(Decimal("20.00"), "CHF", "birthday")])
    store = open_store(release_3, store)
    refund = MoneyDeposited(Money(Decimal(5), "EUR"), datetime(2024, 1, 31, tzinfo=UTC), "refund")
    store.append("account-ada", [refund])

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
    main()
