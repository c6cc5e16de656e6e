"""Stores named by URL: open_store, and how URLs are read and shown."""

import pytest

from eventkit import (
    AsyncInMemoryEventStore,
    AsyncSQLiteEventStore,
    EventRegistry,
    InMemoryEventStore,
    PostgresEventStore,
    SQLiteEventStore,
    open_store,
)
from eventkit._urls import parse_store_url


class TestParse:
    @pytest.mark.parametrize(
        ("url", "backend", "target"),
        [
            ("sqlite:///bank.db", "sqlite", "bank.db"),
            ("sqlite:////var/lib/bank.db", "sqlite", "/var/lib/bank.db"),
            ("sqlite:///my%20data/bank.db", "sqlite", "my data/bank.db"),
            ("sqlite:///:memory:", "sqlite", ":memory:"),
            ("memory://", "memory", ""),
            ("postgresql://app@db/bank", "postgresql", "postgresql://app@db/bank"),
            ("postgres://app@db/bank", "postgresql", "postgres://app@db/bank"),
        ],
    )
    def test_each_form_names_its_backend_and_target(self, url, backend, target):
        """Each URL form is read as its backend and the file or server it names."""
        parsed = parse_store_url(url)
        assert (parsed.backend, parsed.target) == (backend, target)

    def test_postgres_keeps_the_servers_parameters_and_takes_its_own(self):
        """schema and table_prefix are the store's; every other parameter is the server's."""
        parsed = parse_store_url(
            "postgresql://app@db/bank?schema=ledger&sslmode=require&table_prefix=ek_"
        )
        assert (parsed.target, parsed.options) == (
            "postgresql://app@db/bank?sslmode=require",
            {"schema": "ledger", "table_prefix": "ek_"},
        )

    def test_a_password_is_masked_where_the_url_is_shown(self):
        """The shown URL masks the password, in the authority and in the parameters."""
        parsed = parse_store_url("postgresql://app:s%40cret@db/bank?password=other")
        assert parsed.shown == "postgresql://app:***@db/bank?password=***"

    def test_scrub_masks_the_password_in_any_text(self):
        """Text that quotes the password, encoded or not, comes back masked."""
        parsed = parse_store_url("postgresql://app:s%40cret@db/bank")
        assert parsed.scrub("s%40cret and s@cret") == "*** and ***"

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("", "a store URL is needed"),
            ("bank.db", "for an SQLite file write sqlite:///bank.db"),
            ("mysql://app:pw@db/x", "unknown kind of store 'mysql' in mysql://app:***@db/x"),
            ("sqlite://host/bank.db", "an sqlite URL names a file, not a host"),
            ("sqlite:///", "an sqlite URL needs a file"),
            ("sqlite:///x.db?mode=ro", "unknown parameter 'mode'"),
            ("sqlite:///x.db?table_prefix=a&table_prefix=b", "'table_prefix' is given twice"),
            ("memory://somewhere", "a memory:// URL takes no host"),
        ],
    )
    def test_a_bad_url_raises_value_error_saying_why(self, url, message):
        """A URL that names no store raises ValueError with the reason, password masked."""
        with pytest.raises(ValueError, match=message.replace("*", r"\*").replace("?", r"\?")):
            parse_store_url(url)

    def test_a_non_string_raises_type_error(self):
        """A URL must be a string."""
        with pytest.raises(TypeError, match="a store URL is a string"):
            parse_store_url(b"sqlite:///x.db")


class TestOpenStore:
    def test_sqlite_opens_the_file_with_the_urls_table_prefix(self, tmp_path):
        """An SQLite URL opens SQLiteEventStore on that file, its tables under the prefix."""
        path = tmp_path / "bank.db"
        with open_store(f"sqlite:///{path}?table_prefix=ek_", registry=EventRegistry()) as store:
            assert (type(store), store.path, store._prefix) == (SQLiteEventStore, str(path), "ek_")

    def test_options_go_to_the_constructor(self, tmp_path):
        """Keyword options reach the store's constructor."""
        url = f"sqlite:///{tmp_path / 'bank.db'}"
        with open_store(url, synchronous="NORMAL", registry=EventRegistry()) as store:
            assert store.synchronous == "NORMAL"

    def test_an_option_given_twice_is_refused(self, tmp_path):
        """An option named both in the URL and as a keyword raises ValueError."""
        with pytest.raises(ValueError, match="'table_prefix' is given both"):
            open_store(f"sqlite:///{tmp_path / 'x.db'}?table_prefix=a_", table_prefix="b_")

    def test_memory_opens_the_in_memory_store(self):
        """memory:// opens InMemoryEventStore."""
        assert type(open_store("memory://")) is InMemoryEventStore

    @pytest.mark.parametrize(
        ("url", "expected"),
        [("memory://", AsyncInMemoryEventStore), ("sqlite:///:memory:", AsyncSQLiteEventStore)],
    )
    @pytest.mark.asyncio
    async def test_asynchronous_opens_the_async_store(self, url, expected):
        """asynchronous=True opens the async form of the store."""
        store = open_store(url, asynchronous=True)
        try:
            assert type(store) is expected
        finally:
            await store.close()

    def test_postgres_gets_the_schema_and_hides_the_password(self):
        """A PostgreSQL URL opens PostgresEventStore in its schema; its repr masks the password."""
        store = open_store("postgresql://app:hunter22@127.0.0.1:9/bank?schema=ledger")
        try:
            assert (type(store), store.schema) == (PostgresEventStore, "ledger")
            assert "hunter22" not in repr(store)
            assert "app:***@" in repr(store)
        finally:
            store.close()
