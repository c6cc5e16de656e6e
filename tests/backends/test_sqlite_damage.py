"""A damaged SQLite file: each kind of damage raises a typed error naming where it is."""

import sqlite3
import uuid
from decimal import Decimal

import pytest

from eventkit import (
    NewEvent,
    Repository,
    SerializationError,
    SnapshotWarning,
    SQLiteEventStore,
    StoreError,
    UnknownEventType,
)
from tests.bank import Account, AccountOpened, MoneyDeposited, registry


@pytest.fixture(name="path")
def _path(tmp_path):
    return tmp_path / "bank.db"


@pytest.fixture(name="store")
def _store(path):
    with SQLiteEventStore(path, registry=registry) as store:
        store.append("account-1", [AccountOpened("ada"), MoneyDeposited(Decimal(5))])
        store.append("account-2", [NewEvent(AccountOpened("bob"), metadata={"by": "cli"})])
        yield store


def damage(path, sql, *params):
    """Run *sql* on the file from a connection of its own, as an operator would."""
    conn = sqlite3.connect(path)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def read_error(store, stream_id="account-1"):
    """Return the error raised by reading *stream_id*, and by reading everything."""
    with pytest.raises(SerializationError) as by_stream:
        store.read_stream(stream_id)
    with pytest.raises(SerializationError) as by_position:
        list(store.read_all())
    return by_stream.value, by_position.value


class TestDamagedEventRows:
    def test_an_event_id_that_is_not_16_bytes_is_named(self, store, path):
        """An event id of another length raises, naming stream, version and position."""
        damage(path, "UPDATE eventkit_events SET event_id = x'0011' WHERE position = 2")
        for error in read_error(store):
            assert (error.stream_id, error.version, error.position) == ("account-1", 2, 2)
            assert "event_id is 2 bytes long, not 16" in str(error)

    def test_an_event_id_stored_as_text_is_named(self, store, path):
        """An event id that is text, not bytes, raises naming the column."""
        damage(
            path,
            "UPDATE eventkit_events SET event_id = ? WHERE position = 2",
            str(uuid.UUID(int=1)),
        )
        for error in read_error(store):
            assert "column event_id holds str" in str(error)
            assert error.position == 2

    @pytest.mark.parametrize(
        "value", ["yesterday", "2024-01-01T10:00:00", 1_700_000_000, b"\x00\x01"]
    )
    def test_a_recorded_at_that_is_not_an_aware_timestamp_is_named(self, store, path, value):
        """A recording time that is not an ISO timestamp with an offset raises, naming the row."""
        damage(path, "UPDATE eventkit_events SET recorded_at = ? WHERE position = 1", value)
        for error in read_error(store):
            assert (error.stream_id, error.version, error.position) == ("account-1", 1, 1)
            assert "recorded_at" in str(error)

    @pytest.mark.parametrize("value", ["two", 2.5, b"\x02"])
    def test_a_version_that_is_not_an_integer_is_named(self, store, path, value):
        """A version of another type is read (never skipped) and raises, naming the row."""
        damage(path, "UPDATE eventkit_events SET version = ? WHERE position = 2", value)
        for error in read_error(store):
            assert (error.stream_id, error.position) == ("account-1", 2)
            assert "column version holds" in str(error)

    def test_a_damaged_version_makes_stream_version_raise(self, store, path):
        """The stream's version is not reported as text: it raises, naming the stream."""
        damage(path, "UPDATE eventkit_events SET version = 'two' WHERE position = 2")
        with pytest.raises(SerializationError, match=r"'account-1'.*version column holds str"):
            store.stream_version("account-1")

    def test_a_damaged_version_stops_an_append_to_its_stream(self, store, path):
        """An append to a stream whose versions are damaged raises and stores nothing."""
        damage(path, "UPDATE eventkit_events SET version = 'two' WHERE position = 2")
        with pytest.raises(SerializationError, match="'account-1'"):
            store.append("account-1", [MoneyDeposited(Decimal(1))])
        assert store.head_position() == 3

    def test_a_version_changed_to_leave_a_gap_is_named(self, store, path):
        """A stream whose versions jump is refused, naming the missing version."""
        damage(path, "UPDATE eventkit_events SET version = 9 WHERE position = 1")
        with pytest.raises(SerializationError, match="version 1 is missing") as info:
            store.read_stream("account-1")
        assert (info.value.stream_id, info.value.version) == ("account-1", 1)

    def test_a_schema_version_that_is_not_an_integer_is_named(self, store, path):
        """A schema version of another type raises, naming the row."""
        damage(path, "UPDATE eventkit_events SET schema_version = 'v1' WHERE position = 3")
        (error, _) = read_error(store, "account-2")
        assert (error.stream_id, error.version, error.position) == ("account-2", 1, 3)

    def test_data_stored_as_a_blob_is_named(self, store, path):
        """Data that is bytes rather than text raises, naming the row."""
        damage(path, "UPDATE eventkit_events SET data = CAST(data AS BLOB) WHERE position = 1")
        for error in read_error(store):
            assert (error.stream_id, error.version, error.position) == ("account-1", 1, 1)
            assert "stored data is not valid JSON: first argument must be a string" in str(error)

    def test_a_type_name_changed_to_an_unknown_one_is_named(self, store, path):
        """A type name no class claims raises UnknownEventType with the row's place."""
        damage(path, "UPDATE eventkit_events SET event_type = 'bank.Gone' WHERE position = 2")
        with pytest.raises(UnknownEventType) as info:
            store.read_stream("account-1")
        assert (info.value.stream_id, info.value.version, info.value.position) == (
            "account-1",
            2,
            2,
        )

    def test_a_type_name_changed_to_another_class_is_refused(self, store, path):
        """Data read as another registered class does not fit it: refused, not misread."""
        damage(
            path, "UPDATE eventkit_events SET event_type = 'bank.MoneyDeposited' WHERE position = 1"
        )
        both = r"missing key @ \$\.amount; unknown keys \['overdraft_limit', 'owner'\]"
        with pytest.raises(SerializationError, match=both):
            store.read_stream("account-1")


