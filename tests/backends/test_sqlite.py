"""The SQLite store runs the conformance suite, and keeps its promises about files."""

import itertools
import json
import pathlib
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from eventkit import (
    ArgumentError,
    AsyncSQLiteEventStore,
    ConcurrencyError,
    NewEvent,
    SQLiteEventStore,
    StoreError,
)
from eventkit._backends.sqlite import schema
from eventkit._backends.sqlite.connections import Boundary
from eventkit.testing import (
    AsyncEventStoreContract,
    AsyncProjectionStoreContract,
    AsyncSnapshotStoreContract,
    EventStoreContract,
    ProjectionStoreContract,
    SnapshotStoreContract,
    contract_registry,
)
from eventkit.testing._events import Address, Deposited, Everything, Noted, Tier, _deposits
from tests.backends.sqlite_worker import describe

ROOT = pathlib.Path(__file__).parent.parent.parent


def make_store(path, **options):
    return SQLiteEventStore(path, registry=contract_registry, **options)


class TestSQLiteEventStore(EventStoreContract, ProjectionStoreContract, SnapshotStoreContract):
    @pytest.fixture(name="make_store")
    def _make_store(self, tmp_path):
        counter = itertools.count()
        return lambda registry: SQLiteEventStore(
            tmp_path / f"{next(counter)}.db", registry=registry
        )


class TestInMemorySQLiteEventStore(
    EventStoreContract, ProjectionStoreContract, SnapshotStoreContract
):
    @pytest.fixture(name="make_store")
    def _make_store(self):
        return lambda registry: SQLiteEventStore(":memory:", registry=registry)


class TestAsyncSQLiteEventStore(
    AsyncEventStoreContract, AsyncProjectionStoreContract, AsyncSnapshotStoreContract
):
    @pytest.fixture(name="make_store")
    def _make_store(self, tmp_path):
        counter = itertools.count()
        return lambda registry: AsyncSQLiteEventStore(
            tmp_path / f"{next(counter)}.db", registry=registry
        )


class TestAsyncInMemorySQLiteEventStore(
    AsyncEventStoreContract, AsyncProjectionStoreContract, AsyncSnapshotStoreContract
):
    @pytest.fixture(name="make_store")
    def _make_store(self):
        return lambda registry: AsyncSQLiteEventStore(":memory:", registry=registry)


@pytest.fixture(name="path")
def _path(tmp_path):
    return tmp_path / "events.db"


@pytest.fixture(name="store")
def _store(path):
    with make_store(path) as store:
        yield store


