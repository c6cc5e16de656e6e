"""The SQLite store runs the conformance suite, and keeps its promises about files."""

import itertools

import pytest

from eventkit._backends.sqlite import SQLiteEventStore
from eventkit.testing import EventStoreContract


class TestSQLiteEventStore(EventStoreContract):
    @pytest.fixture(name="make_store")
    def _make_store(self, tmp_path):
        counter = itertools.count()
        return lambda registry: SQLiteEventStore(
            tmp_path / f"{next(counter)}.db", registry=registry
        )


class TestInMemorySQLiteEventStore(EventStoreContract):
    @pytest.fixture(name="make_store")
    def _make_store(self):
        return lambda registry: SQLiteEventStore(":memory:", registry=registry)
