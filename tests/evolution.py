"""
A small ledger in three releases, standing for one code base as it changed over time.

Each release has its own registry, as a deployed version of the code would. Release 1
stores `MoneyDeposited` v1, `AccountCreated` and `DailyLimitSet`. Release 2 renames
the deposit's ``note`` to ``memo`` and adds a ``currency`` (v2). Release 3 nests the
amount in `Money`, stamps ``deposited_at`` from the envelope (v3), renames
`AccountCreated` to `AccountOpened`, and retires `DailyLimitSet`.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from eventkit import EventRegistry, UpcastContext, event, upcaster

release_1 = EventRegistry()
release_2 = EventRegistry()
release_3 = EventRegistry()


# -- release 1 ---------------------------------------------------------------------------


@event("ledger.AccountCreated", registry=release_1)
@event("ledger.AccountCreated", registry=release_2)
@attrs.frozen
class AccountCreated:
    owner: str


@event("ledger.MoneyDeposited", registry=release_1)
@attrs.frozen
class MoneyDepositedV1:
    amount: Decimal
    note: str = ""


@event("ledger.DailyLimitSet", registry=release_1)
@event("ledger.DailyLimitSet", registry=release_2)
@attrs.frozen
class DailyLimitSet:
    limit: Decimal


# -- release 2 ---------------------------------------------------------------------------


@event("ledger.MoneyDeposited", version=2, registry=release_2)
@attrs.frozen
class MoneyDepositedV2:
    amount: Decimal
    currency: str
    memo: str = ""


@upcaster("ledger.MoneyDeposited", 1, registry=release_2)
@upcaster("ledger.MoneyDeposited", 1, registry=release_3)
def money_deposited_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # Every deposit before release 2 was in euros.
    return {"amount": data["amount"], "currency": "EUR", "memo": data.get("note", "")}


# -- release 3 ---------------------------------------------------------------------------


@attrs.frozen
class Money:
    value: Decimal
    currency: str


@event("ledger.MoneyDeposited", version=3, registry=release_3)
@attrs.frozen
class MoneyDeposited:
    amount: Money
    deposited_at: datetime
    memo: str = ""


@upcaster("ledger.MoneyDeposited", 2, context=True, registry=release_3)
def money_deposited_v2_to_v3(data: dict[str, Any], context: UpcastContext) -> dict[str, Any]:
    # Before release 3 a deposit was booked when it was recorded.
    return {
        "amount": {"value": data["amount"], "currency": data["currency"]},
        "deposited_at": context.recorded_at.isoformat(),
        "memo": data["memo"],
    }


@event("ledger.AccountOpened", version=2, oldest_version=2, registry=release_3)
@attrs.frozen
class AccountOpened:
    owner: str
    channel: str


@upcaster("ledger.AccountCreated", 1, to="ledger.AccountOpened", registry=release_3)
def account_created_v1_to_account_opened_v2(data: dict[str, Any]) -> dict[str, Any]:
    # Accounts were opened only at a branch before there was a channel to record.
    return {**data, "channel": "branch"}


release_3.retire("ledger.DailyLimitSet")