def start_worker(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.backends.sqlite_worker", *map(str, args)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def hold_write_lock(path, seconds, started):
    """Hold SQLite's write lock on *path* from another connection for *seconds*."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    started.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


class TestFiles:
    def test_events_survive_closing_and_reopening(self, path):
        """A store reopened on the same file reads what was appended before closing."""
        with make_store(path) as store:
            store.append("s", _deposits(1, 2))
        with make_store(path) as store:
            assert [r.event for r in store.read_stream("s")] == _deposits(1, 2)

    def test_a_file_written_by_one_process_reads_back_exactly_in_another(self, path):
        """Another process reads every field of every event exactly as it was written."""
        events = [
            NewEvent(Deposited(Decimal("12345678901234567890.000000000000000000001"))),
            NewEvent(Noted("naïve 😀 \x00 end"), metadata={"correlation_id": "c-1"}),
            NewEvent(
                Everything(
                    amount=Decimal("-0.5"),
                    reference=uuid.UUID(int=2**128 - 1),
                    at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
                    tier=Tier.SILVER,
                    tags=frozenset({"😀"}),
                    pair=(-(2**63), 2**63),
                    address=Address("Rue du Nord 1", date(1999, 12, 31)),
                )
            ),
        ]
        with make_store(path) as store:
            store.append("a", events[:2])
            store.append("b", events[2:])
            written = [describe(recorded) for recorded in store.read_all()]
        output = subprocess.run(
            [sys.executable, "-m", "tests.backends.sqlite_worker", "dump", str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert json.loads(output) == json.loads(json.dumps(written))
        assert [row[7] for row in written] == [repr(new.event) for new in events]

    def test_a_path_in_a_missing_folder_raises_naming_it(self, tmp_path):
        """A file in a folder that does not exist is refused with StoreError naming both."""
        missing = tmp_path / "no-such-folder" / "events.db"
        with pytest.raises(StoreError, match=r"folder .*no-such-folder.* does not exist") as info:
            make_store(missing)
        assert str(missing) in str(info.value)

    def test_a_file_that_is_not_a_database_raises_store_error(self, path):
        """A file that is not SQLite is refused with StoreError naming it."""
        path.write_bytes(b"not a database at all, just some text " * 100)
        with pytest.raises(StoreError, match=r"events\.db"):
            make_store(path)

    def test_a_folder_as_the_path_raises_store_error(self, tmp_path):
        """A path that is a folder, not a file, raises StoreError naming it."""
        with pytest.raises(StoreError, match="unable to open") as info:
            make_store(tmp_path)
        assert str(tmp_path) in str(info.value)

    def test_a_clashing_table_is_left_alone(self, path):
        """A table of the store's name that is not the store's makes opening fail cleanly."""
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE eventkit_events (x)")
        conn.commit()
        with pytest.raises(StoreError, match="already exists"):
            make_store(path)
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        conn.close()
        assert tables == [("eventkit_events",)]

    def test_the_schema_version_is_stored(self, store, path):
        """The file records the schema version its tables were created at."""
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT value FROM eventkit_meta").fetchall() == [
            (str(schema.SCHEMA_VERSION),)
        ]
        conn.close()

    def test_a_file_from_a_newer_release_is_refused(self, path):
        """Tables at a newer schema version raise StoreError naming both versions."""
        make_store(path).close()
        conn = sqlite3.connect(path)
        conn.execute("UPDATE eventkit_meta SET value = '99'")
        conn.commit()
        conn.close()
        newest = schema.SCHEMA_VERSION
        with pytest.raises(StoreError, match=f"schema version 99, newer than version {newest}"):
            make_store(path)

    def test_migrations_are_numbered_one_by_one(self):
        """Migration n brings a file to version n, so a file at version k runs the rest."""
        assert [m.version for m in schema.MIGRATIONS] == list(range(1, len(schema.MIGRATIONS) + 1))

    def test_the_file_is_in_wal_mode_with_the_chosen_durability(self, path):
        """The file is switched to WAL, and the writer uses the chosen synchronous level."""
        with make_store(path, synchronous="NORMAL") as store:
            writer = store._writer
            assert writer.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert writer.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        with make_store(path) as store:
            assert store._writer.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


class TestReadOnly:
    @pytest.fixture(name="read_only_path")
    def _read_only_path(self, path):
        with make_store(path) as store:
            store.append("s", _deposits(1, 2))
        path.chmod(0o444)
        yield path
        path.chmod(0o644)

    def test_a_read_only_file_opens_for_reading(self, read_only_path):
        """A file marked read-only is opened read-only, and reads work."""
        with make_store(read_only_path) as store:
            assert (store.read_only, [r.event for r in store.read_all()]) == (
                True,
                _deposits(1, 2),
            )

    def test_appending_to_a_read_only_store_raises_and_changes_nothing(self, read_only_path):
        """An append to a read-only store raises StoreError saying so; nothing is stored."""
        with make_store(read_only_path) as store:
            with pytest.raises(StoreError, match="read-only: cannot append to stream 's'"):
                store.append("s", _deposits(3))
            assert store.head_position() == 2

    def test_read_only_can_be_asked_for(self, store, path):
        """read_only=True opens a writable file for reading only."""
        store.append("s", _deposits(1))
        with make_store(path, read_only=True) as reader:
            with pytest.raises(StoreError, match="read-only"):
                reader.append("s", _deposits(2))
            assert reader.stream_version("s") == 1

    def test_a_transaction_on_a_read_only_store_raises(self, read_only_path):
        """transaction() on a read-only store raises StoreError."""
        with make_store(read_only_path) as store, pytest.raises(StoreError, match="read-only"):
            store.transaction().__enter__()

    def test_a_missing_file_cannot_be_opened_read_only(self, path):
        """read_only=True on a file that does not exist raises StoreError naming it."""
        with pytest.raises(StoreError, match=r"events\.db.*no such file"):
            make_store(path, read_only=True)

    def test_a_read_only_file_without_tables_raises(self, path):
        """A read-only file without the store's tables raises StoreError naming the prefix."""
        sqlite3.connect(path).close()
        with pytest.raises(StoreError, match="has no event tables with prefix 'eventkit_'"):
            make_store(path, read_only=True)


class TestOptions:
    @pytest.mark.parametrize(
        "prefix", ["x; DROP TABLE eventkit_events; --", "1abc", "a-b", "é", "a" * 65]
    )
    def test_an_unsafe_table_prefix_is_refused(self, path, prefix):
        """A prefix that is not a plain identifier raises ValueError before any SQL runs."""
        with pytest.raises(ValueError, match="table_prefix"):
            make_store(path, table_prefix=prefix)
        assert not path.exists()

    def test_a_table_prefix_that_is_not_a_string_is_refused(self, path):
        """A prefix of another type raises TypeError."""
        with pytest.raises(TypeError, match="table_prefix"):
            make_store(path, table_prefix=3)

    def test_stores_with_different_prefixes_share_a_file_apart(self, path):
        """Two prefixes in one file are two independent stores."""
        with make_store(path, table_prefix="a_") as a, make_store(path, table_prefix="") as b:
            a.append("s", _deposits(1))
            b.append("s", _deposits(2, 3))
            assert (a.stream_version("s"), b.stream_version("s")) == (1, 2)

    @pytest.mark.parametrize(
        ("option", "value"),
        [("synchronous", "OFF"), ("busy_timeout", -1), ("busy_timeout", "5")],
    )
    def test_invalid_options_are_refused(self, path, option, value):
        """An invalid durability level or busy timeout raises ValueError naming it."""
        with pytest.raises(ValueError, match=option):
            make_store(path, **{option: value})

    def test_an_empty_path_is_refused(self):
        """An empty path raises ValueError instead of making a throwaway database."""
        with pytest.raises(ValueError, match=":memory:"):
            make_store("")

    def test_an_in_memory_store_cannot_be_read_only(self):
        """read_only=True with ':memory:' is refused."""
        with pytest.raises(ValueError, match="read-only"):
            make_store(":memory:", read_only=True)

    def test_the_tracer_sees_the_sql(self, path):
        """The tracer is given each statement the store runs."""
        statements = []
        with make_store(path, tracer=statements.append) as store:
            store.append("s", _deposits(1))
        assert "BEGIN IMMEDIATE" in statements
        assert any(sql.startswith("INSERT INTO eventkit_events") for sql in statements)

    def test_repr_names_the_file_and_durability(self, store, path):
        """The repr shows the path and the synchronous level, or that it is closed."""
        assert repr(store) == f"<SQLiteEventStore {str(path)!r} (synchronous=FULL)>"
        store.close()
        assert repr(store) == f"<SQLiteEventStore {str(path)!r} (closed)>"

    def test_the_settings_are_readable(self, path):
        """path, synchronous and read_only report how the store was opened."""
        with make_store(path, synchronous="NORMAL") as store:
            assert (store.path, store.synchronous, store.read_only) == (
                str(path),
                "NORMAL",
                False,
            )


class TestCallersConnection:
    def test_a_store_runs_on_a_callers_connection_and_leaves_it_open(self, path):
        """A store made from a connection uses it, and close() does not close it."""
        conn = sqlite3.connect(path, check_same_thread=False)
        with make_store(conn) as store:
            store.append("s", _deposits(1))
            assert store.path == str(path)
        assert conn.execute("SELECT count(*) FROM eventkit_events").fetchone() == (1,)
        conn.close()

    def test_the_tracer_sees_the_sql_on_a_callers_connection(self):
        """A tracer given with a caller's connection is installed on it."""
        statements = []
        conn = sqlite3.connect(":memory:")
        make_store(conn, tracer=statements.append).stream_version("s")
        conn.close()
        assert any("max(version)" in sql for sql in statements)

    def test_a_closed_connection_is_refused(self):
        """A connection that is already closed raises StoreError."""
        conn = sqlite3.connect(":memory:")
        conn.close()
        with pytest.raises(StoreError, match="cannot use the SQLite connection"):
            make_store(conn)

    def test_a_connection_to_a_newer_schema_is_refused_and_left_open(self, path):
        """A caller's connection to tables of a newer release raises, and stays usable."""
        make_store(path).close()
        conn = sqlite3.connect(path)
        newer = str(schema.SCHEMA_VERSION + 1)
        conn.execute("UPDATE eventkit_meta SET value = ?", (newer,))
        conn.commit()
        with pytest.raises(StoreError, match="newer"):
            make_store(conn)
        assert conn.execute("SELECT value FROM eventkit_meta").fetchone() == (newer,)
        conn.close()

    def test_a_connection_inside_a_transaction_is_refused(self, path):
        """A connection with an open transaction raises ValueError at once."""
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(ValueError, match="inside a transaction"):
            make_store(conn)
        conn.close()

    def test_an_append_while_the_caller_left_a_transaction_open_raises(self):
        """If the caller leaves a transaction open on the connection, appends say so."""
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        with make_store(conn) as store:
            conn.execute("CREATE TABLE t (x)")
            conn.execute("INSERT INTO t VALUES (1)")
            with pytest.raises(StoreError, match="did not begin"):
                store.append("s", _deposits(1))
        conn.close()

    def test_a_read_only_store_on_a_connection_refuses_appends(self, path):
        """read_only=True on a connection makes the store refuse appends."""
        make_store(path).close()
        conn = sqlite3.connect(path)
        with make_store(conn, read_only=True) as store, pytest.raises(StoreError):
            store.append("s", _deposits(1))
        conn.close()


class TestTransaction:
    def test_the_blocks_writes_commit_together(self, store, path):
        """Statements in the block are committed when it ends."""
        with store.transaction() as conn:
            conn.execute("CREATE TABLE balances (id TEXT PRIMARY KEY, amount TEXT)")
            conn.execute("INSERT INTO balances VALUES ('a', '10')")
        other = sqlite3.connect(path)
        assert other.execute("SELECT * FROM balances").fetchall() == [("a", "10")]
        other.close()

    def test_an_exception_rolls_the_block_back_and_propagates(self, store):
        """When the block raises, its writes are undone and the exception is unchanged."""
        with store.transaction() as conn:
            conn.execute("CREATE TABLE t (x)")

        def fail():
            with store.transaction() as conn:
                conn.execute("INSERT INTO t VALUES (1)")
                raise KeyError("boom")

        with pytest.raises(KeyError, match="boom"):
            fail()
        with store.transaction() as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)

    def test_appends_from_other_threads_wait_for_it(self, store):
        """An append from another thread waits until the block commits, then succeeds."""
        results = []
        with store.transaction():
            thread = threading.Thread(target=lambda: results.append(store.append("s", [])))
            thread.start()
            thread.join(0.2)
            waited = thread.is_alive()
        thread.join()
        assert (waited, len(results)) == (True, 1)

    def test_appends_from_other_processes_wait_for_it(self, store, path):
        """Another process's append waits for the block's write lock, then succeeds."""
        with store.transaction():
            worker = start_worker("append", path, 1, 1, 1, "NORMAL")
            assert worker.stdout.readline() == "ready\n"
            worker.stdin.write("go\n")
            worker.stdin.flush()
            time.sleep(0.3)
            waited = worker.poll() is None
        output, _ = worker.communicate(timeout=60)
        assert (waited, len(json.loads(output)["won"])) == (True, 1)

    def test_appending_inside_the_block_on_the_same_thread_raises(self, store):
        """An append inside this thread's block would deadlock: it raises StoreError."""
        with store.transaction(), pytest.raises(StoreError, match="inside this thread"):
            store.append("s", _deposits(1))
        assert store.head_position() == 0

    def test_committing_inside_the_block_raises(self, store):
        """Ending the transaction inside the block is reported when the block ends."""
        with (
            pytest.raises(StoreError, match="committed or rolled back inside"),
            store.transaction() as conn,
        ):
            conn.execute("COMMIT")

    def test_closing_inside_the_block_raises(self, store):
        """close() inside the block raises StoreError instead of deadlocking."""
        with store.transaction(), pytest.raises(StoreError, match="cannot close"):
            store.close()

    def test_reads_on_an_in_memory_store_work_inside_the_block(self):
        """On the single connection of an in-memory store, reads inside the block run."""
        with make_store(":memory:") as store:
            store.append("s", _deposits(1))
            with store.transaction():
                assert store.stream_version("s") == 1


