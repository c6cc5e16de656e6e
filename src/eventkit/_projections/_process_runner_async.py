"""
`AsyncProcessManagerRunner`: feeds process managers from the global log.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventkit._projections._checks import check_projection
from eventkit._projections._process import ProcessManager
from eventkit._projections._runner_async import AsyncRunnerBase
from eventkit.exceptions import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    from eventkit._projections._projection import Projection


class AsyncProcessManagerRunner(AsyncRunnerBase):
    """
    Feeds process managers with the store's events: catches them up, then follows new ones.

    The projection runner's machinery, for `ProcessManager` handlers that append events:
    batches read after each manager's checkpoint, each applied in one store transaction
    in which the handler's appends and the moved checkpoint commit together (or roll
    back together); one runner per manager at a time, with hot standbys; `status`,
    `wait_for`, error policies and dead letters. There is no rebuild or replay: a
    manager's effects are events, which must not be appended twice.

    Run it in the foreground (`run_until_caught_up`) or in the background (`start` and
    `stop`, or an ``async with`` block), as `AsyncProjectionRunner`.

    Example:
        .. code-block:: python

            async with AsyncProcessManagerRunner(store, Transfers()) as runner:
                result = await store.append("transfer-1", [TransferRequested(...)])
                await runner.wait_for(result.positions[-1])   # its reactions are stored

    Args:
        store: The event store the managers read, keep their checkpoints in and append
            to (`AsyncInMemoryEventStore`, `AsyncSQLiteEventStore`,
            `AsyncPostgresEventStore`).
        managers: The process managers to run, with distinct names.
        batch_size: The most events handled in one transaction.
        poll_interval: Seconds between looks at the store for new events and for lock
            takeovers; appends through this store object wake the runner at once.

    Raises:
        ArgumentTypeError: *store* keeps no projection checkpoints, or a manager is not
            a `ProcessManager`.
        ArgumentError: No managers, two with one name, or a bad name, version,
            *batch_size* or *poll_interval*.
        UnknownEventType: A class in a manager's ``event_types`` is not registered.

    .. versionadded:: 0.1.0
    """

    _kind = "process manager"

    @property
    def managers(self) -> tuple[ProcessManager, ...]:
        """The process managers this runner feeds, in the order given."""
        return tuple(
            slot.projection
            for slot in self._slots.values()
            if isinstance(slot.projection, ProcessManager)
        )

    def _take(self, projection: Projection) -> Projection:
        if not isinstance(projection, ProcessManager):
            raise ArgumentTypeError(
                f"expected a ProcessManager instance, got {projection!r} (run projections "
                "with a ProjectionRunner)"
            )
        checked = check_projection(projection)
        if checked.version != 1:
            raise ArgumentError(
                f"process manager {checked.name!r}: version must stay 1, got "
                f"{checked.version!r}; a process manager is never rebuilt (its effects are "
                "events), so it has no versions"
            )
        if not isinstance(projection.from_beginning, bool):
            raise ArgumentTypeError(
                f"process manager {checked.name!r}: from_beginning must be True or False, "
                f"got {projection.from_beginning!r}"
            )
        return checked
