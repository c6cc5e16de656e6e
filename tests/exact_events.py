"""Events of every supported field type, for the tests of exact reading."""

from __future__ import annotations

import enum
import typing
import uuid
from datetime import date, datetime, time
from decimal import Decimal

import attrs

from eventkit import Aggregate, EventRegistry, event, upcaster

registry = EventRegistry()
upcast_registry = EventRegistry()


class Colour(enum.Enum):
    RED = "red"
    BLUE = 2


@attrs.frozen
class Place:
    city: str
    since: date


# Field names differ between classes, so that data read as another class never fits.
@event("exact.Scalars", registry=registry)
@attrs.frozen
class Scalars:
    text: str
    count: int
    ratio: float
    flag: bool
    amount: Decimal


@event("exact.Values", registry=registry)
@attrs.frozen
class Values:
    ref: uuid.UUID
    at: datetime
    day: date
    clock: time
    colour: Colour
    blob: bytes


@event("exact.Shapes", registry=registry)
@attrs.frozen
class Shapes:
    tags: frozenset[str]
    counts: tuple[int, ...]
    pair: tuple[int, str]
    names: list[str]
    scores: dict[str, int]
    place: Place
    note: str | None = None


@event("exact.Labelled", version=2, registry=upcast_registry)
@attrs.frozen
class Labelled:
    """Stored at version 1 with its label under another key; an upcaster renames it."""

    amount: Decimal
    label: str
    size: int


class Mistake:
    """What the upcaster below gets wrong, set by a test: a function of its result."""

    make: typing.Callable[[dict[str, typing.Any]], typing.Any] | None = None


@upcaster("exact.Labelled", 1, registry=upcast_registry)
def labelled_v1_to_v2(data: dict[str, typing.Any]) -> typing.Any:
    """Rename ``name`` to ``label``; then make the test's mistake, if any."""
    data = {"label" if key == "name" else key: value for key, value in data.items()}
    return data if Mistake.make is None else Mistake.make(data)


# The JSON kinds each field is written as and may be read from ("integer" and "float"
# apart, as the converter tells them apart); anything else must be refused.
ACCEPTED = {
    "text": {"string"},
    "count": {"integer"},
    "ratio": {"integer", "float"},
    "flag": {"boolean"},
    "amount": {"string", "integer"},
    "ref": {"string"},
    "at": {"string"},
    "day": {"string"},
    "clock": {"string"},
    "colour": {"string", "integer"},
    "blob": {"string"},
    "tags": {"array"},
    "counts": {"array"},
    "pair": {"array"},
    "names": {"array"},
    "scores": {"object"},
    "place": {"object"},
    "note": {"string", "null"},
    "label": {"string"},
    "size": {"integer"},
}

# One value of each JSON kind, to put in place of a stored value.
REPLACEMENTS = {
    "null": None,
    "boolean": True,
    "integer": 7,
    "float": 1.5,
    "string": "corrupt",
    "array": [],
    "object": {},
}


def json_kind(value: object) -> str:
    """Return the JSON kind of a decoded value, integers apart from floats."""
    kinds = {
        type(None): "null",
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        list: "array",
        dict: "object",
    }
    return kinds[type(value)]


# The JSON kinds each field of a Wallet's snapshot state accepts.
WALLET_ACCEPTED = {
    "id": {"string"},
    "version": {"integer"},
    "owner": {"string"},
    "total": {"string", "integer"},
    "count": {"integer"},
    "tags": {"array"},
}


@attrs.define
class Wallet(Aggregate):
    """An aggregate whose state has fields of several kinds, for snapshot damage."""

    owner: str = ""
    total: Decimal = Decimal(0)
    count: int = 0
    tags: frozenset[str] = frozenset()

    def apply(self, event: object) -> None:
        match event:
            case Scalars(text=text, amount=amount):
                self.owner = text
                self.total += amount
                self.count += 1
            case Shapes(tags=tags):
                self.tags = self.tags | tags
            case _:
                self.count += 1
