"""
Test helpers: the conformance suites of stores, and aggregate scenarios.

This module needs pytest and hypothesis (``pip install 'eventkit-es[test]'``); eventkit
itself never imports it.

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

.. versionadded:: 0.1.0
"""

from eventkit.testing._contract import EventStoreContract
from eventkit.testing._events import StoreFactory, contract_registry
from eventkit.testing._machine import EventStoreMachine
from eventkit.testing._projections import ProjectionStoreContract
from eventkit.testing._scenarios import AggregateScenario, given
from eventkit.testing._snapshots import SnapshotStoreContract

__all__ = [
    "AggregateScenario",
    "EventStoreContract",
    "EventStoreMachine",
    "ProjectionStoreContract",
    "SnapshotStoreContract",
    "StoreFactory",
    "contract_registry",
    "given",
]
