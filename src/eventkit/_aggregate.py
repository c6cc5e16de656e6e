"""Aggregates: consistency boundaries that check invariants and record events. No I/O."""

# No `from __future__ import annotations` here: cattrs resolves a subclass's annotations
# through its whole MRO, and this class's names must resolve although its __module__ is
# set to "eventkit", whose namespace lacks them. Real objects need no resolving.
import abc
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar, Self

import attrs

from eventkit._envelope import new_event_id
from eventkit.exceptions import ArgumentError


@attrs.define
class Aggregate(abc.ABC):
    """
    Base class for event-sourced aggregates.

    Subclass it with ``@attrs.define``, give every field a default (an aggregate starts
    empty and is filled by replaying its events), write commands that check invariants
    and call `record`, and write `apply` to change state for each event. `apply` must
    not check invariants or fail: it also replays history, and history cannot be refused.

    Example:
        .. code-block:: python

            @attrs.define
            class Account(Aggregate):
                balance: Decimal = Decimal(0)

                def deposit(self, amount: Decimal) -> None:
                    if amount <= 0:
                        raise ValueError("deposit must be positive")
                    self.record(MoneyDeposited(amount))

                def apply(self, event: object) -> None:
                    match event:
                        case MoneyDeposited(amount=amount):
                            self.balance += amount

    Attributes:
        id: The aggregate's id; the `Repository` derives the stream id from it.
        version: The number of events applied, recorded ones included.

    .. versionadded:: 0.1.0
    """

    id: str
    version: int = attrs.field(default=0, kw_only=True)
    _pending: list[Any] = attrs.field(factory=list, init=False, repr=False, eq=False)
    # Each recorded event's id is chosen once, when it is recorded, so that a save retried
    # after a lost response re-sends the same ids and the store recognises the retry.
    _pending_ids: list[uuid.UUID] = attrs.field(factory=list, init=False, repr=False, eq=False)

    snapshot_version: ClassVar[int] = 1
    """
    The version of the aggregate's snapshots: bump it when fields change, or when ``apply``
    computes state differently; snapshots of another version are ignored.
    """

    @abc.abstractmethod
    def apply(self, event: Any) -> None:
        """Change the aggregate's state to reflect *event* (house style: ``match``)."""

    def record(self, event: Any) -> None:
        """
        Apply *event* and queue it to be saved.

        Call this from command methods, after the invariants hold.
        """
        self.apply(event)
        self._pending.append(event)
        self._pending_ids.append(new_event_id())
        self.version += 1

    @property
    def pending_events(self) -> tuple[Any, ...]:
        """The events recorded since the aggregate was loaded or last saved."""
        return tuple(self._pending)

    @property
    def pending_event_ids(self) -> tuple[uuid.UUID, ...]:
        """
        The ids the pending events will be stored with, in the same order.

        Chosen when each event is recorded and kept until it is saved, so saving the
        same aggregate again after an error whose outcome is unknown (a lost
        connection, a timeout) is recognised by the store as a retry, not a conflict.
        """
        return tuple(self._pending_ids)

    @property
    def saved_version(self) -> int:
        """The version the aggregate had when loaded or last saved."""
        return self.version - len(self._pending)

    def mark_saved(self) -> None:
        """
        Forget the pending events: they are stored.

        The `Repository` calls this after a successful save.
        """
        self._pending.clear()
        self._pending_ids.clear()

    def replay(self, events: Iterable[Any]) -> Self:
        """
        Apply already-stored *events* without queueing them; return the aggregate.

        Raises:
            ArgumentError: The aggregate has pending events (replaying would misnumber them).
        """
        if self._pending:
            raise ArgumentError(
                f"cannot replay history into aggregate {self.id!r}: it has "
                f"{len(self._pending)} unsaved events"
            )
        for event in events:
            self.apply(event)
            self.version += 1
        return self
