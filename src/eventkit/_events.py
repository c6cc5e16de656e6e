"""
Domain events: the `event` and `upcaster` decorators and the registry they fill.

The registry keeps event classes, upcaster steps and retired type names as plain data,
with the signatures of upcasters and the records they are given. Building, checking,
caching and running chains of upcasters is `_upcasting`'s work, on top of this.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar, overload

import attrs

from eventkit.exceptions import RegistrationError, UnknownEventType

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator


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


T = TypeVar("T")
U = TypeVar("U", bound=Upcaster)
C = TypeVar("C", bound=ContextUpcaster)


@attrs.frozen
class EventType:
    """
    One registered event type: its stable name, current schema version and class.

    Attributes:
        name: The type name stored with every event of this type.
        version: The current schema version; new events are written with it.
        cls: The attrs class that events of this type are structured into.
        oldest_version: The oldest schema version that may be stored; upcasters must
            lead from it to *version*.

    .. versionadded:: 0.1.0
    """

    name: str
    version: int
    cls: type[Any]
    oldest_version: int = 1


def _qualified(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class EventRegistry:
    """
    Maps stable type names to event classes, and classes back to names.

    `event` fills `default_registry`; pass your own registry to `event` and to a store
    to keep several bounded contexts (or tests) apart in one process.

    A type name belongs to one class, and a class to one type name. Registering the
    same class again under the same name (as ``importlib.reload`` does) replaces the
    entry; anything else that reuses a name or a class raises `RegistrationError`.

    The registry also keeps the upcasters that `upcaster` registers and the type
    names that `retire` retires. Events and upcasters register at import time in any
    order, so chains are checked as a whole by `check_upcasters`, which every store
    calls when it is built.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._by_name: dict[str, EventType] = {}
        self._by_class: dict[type[Any], EventType] = {}
        self._steps: dict[tuple[str, int], UpcastStep] = {}
        self._retired: set[str] = set()
        # Bumped by every registration, so that chains cached elsewhere can tell they
        # may be stale.
        self._generation = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<EventRegistry with {len(self._by_name)} event types>"

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return item in self._by_name
        return item in self._by_class

    def __iter__(self) -> Iterator[EventType]:
        return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def register(
        self, cls: type[Any], name: str, version: int = 1, *, oldest_version: int = 1
    ) -> EventType:
        """
        Register *cls* under the type name *name* at schema version *version*.

        Args:
            cls: The attrs class.
            name: The stable type name.
            version: The class's current schema version.
            oldest_version: The oldest schema version that may be stored (see `event`).

        Returns:
            The new registry entry.

        Raises:
            RegistrationError: *cls* is not an attrs class, *name* or a version is
                invalid, *name* is retired, or the name or class is already registered
                differently.
        """
        _check_registration(cls, name, version)
        _check_oldest_version(cls, name, version, oldest_version)
        entry = EventType(name, version, cls, oldest_version)
        with self._lock:
            if name in self._retired:
                raise RegistrationError(
                    f"cannot register {_qualified(cls)} as event type {name!r}: that name "
                    "is retired"
                )
            existing = self._by_name.get(name)
            if existing is not None and existing.cls is not cls:
                if _qualified(existing.cls) != _qualified(cls):
                    raise RegistrationError(
                        f"event type {name!r} is already registered to "
                        f"{_qualified(existing.cls)}; cannot register {_qualified(cls)} too"
                    )
                # The same class defined again (a module reload): forget the old one.
                del self._by_class[existing.cls]
            previous = self._by_class.get(cls)
            if previous is not None and previous.name != name:
                raise RegistrationError(
                    f"{_qualified(cls)} is already registered as event type "
                    f"{previous.name!r}; cannot register it as {name!r} too"
                )
            self._by_name[name] = entry
            self._by_class[cls] = entry
            self._changed()
        return entry

    def add_upcaster(
        self,
        func: Upcaster | ContextUpcaster,
        name: str,
        from_version: int,
        *,
        to: str | None = None,
        context: bool = False,
    ) -> UpcastStep:
        """
        Register *func* as the upcaster of type *name* from schema version *from_version*.

        `upcaster` is the decorator form; see it for the arguments.

        Returns:
            The registered step.

        Raises:
            RegistrationError: An argument is invalid, or another upcaster is already
                registered for (*name*, *from_version*).
        """
        _check_upcaster(func, name, from_version, to)
        step = UpcastStep(name, from_version, func, name if to is None else to, context)
        with self._lock:
            existing = self._steps.get((name, from_version))
            # The same function defined again (a module reload) replaces the old one.
            if existing is not None and existing.qualname != step.qualname:
                raise RegistrationError(
                    f"event type {name!r} already has an upcaster from version "
                    f"{from_version}, {existing.qualname}; cannot register {step.qualname} too"
                )
            self._steps[name, from_version] = step
            self._changed()
        return step

    def upcast_step(self, name: str, from_version: int) -> UpcastStep | None:
        """Return the upcaster registered for type *name* from *from_version*, or None."""
        return self._steps.get((name, from_version))

    def upcast_steps(self) -> tuple[UpcastStep, ...]:
        """Return every registered upcaster."""
        return tuple(self._steps.values())

    def retire(self, name: str) -> None:
        """
        Mark the type name *name* as retired: its stored events read as `RetiredEvent`.

        Retire a type when its class is gone but its events stay in the store. Reading
        them does not fail, stream versions stay whole, and aggregates and projections
        that ``match`` on event classes pass over them. Retiring a name twice is harmless.

        Raises:
            RegistrationError: *name* is not a valid type name, or a class is
                registered under it (remove the class first).

        .. versionadded:: 0.1.0
        """
        _check_name(name, f"cannot retire {name!r}")
        with self._lock:
            entry = self._by_name.get(name)
            if entry is not None:
                raise RegistrationError(
                    f"cannot retire event type {name!r}: {_qualified(entry.cls)} is "
                    "registered under it"
                )
            self._retired.add(name)
            self._changed()

    def is_retired(self, name: str) -> bool:
        """Return whether the type name *name* is retired."""
        return name in self._retired

    def stored_names(
        self, event_types: Iterable[str | type[Any]] | str | type[Any]
    ) -> frozenset[str]:
        """
        Return the stored type names that select events of *event_types*.

        Names are taken as given and classes by their registered name; each type's old
        names (see `old_names`) are added, since those events read as that type.

        Raises:
            UnknownEventType: A class in *event_types* is not registered.
        """
        if isinstance(event_types, (str, type)):
            event_types = [event_types]
        names = {
            item if isinstance(item, str) else self.by_class(item).name for item in event_types
        }
        return frozenset(names).union(*(self.old_names(name) for name in names))

    def old_names(self, name: str) -> frozenset[str]:
        """
        Return the type names whose stored events are renamed to *name* by upcasters.

        Reading events "of type *name*" (`BaseEventStore.read_all` with *event_types*)
        also reads events stored under these names.
        """
        found: set[str] = set()
        targets = {name}
        while targets:
            sources = {
                step.event_type
                for step in self._steps.values()
                if step.to in targets and step.event_type != step.to
            }
            targets = sources - found - {name}
            found |= targets
        return frozenset(found)

    @property
    def generation(self) -> int:
        """Grows with every registration, so that caches of chains can tell they are stale."""
        return self._generation

    def _changed(self) -> None:
        # Called under the lock by every registration.
        self._generation += 1

    def by_name(self, name: str) -> EventType:
        """
        Return the entry registered under the type name *name*.

        Raises:
            UnknownEventType: No class is registered under *name*.
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownEventType(name) from None

    def by_class(self, cls: type[Any]) -> EventType:
        """
        Return the entry that *cls* is registered under.

        Raises:
            UnknownEventType: *cls* was never registered in this registry.
        """
        try:
            return self._by_class[cls]
        except KeyError:
            raise UnknownEventType(
                _qualified(cls),
                detail=(
                    "this class is not a registered event; decorate it with "
                    "@eventkit.event(name) (in the registry this store uses)"
                ),
            ) from None

    def get(self, name: str) -> EventType | None:
        """Return the entry registered under *name*, or None."""
        return self._by_name.get(name)

    def lookup(self) -> Callable[[str], EventType | None]:
        """
        Return a function that does what `get` does, for paths that run once per event.

        It reads the registry's live table, so it sees later registrations too, and it
        is the table's own ``get``: no Python frame per call.
        """
        return self._by_name.get


def _check_name(name: object, prefix: str) -> None:
    # Type names are stored in a column of every backend: PostgreSQL's text cannot hold
    # NUL, and no UTF-8 database a lone surrogate.
    if (
        not isinstance(name, str)
        or not name
        or name != name.strip()
        or "\x00" in name
        or any("\ud800" <= char <= "\udfff" for char in name)
    ):
        raise RegistrationError(
            f"{prefix}: event type name must be a non-empty string without surrounding "
            f"whitespace, NUL or lone surrogates, got {name!r}"
        )


def _check_oldest_version(cls: type[Any], name: str, version: int, oldest: object) -> None:
    if isinstance(oldest, bool) or not isinstance(oldest, int) or not 1 <= oldest <= version:
        raise RegistrationError(
            f"cannot register {_qualified(cls)} as event type {name!r}: oldest_version must "
            f"be an integer from 1 to the version {version}, got {oldest!r}"
        )


def _check_upcaster(func: object, name: object, from_version: object, to: object) -> None:
    shown = qualified_name(func)
    if not callable(func):
        raise RegistrationError(f"cannot register {func!r} as an upcaster: it is not callable")
    _check_name(name, f"cannot register upcaster {shown}")
    if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
        raise RegistrationError(
            f"cannot register upcaster {shown} for {name!r}: from_version must be an "
            f"integer >= 1, got {from_version!r}"
        )
    if to is not None:
        _check_name(to, f"cannot register upcaster {shown} for {name!r} (to=)")


def _check_registration(cls: object, name: object, version: object) -> None:
    if not isinstance(cls, type) or not attrs.has(cls):
        shown = _qualified(cls) if isinstance(cls, type) else repr(cls)
        raise RegistrationError(
            f"cannot register {shown} as event type {name!r}: events must be attrs classes "
            "(put @event(...) above @attrs.frozen)"
        )
    _check_name(name, f"cannot register {_qualified(cls)}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RegistrationError(
            f"cannot register {_qualified(cls)} as event type {name!r}: version must be an "
            f"integer >= 1, got {version!r}"
        )


default_registry = EventRegistry()
"""The registry that `event` fills unless told otherwise, and that stores use by default."""


def event(
    name: str,
    *,
    version: int = 1,
    oldest_version: int = 1,
    registry: EventRegistry | None = None,
) -> Callable[[type[T]], type[T]]:
    """
    Register an attrs class as a domain event under a stable type name.

    The name is what gets stored, so renaming or moving the class does not break old
    events. Bump *version* when the stored shape changes, and register an `upcaster`
    from the previous version.

    Example:
        .. code-block:: python

            @event("MoneyDeposited", version=2)
            @attrs.frozen
            class MoneyDeposited:
                amount: Decimal
                memo: str = ""

    Args:
        name: The stable type name stored with each event.
        version: The schema version of the class as written now (default 1).
        oldest_version: The oldest schema version that may be stored (default 1).
            `check_upcasters` requires an upcaster from each version from this
            one up to *version*. Raise it when older events were never stored under
            this name (a type renamed at version 3 starts at 3), or no longer are
            (after `migrate`), and their upcasters are deleted.
        registry: Where to register; `default_registry` when omitted.

    Raises:
        RegistrationError: At import time, when the class is not an attrs class, the
            name is retired, or the name or class is already registered differently.

    .. versionadded:: 0.1.0
    """
    target = default_registry if registry is None else registry

    def decorate(cls: type[T]) -> type[T]:
        target.register(cls, name, version, oldest_version=oldest_version)
        return cls

    return decorate


@overload
def upcaster(
    name: str,
    from_version: int,
    *,
    to: str | None = None,
    context: Literal[False] = False,
    registry: EventRegistry | None = None,
) -> Callable[[U], U]: ...


@overload
def upcaster(
    name: str,
    from_version: int,
    *,
    to: str | None = None,
    context: Literal[True],
    registry: EventRegistry | None = None,
) -> Callable[[C], C]: ...


def upcaster(
    name: str,
    from_version: int,
    *,
    to: str | None = None,
    context: bool = False,
    registry: EventRegistry | None = None,
) -> Callable[[Any], Any]:
    """
    Register a function that upgrades stored data of type *name* by one schema version.

    The function takes the data stored at *from_version* (a dict, as decoded from
    JSON) and returns it at ``from_version + 1``. It may change the dict it is given.
    On read, old data goes through the upcasters from its stored version to the
    class's current one; stored rows are never rewritten.

    Example:
        .. code-block:: python

            @upcaster("MoneyDeposited", 1)
            def money_deposited_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
                return {**data, "memo": ""}

    Args:
        name: The stored type name the upcaster reads.
        from_version: The schema version it reads; it returns ``from_version + 1``.
        to: A new type name for the result, when the type was renamed: events stored
            as *name* then load as the class registered under *to* (whose versions
            continue from ``from_version + 1``). Only a name that no class uses any
            more can be renamed.
        context: When True, the function also receives an `UpcastContext` (the
            event's stream, version, id, recording time and metadata, read-only):
            ``def f(data, context) -> dict``.
        registry: Where to register; `default_registry` when omitted.

    Raises:
        RegistrationError: At import time, when an argument is invalid or another
            upcaster is registered for (*name*, *from_version*). Gaps in a chain are
            found by `check_upcasters`, when a store is built.

    .. versionadded:: 0.1.0
    """
    target = default_registry if registry is None else registry

    def decorate(func: Any) -> Any:
        target.add_upcaster(func, name, from_version, to=to, context=context)
        return func

    return decorate
