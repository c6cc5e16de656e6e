"""The `Projection` base class: a read model folded from the global event log."""

from __future__ import annotations

import abc
import copy
from typing import TYPE_CHECKING, Any, Self

from eventkit._projections._policies import ErrorPolicy, StopOnError
from eventkit.exceptions import ArgumentError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from eventkit._envelope import RecordedEvent

STAGING_SUFFIX = "__rebuild"
"""Appended to table names (and the checkpoint name) while a rebuild builds its copy."""


class Projection(abc.ABC):
    """
    A read model built from recorded events: subclass it and implement `handle`.

    Set the class attributes, then give the projection to a `ProjectionRunner`:

    .. code-block:: python

        class Balances(Projection):
            name = "balances"
            version = 1                      # bump to rebuild the read model
            event_types = (MoneyDeposited, MoneyWithdrawn)
            tables = ("balances",)

            def setup(self, tx):
                tx.execute(self.sql("CREATE TABLE IF NOT EXISTS {balances} "
                                    "(id TEXT PRIMARY KEY, amount TEXT NOT NULL)"))

            def handle(self, recorded, tx):
                match recorded.event:
                    case MoneyDeposited(amount=amount):
                        ...

    *tx* is what the store's transaction offers: on SQLite the ``sqlite3.Connection``
    inside the transaction that also moves the checkpoint, so the read model gets
    every event exactly once; on the in-memory store ``None``, and the read model
    lives in the projection's own attributes, where an event may arrive again after
    a failure. Such handlers deduplicate by ``recorded.position``. See
    :doc:`/explanation/delivery-guarantees`.

    Attributes:
        name: The projection's stable name: its checkpoint, lock and dead letters are
            kept under it.
        version: The version of the read model's code. When a runner finds a read
            model built by an older version, it rebuilds it (see
            `ProjectionRunner.rebuild`) before going on.
        event_types: The event classes or type names the handler wants; the store
            filters by them. None (the default) means every event.
        tables: The read-model tables the projection owns, in backends that have
            tables. A rebuild builds them under other names (see `table`), then swaps
            them in; a replay drops them.
        error_policy: What to do when `handle` raises: `StopOnError` (the default),
            `RetryOnError` or `ParkOnError`.

    .. versionadded:: 0.1.0
    """

    name: str
    version: int = 1
    event_types: Sequence[type[Any] | str] | None = None
    tables: Sequence[str] = ()
    error_policy: ErrorPolicy = StopOnError()
    table_suffix: str = ""

    def table(self, name: str) -> str:
        """
        Return the name to write the table *name* under: itself, or its rebuild copy.

        Always build table names with this method or `sql` (and index names from table
        names) in `setup` and `handle`, so that a rebuild writes fresh tables while
        readers keep querying the old ones.

        Raises:
            ArgumentError: *name* is not in `tables`.
        """
        if name not in self.tables:
            raise ArgumentError(
                f"projection {self.name!r}: table {name!r} is not declared in its tables "
                f"{tuple(self.tables)!r}"
            )
        return name + self.table_suffix

    def sql(self, statement: str) -> str:
        """
        Return *statement* with each ``{name}`` of a table in `tables` replaced by `table`.

        Write a projection's SQL once, with table names in braces, and it targets the
        live tables or a rebuild's copies as appropriate:

        .. code-block:: python

            tx.execute(self.sql("UPDATE {balances} SET cents = ? WHERE id = ?"), (cents, id))

        Write a literal brace as ``{{`` or ``}}``.

        Raises:
            ArgumentError: *statement* names a table in braces that is not in `tables`.
        """
        names = {name: self.table(name) for name in self.tables}
        try:
            return statement.format_map(names)
        except KeyError as exc:
            raise ArgumentError(
                f"projection {self.name!r}: table {exc.args[0]!r} is not declared in its "
                f"tables {tuple(self.tables)!r}"
            ) from None

    def setup(self, tx: Any) -> None:  # noqa: B027 (an optional hook)
        """
        Create the read model, inside the transaction *tx*; by default nothing.

        It runs whenever a runner takes the projection on, and again after a rebuild's
        tables are swapped in (to create their indexes under their usual names), so
        it must be idempotent: ``CREATE TABLE IF NOT EXISTS``.
        """

    @abc.abstractmethod
    def handle(self, recorded: RecordedEvent[Any], tx: Any) -> None:
        """
        Apply one recorded event to the read model, inside the transaction *tx*.

        Raise to refuse the event: the projection's `error_policy` decides what
        happens next.
        """

    def teardown(self, tx: Any) -> None:  # noqa: B027 (an optional hook)
        """
        Remove read-model state that `tables` does not cover; by default nothing.

        A replay calls it (after dropping `tables`) to start from an empty read model.
        Projections that keep their read model in attributes clear it here.
        """

    def staged(self) -> Self:
        """
        Return the projection that a rebuild builds its fresh read model with.

        By default a shallow copy whose `table` names end in ``__rebuild``. A
        projection that keeps its read model in attributes returns a new, empty
        instance instead, and takes its state over in `adopt`.
        """
        clone = copy.copy(self)
        clone.table_suffix = STAGING_SUFFIX
        return clone

    def adopt(self, staged: Self) -> None:  # noqa: B027 (an optional hook)
        """
        Take over the read model a rebuild built with *staged*; by default nothing.

        Called once the rebuilt tables are swapped in and committed. A projection that
        keeps its read model in attributes copies *staged*'s attributes here.
        """