class TestErrors:
    def test_a_unique_violation_at_the_boundary_is_a_store_error(self):
        """The boundary translates without guessing: conflicts are decided by the store."""
        with pytest.raises(StoreError, match="IntegrityError") as info, Boundary("x.db"):
            raise sqlite3.IntegrityError("UNIQUE constraint failed")
        assert isinstance(info.value.__cause__, sqlite3.IntegrityError)

    def test_other_driver_errors_become_store_errors(self):
        """Any other sqlite3 error becomes StoreError naming the store, driver error chained."""
        with (
            pytest.raises(StoreError, match=r"'x\.db': OperationalError: disk I/O") as info,
            Boundary("x.db"),
        ):
            raise sqlite3.OperationalError("disk I/O error")
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)

    def test_a_lone_surrogate_in_data_reads_back_exactly(self, store):
        """A lone surrogate, which UTF-8 cannot hold, is stored escaped and read back as itself."""
        store.append("s", [NewEvent(Noted("a\ud800b"), metadata={"k\udfff": "\ud83d"})])
        (recorded,) = store.read_stream("s")
        assert (recorded.event, dict(recorded.metadata)) == (
            Noted("a\ud800b"),
            {"k\udfff": "\ud83d"},
        )

    def test_a_stream_id_with_a_lone_surrogate_is_refused(self, store):
        """A stream id no UTF-8 database can hold raises ArgumentError; nothing is stored."""
        with pytest.raises(ArgumentError, match="surrogate"):
            store.append("s\ud800", [Noted("ok")])
        assert store.head_position() == 0

    def test_appending_nothing_opens_no_transaction(self, path):
        """append_many of no appends returns no results without touching the file."""
        statements = []
        with make_store(path, tracer=statements.append) as store:
            statements.clear()
            assert (store.append_many([]), statements) == ([], [])

    def test_a_closed_store_raises_store_error(self, store):
        """Using a closed store raises StoreError saying it is closed."""
        store.close()
        with pytest.raises(StoreError, match="closed"):
            store.append("s", _deposits(1))
        with pytest.raises(StoreError, match="closed"):
            store.stream_version("s")

    def test_huge_bounds_read_as_no_bound(self, store):
        """Versions, positions and limits beyond SQLite's integers read as unbounded."""
        store.append("s", _deposits(1, 2))
        huge = 2**70
        assert len(store.read_stream("s", to_version=huge, limit=huge)) == 2
        assert list(store.read_all(after_position=huge)) == []