class TestDamagedMetadata:
    @pytest.mark.parametrize(
        ("text", "says"),
        [
            ('{"by": ', "not valid JSON|Expecting value"),
            ('["by", "cli"]', "must be a JSON object, got a JSON array"),
            ('{"by": 1}', "'by' is a JSON number"),
            ('{"by": null}', "'by' is a JSON null"),
            ("NaN", "NaN is not JSON"),
        ],
    )
    def test_metadata_of_the_wrong_shape_is_named(self, store, path, text, says):
        """Metadata that is not a JSON object of strings raises, naming the row."""
        damage(path, "UPDATE eventkit_events SET metadata = ? WHERE position = 3", text)
        with pytest.raises(SerializationError, match=says) as info:
            store.read_stream("account-2")
        assert (info.value.stream_id, info.value.version, info.value.position) == (
            "account-2",
            1,
            3,
        )
        assert "stored metadata is damaged" in str(info.value)


class TestDamagedSnapshotRows:
    @pytest.fixture(name="accounts")
    def _accounts(self, store):
        accounts = Repository(store, Account, stream_prefix="account-", snapshot_every=1)
        account = accounts.load("1")
        account.deposit(Decimal(7))
        accounts.save(account)
        return accounts

    @pytest.mark.parametrize(
        ("column", "value", "says"),
        [
            ("version", "three", "column version holds str"),
            ("version", 2.5, "column version holds float"),
            ("state", b"{}", "column state holds bytes"),
            ("aggregate_type", b"Account", "column aggregate_type holds bytes"),
            ("snapshot_version", "one", "column snapshot_version holds str"),
            ("event_id", b"\x01", "event_id is 1 bytes long, not 16"),
            ("taken_at", "today", "taken_at 'today' is not an ISO 8601 time"),
        ],
    )
    @pytest.mark.usefixtures("accounts")
    def test_a_damaged_column_raises_naming_the_stream(self, store, path, column, value, says):
        """load_snapshot of a row with a damaged column raises SerializationError naming it."""
        damage(path, f"UPDATE eventkit_snapshots SET {column} = ?", value)
        with pytest.raises(SerializationError, match=says) as info:
            store.load_snapshot("account-1")
        assert info.value.stream_id == "account-1"

    @pytest.mark.parametrize(
        ("column", "value"),
        [("version", "three"), ("state", '{"id": "1"'), ("event_id", b"\x01"), ("taken_at", "x")],
    )
    def test_a_damaged_snapshot_is_warned_of_and_the_load_replays(
        self, accounts, store, path, column, value
    ):
        """The repository replays over a damaged snapshot, warning; the next save replaces it."""
        replayed = Repository(store, Account, stream_prefix="account-").load("1")
        damage(path, f"UPDATE eventkit_snapshots SET {column} = ?", value)
        with pytest.warns(SnapshotWarning, match="'account-1'"):
            account = accounts.load("1")
        assert account == replayed
        account.deposit(Decimal(1))
        accounts.save(account)
        assert store.load_snapshot("account-1").version == account.version


class TestDamagedSchemaMarker:
    @pytest.mark.parametrize("value", ["three", "03", "-1", "0", "3.0", ""])
    def test_a_damaged_schema_version_is_refused_naming_the_file(self, store, path, value):
        """A schema marker that is not a version number raises StoreError naming the file."""
        damage(path, "UPDATE eventkit_meta SET value = ?", value)
        with pytest.raises(
            StoreError, match="schema version in table eventkit_meta is damaged"
        ) as info:
            SQLiteEventStore(path, registry=registry)
        assert str(path) in str(info.value)

    def test_a_damaged_schema_version_is_refused_when_opened_read_only(self, store, path):
        """Read-only opening checks the marker too."""
        damage(path, "UPDATE eventkit_meta SET value = 'x'")
        with pytest.raises(StoreError, match="damaged"):
            SQLiteEventStore(path, registry=registry, read_only=True)


class TestUndecodableText:
    def test_text_that_is_not_utf8_raises_a_store_error_naming_the_file(self, store, path):
        """Bytes that are not UTF-8 in a text column raise StoreError, not a driver error."""
        damage(path, "UPDATE eventkit_events SET data = CAST(x'ff' AS TEXT) WHERE position = 1")
        with pytest.raises(StoreError, match=r"bank\.db") as info:
            store.read_stream("account-1")
        assert isinstance(info.value.__cause__, sqlite3.Error)
