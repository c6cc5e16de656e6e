"""Domain events: the `event` decorator and the registry of type names."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from eventkit.exceptions import RegistrationError, UnknownEventType

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

T = TypeVar("T")


@attrs.frozen
class EventType:
    """
    One registered event type: its stable name, current schema version and class.

    Attributes:
        name: The type name stored with every event of this type.
        version: The current schema version; new events are written with it.
        cls: The attrs class that events of this type are structured into.

    .. versionadded:: 0.1.0
    """

    name: str
    version: int
    cls: type[Any]


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

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._by_name: dict[str, EventType] = {}
        self._by_class: dict[type[Any], EventType] = {}
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

    def register(self, cls: type[Any], name: str, version: int = 1) -> EventType:
        """
        Register *cls* under the type name *name* at schema version *version*.

        Returns:
            The new registry entry.

        Raises:
            RegistrationError: *cls* is not an attrs class, *name* or *version* is
                invalid, or the name or class is already registered differently.
        """
        _check_registration(cls, name, version)
        entry = EventType(name, version, cls)
        with self._lock:
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
        return entry

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


def _check_registration(cls: object, name: object, version: object) -> None:
    if not isinstance(cls, type) or not attrs.has(cls):
        shown = _qualified(cls) if isinstance(cls, type) else repr(cls)
        raise RegistrationError(
            f"cannot register {shown} as event type {name!r}: events must be attrs classes "
            "(put @event(...) above @attrs.frozen)"
        )
    if not isinstance(name, str) or not name or name != name.strip():
        raise RegistrationError(
            f"cannot register {_qualified(cls)}: event type name must be a non-empty string "
            f"without surrounding whitespace, got {name!r}"
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RegistrationError(
            f"cannot register {_qualified(cls)} as event type {name!r}: version must be an "
            f"integer >= 1, got {version!r}"
        )


default_registry = EventRegistry()
"""The registry that `event` fills unless told otherwise, and that stores use by default."""


def event(
    name: str, *, version: int = 1, registry: EventRegistry | None = None
) -> Callable[[type[T]], type[T]]:
    """
    Register an attrs class as a domain event under a stable type name.

    The name is what gets stored, so renaming or moving the class does not break old
    events. Bump *version* when the stored shape changes, and register an upcaster
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
        registry: Where to register; `default_registry` when omitted.

    Raises:
        RegistrationError: At import time, when the class is not an attrs class, or
            the name or class is already registered differently.

    .. versionadded:: 0.1.0
    """
    target = default_registry if registry is None else registry

    def decorate(cls: type[T]) -> type[T]:
        target.register(cls, name, version)
        return cls

    return decorate
