"""
Upcasting: chains of upcasters, built, checked, cached and run in one place.

The registry (`_events`) keeps upcaster steps as plain data. Here they become chains:
`build_chain` follows the steps from a stored (type name, schema version) to a
current class, `check_upcasters` checks every chain when a store is built, and
`UpcastChains` caches the chains of one registry and runs them on stored data for the
codec, naming the stored event in every error. Nothing here does I/O.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol, cast

import attrs

from eventkit._events import UpcastContext, UpcastStep
from eventkit._json import decode_metadata
from eventkit.exceptions import RegistrationError, UpcastError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from eventkit._events import ContextUpcaster, EventRegistry, Upcaster
    from eventkit._records import EventRecord


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


def check_upcasters(registry: EventRegistry) -> None:
    """
    Check that events stored at any known schema version can still be read.

    Every store calls this when it is built, so a broken chain fails at start-up
    rather than on the first old event. Call it yourself after registering events
    or upcasters later than that.

    Raises:
        RegistrationError: Naming every problem: a type with no upcaster from some
            version between its ``oldest_version`` and its current version, an
            upcaster from a version at or past its type's current version, an
            upcaster for a retired type, or one whose chain leads to an unknown name.

    .. versionadded:: 0.1.0
    """
    check_chains(registry, list(registry), registry.upcast_steps())


class UpcastChains:
    """
    The upcaster chains of one registry: built when first needed, cached, and run.

    A chain is rebuilt after any registration (the registry's ``generation`` changes),
    since old events of one type and version all follow the same chain until then.

    .. versionadded:: 0.1.0
    """

    def __init__(self, registry: EventRegistry) -> None:
        self.registry = registry
        self._chains: dict[tuple[str, int], UpcastChain] = {}
        self._generation = registry.generation
        self._lock = threading.Lock()

    def chain(self, name: str, version: int) -> UpcastChain:
        """
        Return the chain for events stored as type *name* at schema *version*.

        The chain is empty for a current version, and describes its ``problem`` when it
        cannot reach a registered class.
        """
        generation = self.registry.generation
        if generation != self._generation:
            with self._lock:
                self._chains = {}
                self._generation = generation
        key = (name, version)
        found = self._chains.get(key)
        if found is None:
            found = build_chain(self.registry, name, version)
            # A chain built while another thread registered may be stale: not kept.
            if generation == self.registry.generation:
                self._chains[key] = found
        return found

    def upgrade(self, record: EventRecord, target: str, data: Any) -> Any:
        """
        Run *record*'s data through its chain up to the current version of type *target*.

        Args:
            record: The stored event, to name in errors and to give context upcasters.
            target: The type name the chain must end at.
            data: The stored data, as decoded from JSON.

        Raises:
            UpcastError: The chain is broken or leads elsewhere, an upcaster failed,
                or one returned something other than a dict.
        """
        chain = self.chain(record.event_type, record.schema_version)
        if chain.problem is not None or chain.name != target:
            raise chain_error(record, chain)
        context: UpcastContext | None = None
        for step in chain.steps:
            if step.context and context is None:
                context = _context(record)
            try:
                if context is not None and step.context:
                    data = cast("ContextUpcaster", step.func)(data, context)
                else:
                    data = cast("Upcaster", step.func)(data)
            except Exception as exc:  # upcasters are user code: any failure is named
                raise _step_error(
                    record, step, f"upcaster {step.describe()} failed: {type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(data, dict):
                raise _step_error(
                    record,
                    step,
                    f"upcaster {step.describe()} returned {type(data).__name__}, not a dict",
                )
        return data

    def unknown_detail(self, record: EventRecord) -> str | None:
        """Return why *record*'s type is unknown, when upcasters know it at other versions."""
        known = sorted(
            step.from_version
            for step in self.registry.upcast_steps()
            if step.event_type == record.event_type
        )
        if not known:
            return None
        return (
            "no event class is registered under this name, and its upcasters read "
            f"schema versions {known}, not {record.schema_version}"
        )


def chain_error(record: EventRecord, chain: UpcastChain) -> UpcastError:
    """Return the `UpcastError` for *record*, whose *chain* does not reach its class."""
    return UpcastError(
        chain.problem or f"upcasters lead to {chain.name!r}, not to this event's class",
        event_type=record.event_type,
        from_version=chain.version,
        stream_id=record.stream_id,
        version=record.version,
    )


def _step_error(record: EventRecord, step: UpcastStep, detail: str) -> UpcastError:
    return UpcastError(
        detail,
        event_type=record.event_type,
        from_version=step.from_version,
        upcaster=step.qualname,
        stream_id=record.stream_id,
        version=record.version,
    )


def _context(record: EventRecord) -> UpcastContext:
    return UpcastContext(
        record.stream_id,
        record.version,
        record.event_id,
        record.recorded_at,
        decode_metadata(record.metadata),
    )
