"""Given / when / then scenarios for aggregates, with no store involved."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventkit._aggregate import Aggregate


class AggregateScenario:
    """
    A given / when / then test of one aggregate, with no store involved.

    Build one with `given`. ``when`` runs a command; ``then`` checks the events it
    recorded; ``then_raises`` checks that it refused.

    Example:
        .. code-block:: python

            (given(Account("acc-1"), AccountOpened("ada"), MoneyDeposited(Decimal(10)))
                .when(lambda account: account.withdraw(Decimal(4)))
                .then(MoneyWithdrawn(Decimal(4))))

    .. versionadded:: 0.1.0
    """

    def __init__(self, aggregate: Aggregate) -> None:
        self.aggregate = aggregate
        self._error: Exception | None = None

    def when(self, command: Callable[[Any], object]) -> AggregateScenario:
        """Run *command* on the aggregate, remembering a refusal for `then_raises`."""
        try:
            command(self.aggregate)
        except Exception as exc:  # noqa: BLE001 (kept for then_raises, re-raised by then)
            self._error = exc
        return self

    def then(self, *expected: Any) -> Aggregate:
        """Assert that the command recorded exactly *expected*; return the aggregate."""
        if self._error is not None:
            raise AssertionError(f"the command raised {self._error!r}") from self._error
        assert list(self.aggregate.pending_events) == list(expected), (
            f"recorded {list(self.aggregate.pending_events)!r}, expected {list(expected)!r}"
        )
        return self.aggregate

    def then_raises(self, error: type[Exception], match: str | None = None) -> Exception:
        """Assert that the command raised *error* and recorded nothing; return the error."""
        assert isinstance(self._error, error), f"expected {error.__name__}, got {self._error!r}"
        if match is not None:
            assert match in str(self._error), f"{match!r} not in {str(self._error)!r}"
        assert not self.aggregate.pending_events, "a refused command recorded events"
        return self._error


def given(aggregate: Aggregate, *history: Any) -> AggregateScenario:
    """
    Start a scenario from *aggregate* after replaying *history* into it.

    .. versionadded:: 0.1.0
    """
    return AggregateScenario(aggregate.replay(history))
