"""The events the conformance suites append, in their own registry."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import attrs

from eventkit._envelope import ANY
from eventkit._events import EventRegistry, event, upcaster
from eventkit._records import NewRecord, RecordWrite

contract_registry = EventRegistry()
"""The registry of the events the conformance suite appends."""


@event("contract.Deposited", registry=contract_registry)
@attrs.frozen
class Deposited:
    """A contract event with one exact decimal."""

    amount: Decimal


@event("contract.Noted", registry=contract_registry)
@attrs.frozen
class Noted:
    """A contract event with text, to tell event types apart."""

    text: str


@event("contract.Tagged", version=2, registry=contract_registry)
@attrs.frozen
class Tagged:
    """A contract event at schema version 2, to check that older versions are upcast."""

    text: str
    tag: str


@upcaster("contract.Tagged", 1, registry=contract_registry)
def tagged_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Give an event stored at version 1 the tag it did not have."""
    return {**data, "tag": "v1"}


class Tier(enum.Enum):
    """An enum, to check that enum values round-trip."""

    GOLD = "gold"
    SILVER = "silver"


@attrs.frozen
class Address:
    """A nested attrs class."""

    street: str
    since: date


@event("contract.Everything", registry=contract_registry)
@attrs.frozen
class Everything:
    """A contract event with every kind of field the serializer must round-trip."""

    amount: Decimal
    reference: uuid.UUID
    at: datetime
    tier: Tier
    tags: frozenset[str]
    pair: tuple[int, int]
    address: Address
    nickname: str | None = None


def _everything() -> Everything:
    return Everything(
        amount=Decimal("12345678901234567890.000000000000000000001"),
        reference=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        tier=Tier.GOLD,
        tags=frozenset({"a", "ü", "😀"}),
        pair=(-(2**63), 2**63),
        address=Address("Rue du Nord 1", date(1999, 12, 31)),
    )


def _deposits(*amounts: int) -> list[Deposited]:
    return [Deposited(Decimal(amount)) for amount in amounts]


def _raw(stream_id: str, event_type: str, data: str, schema_version: int = 1) -> RecordWrite:
    record = NewRecord(uuid.uuid4(), event_type, schema_version, data, "{}")
    return RecordWrite(stream_id, (record,), ANY)


def _dep(amount: int) -> tuple[str, Deposited]:
    return "contract.Deposited", Deposited(Decimal(amount))
