"""
Test helpers: the conformance suites of stores, and aggregate scenarios.

This module needs pytest, pytest-asyncio and hypothesis
(``pip install 'eventkit-es[test]'``); eventkit itself never imports it.

To check a backend, mix `EventStoreContract` and `SnapshotStoreContract` into a
test class and give it a ``make_store`` fixture: a callable that takes an
`EventRegistry` and returns a new, empty store using it. The suite closes every store
it makes.

.. code-block:: python

    from eventkit.testing import EventStoreContract, SnapshotStoreContract

    class TestMyEventStore(EventStoreContract, SnapshotStoreContract):
        @pytest.fixture(name="make_store")
        def _make_store(self, tmp_path):
            counter = itertools.count()
            return lambda registry: MyEventStore(tmp_path / f"{next(counter)}.db",
                                                 registry=registry)

Mix `ProjectionStoreContract` into the same class to check the backend's projection
storage (checkpoints, dead letters, locks) and a `ProjectionRunner` on it.

An async store is checked the same way, with `AsyncEventStoreContract`,
`AsyncSnapshotStoreContract` and `AsyncProjectionStoreContract`: the same tests, as
coroutines that pytest-asyncio runs. Its ``make_store`` fixture is a plain function
too (store constructors are plain functions), returning the async store. Both forms
come from one source, so they check the same behaviour.

.. versionadded:: 0.1.0
"""

from eventkit.testing._contract import EventStoreContract
from eventkit.testing._contract_async import AsyncEventStoreContract
from eventkit.testing._events import contract_registry
from eventkit.testing._machine import EventStoreMachine
from eventkit.testing._machine_async import AsyncEventStoreMachine
from eventkit.testing._projections import ProjectionStoreContract
from eventkit.testing._projections_async import AsyncProjectionStoreContract
from eventkit.testing._scenarios import AggregateScenario, given
from eventkit.testing._snapshots import SnapshotStoreContract
from eventkit.testing._snapshots_async import AsyncSnapshotStoreContract
from eventkit.testing._stores import StoreFactory
from eventkit.testing._stores_async import AsyncStoreFactory

__all__ = [
    "AggregateScenario",
    "AsyncEventStoreContract",
    "AsyncEventStoreMachine",
    "AsyncProjectionStoreContract",
    "AsyncSnapshotStoreContract",
    "AsyncStoreFactory",
    "EventStoreContract",
    "EventStoreMachine",
    "ProjectionStoreContract",
    "SnapshotStoreContract",
    "StoreFactory",
    "contract_registry",
    "given",
]
