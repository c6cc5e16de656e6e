"""The SQLite store keeps snapshots in its file, and lists streams from its index."""

import logging
import pathlib
import re
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from eventkit import ArgumentError, Repository, SnapshotWarning, SQLiteEventStore, StoreError
from eventkit._backends.sqlite import schema
from eventkit.backends import SnapshotRecord
from tests.bank import Account, registry

ROOT = pathlib.Path(__file__).parent.parent.parent


def make_store(path, **options):
    return SQLiteEventStore(path, registry=registry, **options)


def snapshot(stream_id="account-1", version=2, **changes):
    record = SnapshotRecord(
        stream_id,
        "Account",
        version,
        uuid.uuid4(),
        1,
        '{"id": "1"}',
        datetime(2024, 1, 1, tzinfo=UTC),
        0.125,
    )
    return record._replace(**changes)


def open_account(accounts, account_id, *deposits):
    account = Account(account_id)
    account.open("ada")
    accounts.save(account)
    for amount in deposits:
        account.deposit(Decimal(amount))
        accounts.save(account)
    return account


@pytest.fixture(name="path")
def _path(tmp_path):
    return tmp_path / "events.db"


@pytest.fixture(name="store")
def _store(path):
    with make_store(path) as store:
        yield store


class TestSnapshotTable:
    def test_snapshots_survive_closing_and_reopening(self, path):
        """A snapshot saved before closing is loaded after reopening the file."""
        record = snapshot()
        with make_store(path) as store:
            store.save_snapshot(record)
        with make_store(path) as store:
            assert store.load_snapshot("account-1") == record

    def test_a_file_at_schema_version_1_gains_the_snapshot_table(self, path):
        """Opening a file from before snapshots adds their table and keeps the events."""
        with make_store(path) as store:
            open_account(Repository(store, Account), "1", 5)
        conn = sqlite3.connect(path)
        for migration in schema.MIGRATIONS[1:]:  # back to version 1: drop the later tables
            for table in re.findall(r"CREATE TABLE \{prefix\}(\w+)", "".join(migration.statements)):
                conn.execute(f"DROP TABLE eventkit_{table}")
        conn.execute("UPDATE eventkit_meta SET value = '1'")
        conn.commit()
        conn.close()
        with make_store(path) as store:
            store.save_snapshot(snapshot())
            assert (store.stream_version("1"), store.load_snapshot("account-1").version) == (2, 2)
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT value FROM eventkit_meta").fetchone() == (
            str(schema.SCHEMA_VERSION),
        )
        conn.close()

    def test_stores_with_different_prefixes_keep_snapshots_apart(self, path):
        """Each table prefix has its own snapshots."""
        with make_store(path, table_prefix="a_") as a, make_store(path, table_prefix="b_") as b:
            a.save_snapshot(snapshot())
            assert (a.load_snapshot("account-1") is not None, b.load_snapshot("account-1")) == (
                True,
                None,
            )

    def test_a_read_only_store_reads_snapshots_but_cannot_save_them(self, store, path):
        """A read-only store loads snapshots; saving one raises StoreError saying so."""
        record = snapshot()
        store.save_snapshot(record)
        with make_store(path, read_only=True) as reader:
            with pytest.raises(StoreError, match="read-only: cannot save a snapshot"):
                reader.save_snapshot(snapshot(version=9))
            assert reader.load_snapshot("account-1") == record

    def test_a_state_with_a_lone_surrogate_is_refused(self, store):
        """A state no UTF-8 database can hold raises ArgumentError; the stored one stays."""
        record = snapshot()
        store.save_snapshot(record)
        with pytest.raises(ArgumentError, match="surrogate"):
            store.save_snapshot(snapshot(state='{"memo": "\ud800"}'))
        assert store.load_snapshot("account-1") == record

    def test_a_closed_store_refuses_snapshots(self, store):
        """Saving or loading a snapshot on a closed store raises StoreError."""
        store.close()
        with pytest.raises(StoreError, match="closed"):
            store.save_snapshot(snapshot())
        with pytest.raises(StoreError, match="closed"):
            store.load_snapshot("account-1")

    def test_a_corrupt_row_raises_when_read(self, store, path):
        """A row whose event id is not 16 bytes cannot be read back as a record."""
        store.save_snapshot(snapshot())
        conn = sqlite3.connect(path)
        conn.execute("UPDATE eventkit_snapshots SET event_id = x'00'")
        conn.commit()
        conn.close()
        with pytest.raises(ValueError, match="16"):
            store.load_snapshot("account-1")