class TestLocking:
    def test_an_append_waits_for_another_connections_write(self, store, path):
        """An append waits out another connection's write transaction, then succeeds."""
        started = threading.Event()
        holder = threading.Thread(target=hold_write_lock, args=(path, 0.3, started))
        holder.start()
        started.wait()
        result = store.append("s", _deposits(1))
        holder.join()
        assert result.version == 1

    def test_a_lock_held_too_long_raises_store_error_not_a_driver_error(self, path):
        """Past the busy timeout and retries, an append raises StoreError, writing nothing."""
        started = threading.Event()
        with make_store(path, busy_timeout=0.01) as store:
            holder = threading.Thread(target=hold_write_lock, args=(path, 0.5, started))
            holder.start()
            started.wait()
            with pytest.raises(StoreError, match="locked by another connection") as info:
                store.append("s", _deposits(1))
            holder.join()
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
            assert store.head_position() == 0


class TestReaders:
    def test_a_burst_of_readers_leaves_a_few_connections_open(self, path):
        """Readers open connections as needed; after a burst only a few stay open."""
        readers = 12
        barrier = threading.Barrier(readers)

        def tracer(sql):
            if sql.startswith("SELECT max(version)"):
                barrier.wait(timeout=10)  # every reader holds its connection at once

        with make_store(path, tracer=tracer) as store:
            threads = [
                threading.Thread(target=store.stream_version, args=("s",)) for _ in range(readers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(store._readers._idle) == 8


class TestReadAll:
    def test_no_read_transaction_is_held_between_pages(self, store, path):
        """While a caller pauses in a read_all loop, a full WAL checkpoint can still run."""
        for start in range(0, 2500, 500):
            store.append(f"s{start}", _deposits(*range(start, start + 500)))
        iterator = store.read_all()
        next(iterator)
        store.append("late", _deposits(1))
        checkpointer = sqlite3.connect(path)
        busy, _, _ = checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        checkpointer.close()
        assert busy == 0
        assert len(list(iterator)) == 2500

    @pytest.mark.parametrize("types", [1, 2])
    def test_the_event_type_filter_reads_an_index(self, store, types):
        """A filtered read_all searches the (event_type, position) index, not the table."""
        sql = store._sql.read_all_of(types)
        plan = store._writer.execute(f"EXPLAIN QUERY PLAN {sql}", [""] * types + [0, 1])
        assert "USING INDEX eventkit_events_type" in " ".join(row[3] for row in plan)


class TestRecordedAt:
    def test_recorded_at_never_decreases_along_positions(self, store):
        """Threads appending at once get recorded_at times in position order."""

        def work(n):
            for _ in range(50):
                store.append(f"s{n}", [Noted("x")])

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        times = [recorded.recorded_at for recorded in store.read_all()]
        assert times == sorted(times)


class TestConcurrentWriters:
    """Many writers on one file: versions stay gapless and positions follow commit order."""

    def check_log(self, path, wins):
        with make_store(path, read_only=True) as store:
            log = list(store.read_all())
            per_stream = {}
            for recorded in log:
                per_stream.setdefault(recorded.stream_id, []).append(recorded.version)
            assert all(
                versions == list(range(1, len(versions) + 1)) for versions in per_stream.values()
            )
            assert len(log) == len(wins)
            positions = [recorded.position for recorded in log]
            assert positions == sorted(set(positions))
            stored = {(r.stream_id, r.version, r.position, r.event.text) for r in log}
            assert stored == {tuple(win) for win in wins}

    def test_processes_appending_to_overlapping_streams(self, path):
        """4 processes x 500 appends with expected versions: every stream stays consistent."""
        make_store(path).close()
        workers = [start_worker("append", path, n, 500, 8, "NORMAL") for n in range(4)]
        for worker in workers:
            assert worker.stdout.readline() == "ready\n"
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = [json.loads(worker.communicate(timeout=120)[0]) for worker in workers]
        wins = [win for report in reports for win in report["won"]]
        assert sum(len(r["won"]) + r["lost"] for r in reports) == 2000
        for report in reports:  # one process's appends commit one after another
            positions = [position for _, _, position, _ in report["won"]]
            assert positions == sorted(positions)
        self.check_log(path, wins)

    def test_threads_appending_to_overlapping_streams(self, store, path):
        """4 threads x 500 appends with expected versions on one store: all consistent."""
        wins, lost = [], []

        def work(worker):
            for n in range(500):
                stream_id = f"stream-{(worker * 7 + n) % 8}"
                version = store.stream_version(stream_id)
                try:
                    result = store.append(
                        stream_id, [Noted(f"{worker}-{n}")], expected_version=version
                    )
                except ConcurrencyError:
                    lost.append(1)
                else:
                    wins.append((stream_id, result.version, result.positions[0], f"{worker}-{n}"))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(wins) + len(lost) == 2000
        self.check_log(path, wins)


class TestReader:
    @pytest.fixture(name="balances")
    def _balances(self, store):
        with store.transaction() as conn:
            conn.execute("CREATE TABLE balances (id TEXT PRIMARY KEY, amount INTEGER)")
            conn.execute("INSERT INTO balances VALUES ('a', 1)")
        return store

    def test_the_reader_sees_the_read_models_tables(self, balances):
        """Tables a projection keeps in the file can be queried through reader()."""
        with balances.reader() as conn:
            assert conn.execute("SELECT id, amount FROM balances").fetchall() == [("a", 1)]

    def test_the_reader_sees_one_snapshot_however_many_commits_follow(self, balances):
        """Every query in the block sees the database as it was when the block began."""
        with balances.reader() as conn:
            before = conn.execute("SELECT amount FROM balances").fetchall()
            with balances.transaction() as writer:
                writer.execute("UPDATE balances SET amount = 2")
            balances.append("s", _deposits(1))
            during = conn.execute("SELECT amount FROM balances").fetchall()
            events = conn.execute("SELECT count(*) FROM eventkit_events").fetchone()
        with balances.reader() as conn:
            after = conn.execute("SELECT amount FROM balances").fetchall()
        assert (before, during, events, after) == ([(1,)], [(1,)], (0,), [(2,)])

    def test_writes_through_the_reader_fail(self, balances):
        """The reader's connection is query-only: a write raises and changes nothing."""
        with balances.reader() as conn, pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("UPDATE balances SET amount = 9")
        with balances.reader() as conn:
            assert conn.execute("SELECT amount FROM balances").fetchall() == [(1,)]

    def test_the_readers_connection_can_write_again_after_the_block(self, balances):
        """The pooled connection leaves the block as it came: not query-only, no transaction."""
        with balances.reader() as conn:
            pass
        assert (conn.in_transaction, conn.execute("PRAGMA query_only").fetchone()) == (False, (0,))

    def test_the_reader_does_not_hold_up_appends_from_other_threads(self, balances):
        """On a file, an append from another thread completes while a reader block is open."""
        results = []
        with balances.reader():
            thread = threading.Thread(target=lambda: results.append(balances.append("s", [])))
            thread.start()
            thread.join(5)
            finished = not thread.is_alive()
        assert (finished, len(results)) == (True, 1)

    def test_an_exception_in_the_block_propagates_unchanged(self, balances):
        """The block's own errors are not translated, as in transaction()."""
        with pytest.raises(KeyError, match="boom"), balances.reader():
            raise KeyError("boom")

    def test_a_reader_on_an_in_memory_store_works(self):
        """An in-memory store reads through its one connection."""
        with make_store(":memory:") as store:
            store.append("s", _deposits(1))
            with store.reader() as conn:
                assert conn.execute("SELECT count(*) FROM eventkit_events").fetchone() == (1,)

    def test_a_reader_inside_this_threads_transaction_on_one_connection_raises(self):
        """On a single connection, a reader inside the thread's own transaction is refused."""
        with (
            make_store(":memory:") as store,
            store.transaction(),
            pytest.raises(StoreError, match=r"inside this thread's store\.transaction"),
        ):
            store.reader().__enter__()

    def test_a_reader_on_a_closed_store_raises(self, store):
        """reader() on a closed store raises StoreError."""
        store.close()
        with pytest.raises(StoreError, match="closed"):
            store.reader().__enter__()

    def test_a_read_only_store_has_a_reader(self, balances, path):
        """A store opened read-only reads its read models through reader() too."""
        with make_store(path, read_only=True) as reader, reader.reader() as conn:
            assert conn.execute("SELECT count(*) FROM balances").fetchone() == (1,)
