"""
A hypothesis state machine that checks an event store against a plain-Python model.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

import itertools
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from eventkit._acompat import ACaller
from eventkit._envelope import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion, NewEvent
from eventkit.exceptions import ConcurrencyError
from eventkit.testing._events import Deposited, Noted, contract_registry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from eventkit._records import AppendResult
    from eventkit.testing._stores_async import AsyncStoreFactory

T = TypeVar("T")

# -- the stateful test --------------------------------------------------------------------

_STREAMS = ("a", "b", "c")
_EXPECTATIONS = ("exact", "stale", "ahead", "any", "no_stream", "stream_exists")
_events = st.lists(
    st.one_of(
        st.integers(-(10**6), 10**6).map(lambda n: Deposited(Decimal(n) / 100)),
        st.text(max_size=8).map(Noted),
    ),
    max_size=4,
)


@attrs.frozen
class _ModelEvent:
    stream_id: str
    version: int
    position: int
    event_id: uuid.UUID
    event: Any


async def _collect(items: AsyncIterator[T]) -> list[T]:
    return [item async for item in items]


class AsyncEventStoreMachine(RuleBasedStateMachine):
    """
    A hypothesis state machine that checks a store against a plain-Python model.

    It appends random batches with every kind of expected version, retries earlier
    appends, and reads streams and the global log with random ranges, comparing each
    answer with a model made of lists (not another store). Use `for_store`:

    .. code-block:: python

        TestMyStoreMachine = AsyncEventStoreMachine.for_store(make_my_store).TestCase

    .. versionadded:: 0.1.0
    """

    make_store: ClassVar[AsyncStoreFactory]

    def __init__(self) -> None:
        super().__init__()
        # Rules are plain methods: this makes each store call, to its end (on an event loop
        # of its own, for an async store), and returns its result.
        self.caller = ACaller()
        self.store = type(self).make_store(contract_registry)
        self.streams: dict[str, list[_ModelEvent]] = {name: [] for name in _STREAMS}
        self.log: list[_ModelEvent] = []
        self.last_append: tuple[str, list[NewEvent], ExpectedVersion, AppendResult] | None = None

    @classmethod
    def for_store(cls, make_store: AsyncStoreFactory) -> type[AsyncEventStoreMachine]:
        """Return a subclass of this machine that tests stores made by *make_store*."""
        return type(f"{cls.__name__}ForStore", (cls,), {"make_store": staticmethod(make_store)})

    def teardown(self) -> None:
        """Close the store under test."""
        try:
            self.caller.call(self.store.close)
        finally:
            self.caller.close()

    @rule(
        stream_id=st.sampled_from(_STREAMS),
        events=_events,
        expectation=st.sampled_from(_EXPECTATIONS),
    )
    def append(self, stream_id: str, events: list[Any], expectation: str) -> None:
        """Append a batch with some expected version; it must succeed exactly when valid."""
        actual = len(self.streams[stream_id])
        expected, valid = self._expectation(expectation, actual)
        batch = [NewEvent(e) for e in events]
        if not valid:
            with pytest.raises(ConcurrencyError) as info:
                self.caller.call(self.store.append, stream_id, batch, expected_version=expected)
            assert info.value.actual_version == actual
            return
        result = self.caller.call(self.store.append, stream_id, batch, expected_version=expected)
        assert result.version == actual + len(batch)
        assert len(result.positions) == len(batch)
        last = self.log[-1].position if self.log else 0
        assert all(a < b for a, b in itertools.pairwise((last, *result.positions)))
        for offset, (new, position) in enumerate(zip(batch, result.positions, strict=True)):
            stored = _ModelEvent(stream_id, actual + offset + 1, position, new.event_id, new.event)
            self.streams[stream_id].append(stored)
            self.log.append(stored)
        if batch:
            self.last_append = (stream_id, batch, expected, result)

    @staticmethod
    def _expectation(kind: str, actual: int) -> tuple[ExpectedVersion, bool]:
        choices: dict[str, tuple[ExpectedVersion, bool]] = {
            "exact": (actual, True),
            "stale": (actual - 1, False) if actual > 0 else (NO_STREAM, True),
            "ahead": (actual + 1, False),
            "any": (ANY, True),
            "no_stream": (NO_STREAM, actual == 0),
            "stream_exists": (STREAM_EXISTS, actual > 0),
        }
        return choices[kind]

    @precondition(lambda self: self.last_append is not None)
    @rule()
    def retry_last_append(self) -> None:
        """Re-appending the last successful batch stores nothing and returns its result."""
        assert self.last_append is not None
        stream_id, batch, expected, result = self.last_append
        again = self.caller.call(self.store.append, stream_id, batch, expected_version=expected)
        assert again == result

    @rule(
        stream_id=st.sampled_from(_STREAMS),
        from_version=st.none() | st.integers(1, 12),
        to_version=st.none() | st.integers(1, 12),
        backwards=st.booleans(),
        limit=st.none() | st.integers(0, 6),
    )
    def read_stream(
        self,
        stream_id: str,
        from_version: int | None,
        to_version: int | None,
        backwards: bool,  # noqa: FBT001 (a hypothesis-drawn argument)
        limit: int | None,
    ) -> None:
        """A stream read returns exactly the model's events for that range."""
        events = self.streams[stream_id]
        if backwards:
            high = len(events) if from_version is None else min(from_version, len(events))
            expected = [e for e in reversed(events) if (to_version or 1) <= e.version <= high]
        else:
            high = len(events) if to_version is None else to_version
            expected = [e for e in events if (from_version or 1) <= e.version <= high]
        expected = expected[:limit]
        actual = self.caller.call(
            self.store.read_stream,
            stream_id,
            from_version=from_version,
            to_version=to_version,
            backwards=backwards,
            limit=limit,
        )
        assert [(r.version, r.position, r.event_id, r.event) for r in actual] == [
            (e.version, e.position, e.event_id, e.event) for e in expected
        ]

    @rule(
        skip=st.integers(0, 30),
        limit=st.none() | st.integers(0, 10),
        only=st.none() | st.sampled_from([("contract.Deposited",), ("contract.Noted",)]),
    )
    def read_all(self, skip: int, limit: int | None, only: tuple[str, ...] | None) -> None:
        """read_all after a position returns exactly the model's log from there."""
        after = self.log[skip - 1].position if 0 < skip <= len(self.log) else 0
        expected = [
            e
            for e in self.log
            if e.position > after
            and (only is None or contract_registry.by_class(type(e.event)).name in only)
        ][:limit]
        records = self.store.read_all(after_position=after, limit=limit, event_types=only)
        actual = self.caller.call(_collect, records)
        assert [(r.stream_id, r.version, r.position, r.event) for r in actual] == [
            (e.stream_id, e.version, e.position, e.event) for e in expected
        ]

    @invariant()
    def versions_and_head_agree(self) -> None:
        """Every stream's version and the head position match the model."""
        for stream_id, events in self.streams.items():
            assert self.caller.call(self.store.stream_version, stream_id) == len(events)
        head = self.caller.call(self.store.head_position)
        assert head == (self.log[-1].position if self.log else 0)
