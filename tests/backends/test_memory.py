"""The in-memory store runs the conformance suites."""

import pytest

from eventkit import InMemoryEventStore
from eventkit.testing import EventStoreContract, SnapshotStoreContract


class TestInMemoryEventStore(EventStoreContract, SnapshotStoreContract):
    @pytest.fixture(name="make_store")
    def _make_store(self):
        return lambda registry: InMemoryEventStore(registry=registry)

    def test_repr_counts_events(self, store):
        """The repr says how many events the store holds."""
        store.append("s", [])
        assert repr(store) == "<InMemoryEventStore with 0 events>"
