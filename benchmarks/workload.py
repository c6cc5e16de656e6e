"""The domain the benchmarks use: one small event and an account that folds it."""

from __future__ import annotations

from decimal import Decimal

import attrs

from eventkit import Aggregate, EventRegistry, event

registry = EventRegistry()


@event("MoneyDeposited", registry=registry)
@attrs.frozen
class MoneyDeposited:
    amount: Decimal
    memo: str = ""


@attrs.define
class Account(Aggregate):
    balance: Decimal = Decimal(0)

    def apply(self, event: object) -> None:
        match event:
            case MoneyDeposited(amount=amount):
                self.balance += amount


@event("CustomerRegistered", registry=registry)
@attrs.frozen
class CustomerRegistered:
    """A larger event: about 600 characters of JSON, where orjson reads faster."""

    name: str
    email: str
    street: str
    city: str
    country: str
    notes: str


def registrations(count: int) -> list[CustomerRegistered]:
    """Return *count* distinct registrations, made before timing starts."""
    return [
        CustomerRegistered(
            f"Customer number {n}",
            f"customer.{n}@example.org",
            f"{n} Long Street Name, Building {n % 7}, Floor {n % 11}",
            "Somewhere-on-the-River",
            "Country of Examples",
            "Prefers e-mail; asked about invoices in March. " * 8,
        )
        for n in range(count)
    ]


def deposits(count: int) -> list[MoneyDeposited]:
    """Return *count* distinct deposits, made before timing starts."""
    return [MoneyDeposited(Decimal(n) / 100, f"deposit {n}") for n in range(count)]


def as_json_dict(deposit: MoneyDeposited) -> dict[str, str]:
    """Serialize a deposit by hand, as code on bare sqlite3 would."""
    return {"amount": str(deposit.amount), "memo": deposit.memo}
