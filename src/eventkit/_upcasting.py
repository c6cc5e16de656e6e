"""
Upcasting: the upcaster signatures, and how chains of upcasters are built and checked.

Everything here is pure and works on plain data: `UpcastStep` records kept by the
registry, and a registry seen only through three lookups (`ChainSource`). The
registry stores the steps and calls `check_chains`; the codec asks the registry for
an `UpcastChain` and runs its steps in a short loop. Nothing here does I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, TypeAlias

import attrs

from eventkit.exceptions import RegistrationError


def _read_only(metadata: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(metadata))


@attrs.frozen
class UpcastContext:
    """
    What an envelope-aware upcaster may read about the event it upgrades.

    Read-only: the metadata is a read-only view, and changing the context changes nothing
    stored. Register such an upcaster with ``@upcaster(name, from_version, context=True)``.

    Attributes:
        stream_id: The event's stream.
        version: The event's version in its stream.
        event_id: The event's unique id.
        recorded_at: When the store recorded the event (UTC).
        metadata: The strings stored beside the event.

    .. versionadded:: 0.1.0
    """

    stream_id: str
    version: int
    event_id: uuid.UUID
    recorded_at: datetime
    metadata: Mapping[str, str] = attrs.field(converter=_read_only)


Upcaster: TypeAlias = Callable[[dict[str, Any]], dict[str, Any]]
"""An upcaster: takes an event's data at one schema version, returns it at the next."""

ContextUpcaster: TypeAlias = Callable[[dict[str, Any], UpcastContext], dict[str, Any]]
"""An envelope-aware upcaster: as `Upcaster`, also given the event's `UpcastContext`."""


def qualified_name(func: object) -> str:
    """Return *func*'s module-qualified name, for messages."""
    module = getattr(func, "__module__", None)
    name = getattr(func, "__qualname__", None)
    if isinstance(module, str) and isinstance(name, str):
        return f"{module}.{name}"
    return repr(func)


@attrs.frozen
class UpcastStep:
    """
    One registered upcaster: a step from one schema version of a type to the next.

    Attributes:
        event_type: The type name the step reads.
        from_version: The schema version the step reads; it writes ``from_version + 1``.
        func: The upcaster.
        to: The type name the step writes: *event_type* itself, or a new name when
            the step renames the type.
        context: Whether *func* also takes an `UpcastContext`.

    .. versionadded:: 0.1.0
    """

    event_type: str
    from_version: int
    func: Upcaster | ContextUpcaster
    to: str
    context: bool = False

    @property
    def qualname(self) -> str:
        """The upcaster's module-qualified name, as errors name it."""
        return qualified_name(self.func)

    def describe(self) -> str:
        """Return the step as text: ``'A' v1 -> 'B' v2 (module.func)``."""
        return (
            f"{self.event_type!r} v{self.from_version} -> {self.to!r} v{self.from_version + 1}"
            f" ({self.qualname})"
        )


@attrs.frozen
class RetiredEvent:
    """
    Stands in for an event whose type was retired (`EventRegistry.retire`).

    Reading a stored event of a retired type yields a `RecordedEvent` whose ``event``
    is a `RetiredEvent` carrying the stored data, so the stream's versions stay
    whole. Aggregates and projections that ``match`` on event classes pass over it
    without a case for it.

    Attributes:
        event_type: The retired type name.
        schema_version: The schema version the event was stored at.
        data: The stored data, as decoded from JSON.

    .. versionadded:: 0.1.0
    """

    event_type: str
    schema_version: int
    data: Any = attrs.field(eq=True, hash=False)


@attrs.frozen
class UpcastChain:
    """
    The steps that bring data stored as (type name, schema version) to a current class.

    A chain ends at a registered type at its current version (*name*, *version*), or
    at a retired type, or stops short with a *problem*.

    Attributes:
        steps: The upcasters to run, in order.
        name: The type name the chain ends at.
        version: The schema version the chain ends at.
        retired: True when *name* is retired.
        problem: Why the chain does not reach a current version, or None.

    .. versionadded:: 0.1.0
    """

    steps: tuple[UpcastStep, ...]
    name: str
    version: int
    retired: bool = False
    problem: str | None = None


