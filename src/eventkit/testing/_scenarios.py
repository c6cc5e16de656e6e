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
        # Explicit raises rather than assert statements: python -O must not turn a
        # scenario into a test that checks nothing.
        if self._error is not None:
            raise AssertionError(f"the command raised {self._error!r}") from self._error
        recorded = list(self.aggregate.pending_events)
        if recorded != list(expected):
            raise AssertionError(f"recorded {recorded!r}, expected {list(expected)!r}")
        return self.aggregate

    def then_raises(self, error: type[Exception], match: str | None = None) -> Exception:
        """
        Assert that the command raised *error* and recorded nothing; return the error.

        Args:
            error: The exception class expected (subclasses match too).
            match: A plain substring the error's message must contain (not a regular
                expression, unlike ``pytest.raises``).
        """
        if not isinstance(self._error, error):
            raise AssertionError(f"expected {error.__name__}, got {self._error!r}")  # noqa: TRY004 (a failed test, not a bad argument)
        if match is not None and match not in str(self._error):
            raise AssertionError(f"{match!r} not in {str(self._error)!r}")
        if self.aggregate.pending_events:
            raise AssertionError("a refused command recorded events")
        return self._error


def given(aggregate: Aggregate, *history: Any) -> AggregateScenario:
    """
    Start a scenario from *aggregate* after replaying *history* into it.

    .. versionadded:: 0.1.0
    """
    return AggregateScenario(aggregate.replay(history))
