"""Everything eventkit raises is an EventKitError; argument errors are builtins' kin too."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

import eventkit
from eventkit import (
    ArgumentError,
    ArgumentTypeError,
    EventKitError,
    InMemoryEventStore,
    NewEvent,
    Projection,
    ProjectionRunner,
    Repository,
    RetryOnError,
    SerializationError,
    SnapshotWarning,
    SQLiteEventStore,
)
from eventkit.backends import SnapshotRecord
from tests.bank import Account, MoneyDeposited, registry


def memory():
    return InMemoryEventStore(registry=registry)


def _snapshot(**changes):
    record = SnapshotRecord(
        "s", "Account", 1, uuid.uuid4(), 1, "{}", datetime(2024, 1, 1, tzinfo=UTC), 0.0
    )
    return record._replace(**changes)


def _replay_with_pending():
    account = Account("1")
    account.open("ada")
    account.replay([])


class Nameless(Projection):
    name = " padded "

    def handle(self, recorded, tx):
        """Handle nothing: the projection is refused before it runs."""


class TestArgumentErrors:
    @pytest.mark.parametrize(
        "call",
        [
            lambda: memory().read_stream("s", from_version=0),
            lambda: memory().read_stream(""),
            lambda: memory().read_stream("a\x00b"),
            lambda: memory().append("s", [], expected_version=-1),
            lambda: memory().load_snapshot(""),
            lambda: list(memory().read_all(after_position=-1)),
            lambda: Repository(memory(), Account, snapshot_every=0),
            lambda: Repository(memory(), Account, snapshot_every=2, snapshot_policy=print),
            lambda: SQLiteEventStore(""),
            lambda: SQLiteEventStore(":memory:", synchronous="OFF"),
            lambda: SQLiteEventStore(":memory:", busy_timeout=-1),
            lambda: SQLiteEventStore(":memory:", table_prefix="1x"),
            lambda: RetryOnError(attempts=0),
            lambda: RetryOnError(delay=-1.0),
            lambda: ProjectionRunner(memory(), Nameless()),
            _replay_with_pending,
        ],
    )
    def test_an_invalid_value_raises_argument_error(self, call):
        """An argument's invalid value raises ArgumentError: a ValueError and an EventKitError."""
        with pytest.raises(ArgumentError) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, EventKitError)

    @pytest.mark.parametrize(
        "call",
        [
            lambda: memory().read_stream(42),
            lambda: memory().read_stream("s", limit="5"),
            lambda: memory().append("s", [], expected_version="1"),
            lambda: memory().save_snapshot("not a record"),
            lambda: memory().save_snapshot(_snapshot(state=b"{}")),
            lambda: NewEvent(MoneyDeposited(Decimal(1)), metadata={"n": 1}),
            lambda: NewEvent(MoneyDeposited(Decimal(1)), event_id="0" * 32),
            lambda: Repository(memory(), Account, snapshot_policy=3),
            lambda: SQLiteEventStore(":memory:", table_prefix=3),
            lambda: ProjectionRunner(memory(), object()),
            lambda: RetryOnError(then="park"),
        ],
    )
    def test_an_argument_of_the_wrong_type_raises_argument_type_error(self, call):
        """An argument of the wrong type raises ArgumentTypeError, a TypeError and EventKitError."""
        with pytest.raises(ArgumentTypeError) as info:
            call()
        assert isinstance(info.value, TypeError)
        assert isinstance(info.value, EventKitError)


class TestHierarchy:
    def test_every_error_eventkit_defines_is_an_eventkit_error(self):
        """The exceptions module holds one tree under EventKitError, and one warning."""
        errors = [getattr(eventkit.exceptions, name) for name in eventkit.exceptions.__all__]
        assert [e for e in errors if not issubclass(e, EventKitError)] == [SnapshotWarning]
        assert issubclass(SnapshotWarning, UserWarning)

    def test_serialization_errors_name_the_position_too(self):
        """A SerializationError's message names stream, version, position and type."""
        error = SerializationError("bad", stream_id="s", version=2, position=9, event_type="T")
        assert str(error) == "stream 's', version 2, position 9, event type 'T': bad"
        assert (error.stream_id, error.version, error.position, error.event_type) == (
            "s",
            2,
            9,
            "T",
        )