class TestStreamIds:
    def test_listing_searches_the_index_once_per_stream(self, store):
        """stream_ids walks the (stream_id, version) index; it never scans the event log."""
        sql = store._sql.stream_ids
        plan = " | ".join(
            row[3]
            for row in store._writer.execute(f"EXPLAIN QUERY PLAN {sql}", ("", "", 0, "", 5, 0, ""))
        )
        assert "SEARCH eventkit_events USING COVERING INDEX eventkit_events_stream" in plan
        assert "SCAN eventkit_events" not in plan

    def test_a_read_only_store_lists_streams(self, store, path):
        """Listing streams needs no write access."""
        open_account(Repository(store, Account, stream_prefix="account-"), "1")
        with make_store(path, read_only=True) as reader:
            assert list(reader.stream_ids(prefix="account-")) == ["account-1"]


class TestRepositoryOnSQLite:
    def test_loading_from_snapshots_equals_replaying(self, path):
        """On SQLite too, snapshot plus tail equals a full replay, at the head and before."""
        with make_store(path) as store:
            snapshots = Repository(store, Account, snapshot_every=10)
            open_account(snapshots, "1", *range(1, 36))
        with make_store(path) as store:
            snapshots = Repository(store, Account, snapshot_every=10)
            replays = Repository(store, Account)
            assert store.load_snapshot("1").version == 30
            assert [snapshots.load("1", at_version=v) for v in (36, 31, 30, 29)] == [
                replays.load("1", at_version=v) for v in (36, 31, 30, 29)
            ]

    def test_a_corrupt_snapshot_row_is_ignored_with_a_warning(self, store, path, caplog):
        """A snapshot row SQLite cannot turn into a record is logged and warned of; load replays."""
        accounts = Repository(store, Account, snapshot_every=2)
        open_account(accounts, "1", 1, 2, 3)
        conn = sqlite3.connect(path)
        conn.execute("UPDATE eventkit_snapshots SET taken_at = 'yesterday'")
        conn.commit()
        conn.close()
        with (
            caplog.at_level(logging.WARNING, logger="eventkit.snapshots"),
            pytest.warns(SnapshotWarning, match="stream '1': ignoring a snapshot"),
        ):
            loaded = accounts.load("1")
        assert (loaded.balance, loaded.version) == (6, 4)
        assert "snapshot that cannot be read" in caplog.text

    def test_a_process_killed_between_append_and_snapshot_leaves_a_loadable_aggregate(self, path):
        """A process that dies after appending, before its snapshot, leaves a good file."""
        with make_store(path) as store:
            open_account(Repository(store, Account, snapshot_every=2), "1", 1, 2, 3)
        # The policy runs after the append and before the snapshot write: dying there is
        # the crash in question.
        script = (
            "import os, sys\n"
            "from decimal import Decimal\n"
            "from eventkit import Repository, SQLiteEventStore\n"
            "from tests.bank import Account, registry\n"
            "store = SQLiteEventStore(sys.argv[1], registry=registry)\n"
            "accounts = Repository(store, Account, snapshot_policy=lambda a, e: os._exit(3))\n"
            "account = accounts.load('1')\n"
            "account.deposit(Decimal(10))\n"
            "account.deposit(Decimal(20))\n"
            "accounts.save(account)\n"
        )
        died = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, check=False)
        with make_store(path) as store:
            accounts = Repository(store, Account, snapshot_every=2)
            loaded = accounts.load("1")
            assert (died.returncode, store.load_snapshot("1").version) == (3, 4)
            assert (loaded.version, loaded.balance) == (6, 36)
            assert loaded == Repository(store, Account).load("1")
