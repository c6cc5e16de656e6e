"""Every backend accepts the same stream ids, and answers the same about them."""

import pytest
from hypothesis import given

from eventkit import (
    ArgumentError,
    ArgumentTypeError,
    EventKitError,
    InMemoryEventStore,
    SQLiteEventStore,
)
from eventkit.backends import check_stream_id
from eventkit.testing import contract_registry
from eventkit.testing._events import _deposits
from tests.strategies import awkward_ids, stream_id_candidates


def both_stores():
    return [
        InMemoryEventStore(registry=contract_registry),
        SQLiteEventStore(":memory:", registry=contract_registry),
    ]


def outcome(action, *args):
    """Return what *action* returns, or the type of the EventKitError it raises."""
    try:
        return action(*args)
    except EventKitError as error:
        return type(error)


def appended_version(store, stream_id):
    return store.append(stream_id, _deposits(1)).version


def streams_read(store, stream_id):
    return [recorded.stream_id for recorded in store.read_stream(stream_id)]


class TestStreamIds:
    @given(stream_id_candidates)
    def test_every_backend_accepts_and_refuses_the_same_ids(self, stream_ids):
        """An id one backend stores, every backend stores and reads back exactly."""
        answers = []
        for store in both_stores():
            appended = [outcome(appended_version, store, s) for s in stream_ids]
            read = [outcome(streams_read, store, s) for s in stream_ids]
            versions = [store.stream_version(s) for s in stream_ids]
            answers.append((appended, read, versions, list(store.stream_ids())))
            store.close()
        assert answers[0] == answers[1]

    @given(stored=stream_id_candidates, prefix=awkward_ids)
    def test_stream_ids_by_prefix_agree_for_any_prefix(self, stored, prefix):
        """stream_ids(prefix=...) lists the same ids on every backend, whatever the prefix."""
        listed = []
        for store in both_stores():
            for stream_id in stored:
                outcome(appended_version, store, stream_id)
            listed.append(list(store.stream_ids(prefix=prefix)))
            store.close()
        assert listed[0] == listed[1]
        assert listed[0] == sorted(s for s in listed[0] if s.startswith(prefix))

    @pytest.mark.parametrize("stream_id", ["a\x00b", "\ud800", "x\udfffy"])
    def test_an_id_with_nul_or_a_lone_surrogate_is_an_argument_error(self, stream_id):
        """NUL (PostgreSQL's text cannot hold it) and lone surrogates (UTF-8 cannot) are refused."""
        with pytest.raises(ArgumentError, match="NUL or a lone surrogate"):
            check_stream_id(stream_id)

    @pytest.mark.parametrize("stream_id", ["\x01\x1f\n\t", "😀𠀀", " padded ", "a" * 500])
    def test_control_characters_and_non_bmp_text_are_accepted(self, stream_id):
        """Anything else that is a non-empty string is a stream id."""
        assert check_stream_id(stream_id) == stream_id

    def test_an_id_that_is_not_a_string_is_an_argument_type_error(self):
        """A stream id of another type raises ArgumentTypeError, a TypeError."""
        with pytest.raises(ArgumentTypeError, match="stream_id"):
            check_stream_id(42)

    @pytest.mark.parametrize("name", ["\ud800", "contract.Deposited\x00"])
    def test_a_type_name_no_backend_stores_selects_nothing_everywhere(self, name):
        """read_all by a type name that cannot be stored yields nothing, on every backend."""
        for store in both_stores():
            store.append("s", _deposits(1))
            assert list(store.read_all(event_types=[name])) == []
            store.close()