class _Versioned(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def oldest_version(self) -> int: ...


class ChainSource(Protocol):
    """What chain building needs from a registry: three lookups."""

    def get(self, name: str) -> _Versioned | None:
        """Return the entry registered under *name*, or None."""
        ...

    def is_retired(self, name: str) -> bool:
        """Return whether *name* is retired."""
        ...

    def upcast_step(self, name: str, from_version: int) -> UpcastStep | None:
        """Return the upcaster registered for (*name*, *from_version*), or None."""
        ...


def build_chain(source: ChainSource, name: str, version: int) -> UpcastChain:
    """
    Follow upcasters from (*name*, *version*) to a current class or a retired type.

    Never raises: what stops the chain short is described in the result's ``problem``.
    """
    steps: list[UpcastStep] = []
    start = name
    while True:
        if source.is_retired(name):
            if steps:
                return UpcastChain(
                    tuple(steps),
                    name,
                    version,
                    problem=f"upcasters lead to {name!r}, which is retired; retire "
                    f"{start!r} too, or end its chain at a registered type",
                )
            return UpcastChain((), name, version, retired=True)
        entry = source.get(name)
        if entry is not None and version >= entry.version:
            problem = None
            if version > entry.version and steps:
                problem = (
                    f"upcasters lead to version {version} of {name!r}, past its current "
                    f"version {entry.version}"
                )
            elif version > entry.version:
                problem = (
                    f"stored at schema version {version}, newer than the current version "
                    f"{entry.version} of {name!r}; is this code older than the code that "
                    "wrote the event?"
                )
            return UpcastChain(tuple(steps), name, version, problem=problem)
        step = source.upcast_step(name, version)
        if step is None:
            return UpcastChain(tuple(steps), name, version, problem=_missing(name, version, entry))
        if entry is not None and step.to != name:
            problem = (
                f"upcaster {step.describe()} renames {name!r}, but {name!r} is still "
                "registered: only a name that no class uses any more can be renamed"
            )
            return UpcastChain(tuple(steps), name, version, problem=problem)
        steps.append(step)
        name, version = step.to, version + 1


def _missing(name: str, version: int, entry: _Versioned | None) -> str:
    if entry is not None:
        return (
            f"no upcaster is registered from version {version} of {name!r}, so it cannot "
            f"reach the current version {entry.version}"
        )
    return (
        f"no event class is registered under {name!r} and no upcaster reads its "
        f"schema version {version}"
    )


def check_chains(
    source: ChainSource, types: Iterable[_Versioned], steps: Iterable[UpcastStep]
) -> None:
    """
    Check that stored events of every known schema version can reach a current class.

    Each registered type needs an upcaster from every version between its
    ``oldest_version`` and its current version, and every registered upcaster must be
    part of a chain that ends at a current class (or a retired type).

    Raises:
        RegistrationError: Listing every problem found: a gap in a chain, an upcaster
            from a version at or past its type's current version, an upcaster for a
            retired type, a chain that leads to an unknown or retired name.
    """
    problems = []
    gaps = set()
    for entry in sorted(types, key=lambda t: t.name):
        for version in range(entry.oldest_version, entry.version):
            if source.upcast_step(entry.name, version) is None:
                gaps.add((entry.name, version))
                problems.append(_gap(entry, version))
    for step in sorted(steps, key=lambda s: (s.event_type, s.from_version)):
        problem = _step_problem(source, step, gaps)
        if problem is not None:
            problems.append(problem)
    if problems:
        listed = "\n".join(f"- {problem}" for problem in problems)
        raise RegistrationError(f"upcaster chains are broken:\n{listed}")


def _gap(entry: _Versioned, version: int) -> str:
    return (
        f"event type {entry.name!r}: no upcaster from version {version} to version "
        f"{version + 1}, so events stored at version {version} cannot reach the current "
        f"version {entry.version} (register @upcaster({entry.name!r}, {version}), or raise "
        "oldest_version if no such events are stored)"
    )


def _step_problem(source: ChainSource, step: UpcastStep, gaps: set[tuple[str, int]]) -> str | None:
    name, version = step.event_type, step.from_version
    if source.is_retired(name):
        return (
            f"event type {name!r} is retired, but upcaster {step.describe()} reads it; "
            "retired events are read as stored"
        )
    entry = source.get(name)
    if entry is not None and version >= entry.version:
        return (
            f"event type {name!r}: upcaster {step.describe()} starts at or past the "
            f"current version {entry.version}; an upcaster reads an older version"
        )
    chain = build_chain(source, name, version)
    if chain.problem is None or (chain.name, chain.version) in gaps:
        return None
    return f"event type {name!r}: from schema version {version}, {chain.problem}"
