"""The in-memory store runs the conformance suites."""

import threading

import pytest

from eventkit import AsyncInMemoryEventStore, InMemoryEventStore
from eventkit.testing import (
    AsyncEventStoreContract,
    AsyncProjectionStoreContract,
    AsyncSnapshotStoreContract,
    EventStoreContract,
    ProjectionStoreContract,
    SnapshotStoreContract,
)


class TestInMemoryEventStore(EventStoreContract, ProjectionStoreContract, SnapshotStoreContract):
    @pytest.fixture(name="make_store")
    def _make_store(self):
        return lambda registry: InMemoryEventStore(registry=registry)

    def test_repr_counts_events(self, store):
        """The repr says how many events the store holds."""
        store.append("s", [])
        assert repr(store) == "<InMemoryEventStore with 0 events>"

    def test_a_lock_is_freed_when_its_thread_ends(self, store):
        """A lock whose holding thread ended without releasing it can be taken again."""
        taken = []
        thread = threading.Thread(target=lambda: taken.append(store.lock_projection("p")))
        thread.start()
        thread.join()
        assert taken[0] is not None
        assert store.lock_projection("p") is not None

    def test_handlers_get_no_connection(self, store):
        """Handlers of projections over the in-memory store receive None as their tx."""
        assert store.run_projection_transaction(lambda tx: tx.connection) is None

    def test_declared_tables_are_refused(self, store):
        """The in-memory store keeps no tables, and says so when asked to drop some."""
        with pytest.raises(ValueError, match="keeps no read-model tables"):
            store.run_projection_transaction(lambda tx: tx.drop_tables(["balances"]))


class TestAsyncInMemoryEventStore(
    AsyncEventStoreContract, AsyncProjectionStoreContract, AsyncSnapshotStoreContract
):
    @pytest.fixture(name="make_store")
    def _make_store(self):
        return lambda registry: AsyncInMemoryEventStore(registry=registry)
