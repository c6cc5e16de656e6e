"""
The conformance suite of projection storage: checkpoints, dead letters, locks.

The async and the sync form of this module come from one source: the sync one is
generated from the async one (see ``tools/unasync.py``).
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import pytest

from eventkit._acompat import await_thread_event, is_async, run_concurrently
from eventkit._envelope import NO_STREAM
from eventkit._projection_store_async import AsyncProjectionStore
from eventkit._projections import (
    AsyncProcessManagerRunner,
    AsyncProjectionRunner,
    ParkOnError,
    ProcessManager,
    Projection,
    StopOnError,
)
from eventkit._records import Checkpoint, DeadLetter, RecordWrite
from eventkit.exceptions import ConcurrencyError, ProjectionError
from eventkit.testing._contract_async import AsyncEventStoreContract
from eventkit.testing._events import Deposited, Noted, _deposits

if TYPE_CHECKING:
    from eventkit._envelope import ExpectedVersion, RecordedEvent
    from eventkit._projections import ProcessContext
    from eventkit._records import AppendResult, EventRecord
    from eventkit._storage import ProjectionTransaction
    from eventkit._store_async import AsyncEventStore

# Bounded waits for the tests that race: generous, because CI machines are shared.
_WAIT = 10.0


def _letter(position: int, projection: str = "p", error: str = "ValueError: bad") -> DeadLetter:
    return DeadLetter(
        projection,
        position,
        "s",
        position,
        "contract.Deposited",
        error,
        1,
        datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
    )


class _Sums(Projection):
    """Sums deposits per stream in memory, skipping positions it has seen already."""

    name = "contract.sums"
    event_types = (Deposited,)

    def __init__(self, refuse: Decimal | None = None) -> None:
        self.sums: dict[str, Decimal] = {}
        self.seen: set[int] = set()
        self.refuse = refuse

    def handle(self, recorded: RecordedEvent[Any], tx: Any) -> None:  # noqa: ARG002 (in memory)
        match recorded.event:
            case Deposited(amount=amount) if amount == self.refuse:
                raise ValueError(f"refused {amount}")
            case Deposited(amount=amount) if recorded.position not in self.seen:
                self.seen.add(recorded.position)
                self.sums[recorded.stream_id] = self.sums.get(recorded.stream_id, 0) + amount


class AsyncProjectionStoreContract:
    """
    The behaviour every `AsyncProjectionStore` must have, as pytest tests.

    Mix into the same ``Test*`` class as `AsyncEventStoreContract`, which provides the
    ``make_store`` fixture. It checks the storage (checkpoints, dead letters, locks,
    transactions, append callbacks) and that a runner (`AsyncProjectionRunner`) works
    on the store.

    .. versionadded:: 0.1.0
    """

    # AsyncEventStoreContract's own fixture: each contract runs alone, and both together.
    _contract_store = AsyncEventStoreContract._contract_store  # noqa: SLF001 (shared fixture)

    @staticmethod
    def storage(store: AsyncEventStore) -> AsyncProjectionStore:
        """Return *store* as the projection storage it must also be."""
        assert isinstance(store, AsyncProjectionStore)
        return cast("AsyncProjectionStore", store)

    # -- checkpoints ------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_new_store_has_no_checkpoints(self, store: AsyncEventStore) -> None:
        """A new store keeps no checkpoints and no dead letters."""
        storage = self.storage(store)
        assert (await storage.projection_checkpoints(), await storage.dead_letters("p")) == ({}, [])

    @pytest.mark.asyncio
    async def test_committed_checkpoint_is_kept(self, store: AsyncEventStore) -> None:
        """A checkpoint saved in a transaction that commits is read back, with its version."""
        storage = self.storage(store)

        def body_1(tx: ProjectionTransaction) -> None:
            tx.save_checkpoint("p", Checkpoint(7, 2))

        await storage.run_projection_transaction(body_1)
        inside = await storage.run_projection_transaction(lambda tx: tx.checkpoint("p"))
        assert (await storage.projection_checkpoints(), inside) == ({"p": Checkpoint(7, 2)}, (7, 2))

    @pytest.mark.asyncio
    async def test_failed_transaction_keeps_nothing(self, store: AsyncEventStore) -> None:
        """An exception in the block rolls back checkpoints and dead letters alike."""
        storage = self.storage(store)

        def body_3(tx: ProjectionTransaction) -> None:
            tx.save_checkpoint("p", Checkpoint(1, 1))

        await storage.run_projection_transaction(body_3)

        async def fail() -> None:
            def body_4(tx: ProjectionTransaction) -> None:
                tx.save_checkpoint("p", Checkpoint(5, 1))
                tx.park(_letter(3))
                raise KeyError(3)

            await storage.run_projection_transaction(body_4)

        with pytest.raises(KeyError):
            await fail()
        assert (await storage.projection_checkpoints(), await storage.dead_letters("p")) == (
            {"p": Checkpoint(1, 1)},
            [],
        )

    @pytest.mark.asyncio
    async def test_a_transaction_sees_its_own_writes(self, store: AsyncEventStore) -> None:
        """Inside a transaction, a saved checkpoint reads back before the commit."""
        storage = self.storage(store)

        def body_5(tx: ProjectionTransaction) -> None:
            tx.save_checkpoint("p", Checkpoint(3, 1))
            assert tx.checkpoint("p") == Checkpoint(3, 1)
            assert tx.checkpoint("other") is None

        await storage.run_projection_transaction(body_5)

    @pytest.mark.asyncio
    async def test_forget_deletes_checkpoint_and_dead_letters(self, store: AsyncEventStore) -> None:
        """Forgetting removes one projection's checkpoint and dead letters, no other's."""
        storage = self.storage(store)

        def body_6(tx: ProjectionTransaction) -> None:
            for name in ("p", "q"):
                tx.save_checkpoint(name, Checkpoint(4, 1))
                tx.park(_letter(2, name))

        await storage.run_projection_transaction(body_6)

        def body_7(tx: ProjectionTransaction) -> None:
            tx.forget("p")

        await storage.run_projection_transaction(body_7)
        assert (await storage.projection_checkpoints(), await storage.dead_letters("p")) == (
            {"q": Checkpoint(4, 1)},
            [],
        )
        assert await storage.dead_letters("q") == [_letter(2, "q")]

    # -- dead letters -----------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_dead_letters_round_trip_in_position_order(self, store: AsyncEventStore) -> None:
        """Parked events come back field for field, ordered by position."""
        storage = self.storage(store)

        def body_8(tx: ProjectionTransaction) -> None:
            for position in (9, 2, 5):
                tx.park(_letter(position))

        await storage.run_projection_transaction(body_8)
        assert await storage.dead_letters("p") == [_letter(2), _letter(5), _letter(9)]

    @pytest.mark.asyncio
    async def test_parking_a_position_again_replaces_its_letter(
        self, store: AsyncEventStore
    ) -> None:
        """A second letter for the same projection and position replaces the first."""
        storage = self.storage(store)

        def body_9(tx: ProjectionTransaction) -> None:
            tx.park(_letter(2))

        await storage.run_projection_transaction(body_9)
        again = _letter(2, error="KeyError: 'x'")._replace(attempts=2)

        def body_10(tx: ProjectionTransaction) -> None:
            tx.park(again)

        await storage.run_projection_transaction(body_10)
        assert await storage.dead_letters("p") == [again]

    @pytest.mark.asyncio
    async def test_unpark_deletes_one_letter(self, store: AsyncEventStore) -> None:
        """Unparking removes the letter at one position; a missing one is harmless."""
        storage = self.storage(store)

        def body_11(tx: ProjectionTransaction) -> None:
            tx.park(_letter(2))
            tx.park(_letter(3))

        await storage.run_projection_transaction(body_11)

        def body_12(tx: ProjectionTransaction) -> None:
            tx.unpark("p", 2)
            tx.unpark("p", 99)

        await storage.run_projection_transaction(body_12)
        assert await storage.dead_letters("p") == [_letter(3)]

    @pytest.mark.asyncio
    async def test_move_projection_replaces_the_target(self, store: AsyncEventStore) -> None:
        """The target takes the source's checkpoint and letters; the source is gone."""
        storage = self.storage(store)

        def body_13(tx: ProjectionTransaction) -> None:
            tx.save_checkpoint("live", Checkpoint(10, 1))
            tx.park(_letter(4, "live"))
            tx.save_checkpoint("new", Checkpoint(12, 2))
            tx.park(_letter(6, "new"))

        await storage.run_projection_transaction(body_13)

        def body_14(tx: ProjectionTransaction) -> None:
            tx.move_projection("new", "live")

        await storage.run_projection_transaction(body_14)
        assert (await storage.projection_checkpoints(), await storage.dead_letters("live")) == (
            {"live": Checkpoint(12, 2)},
            [_letter(6, "live")],
        )
        assert await storage.dead_letters("new") == []

    @pytest.mark.asyncio
    async def test_dropping_or_replacing_no_tables_is_harmless(
        self, store: AsyncEventStore
    ) -> None:
        """drop_tables and replace_tables with nothing to do change nothing."""
        storage = self.storage(store)

        def body_15(tx: ProjectionTransaction) -> None:
            tx.save_checkpoint("p", Checkpoint(1, 1))
            tx.drop_tables([])
            tx.replace_tables([])

        await storage.run_projection_transaction(body_15)
        assert await storage.projection_checkpoints() == {"p": Checkpoint(1, 1)}

    @pytest.mark.asyncio
    async def test_exactly_once_is_a_bool(self, store: AsyncEventStore) -> None:
        """The store says whether handler writes commit with the checkpoint."""
        assert isinstance(self.storage(store).exactly_once, bool)

    # -- transactions and locks -------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_transactions_on_a_checkpoint_take_turns(self, store: AsyncEventStore) -> None:
        """Two transactions that move one checkpoint take turns: neither update is lost."""
        storage = self.storage(store)
        # Set in the first transaction, from whichever thread the store runs it in.
        inside = threading.Event()

        def advance(tx: ProjectionTransaction) -> None:
            stored = tx.checkpoint("p")
            position = 0 if stored is None else stored.position
            if not inside.is_set():
                inside.set()
                # The second transaction starts meanwhile; give it a moment to try.
                time.sleep(0.2)
            tx.save_checkpoint("p", Checkpoint(position + 1, 1))

        async def first() -> None:
            await storage.run_projection_transaction(advance)

        async def second() -> None:
            await await_thread_event(inside, _WAIT)
            await storage.run_projection_transaction(advance)

        await run_concurrently(first, second)
        assert await storage.projection_checkpoints() == {"p": Checkpoint(2, 1)}

    @pytest.mark.asyncio
    async def test_a_held_lock_is_refused(self, store: AsyncEventStore) -> None:
        """While one holder has a projection's lock, nobody else gets it."""
        storage = self.storage(store)
        lock = await storage.lock_projection("p")
        try:
            assert lock is not None
            assert await storage.lock_projection("p") is None
        finally:
            if lock is not None:
                await lock.release()

    @pytest.mark.asyncio
    async def test_a_released_lock_can_be_taken(self, store: AsyncEventStore) -> None:
        """Once released (twice is harmless), the lock can be taken again."""
        storage = self.storage(store)
        first = await storage.lock_projection("p")
        assert first is not None
        await first.release()
        await first.release()
        second = await storage.lock_projection("p")
        assert second is not None
        await second.release()

    @pytest.mark.asyncio
    async def test_locks_of_different_projections_are_independent(
        self, store: AsyncEventStore
    ) -> None:
        """Holding one projection's lock does not block another projection's."""
        storage = self.storage(store)
        first, second = await storage.lock_projection("p"), await storage.lock_projection("q")
        assert (first is not None, second is not None) == (True, True)
        for lock in (first, second):
            if lock is not None:
                await lock.release()

    @pytest.mark.asyncio
    async def test_on_append_calls_back_after_each_append(self, store: AsyncEventStore) -> None:
        """Subscribers hear of appends until they unsubscribe."""
        storage = self.storage(store)
        calls: list[object] = []

        def heard() -> None:
            if is_async():
                # A callback is plain code: it cannot await the store, so it only counts.
                calls.append("heard")
                return
            calls.append(store.head_position())  # committed already: the new head

        unsubscribe = storage.on_append(heard)
        first = await store.append("s", _deposits(1))
        second = await store.append("s", _deposits(2, 3))
        unsubscribe()
        await store.append("s", _deposits(4))
        # A store may also call back when it hears of appends made elsewhere (through
        # LISTEN, say): at least once per append, and never after unsubscribing.
        if is_async():
            assert len(calls) >= 2
            return
        heads = [first.positions[-1], second.positions[-1]]
        assert [head for head in heads if head in calls] == heads
        assert all(isinstance(c, int) and c <= second.positions[-1] for c in calls)

    # -- the runner on this store -----------------------------------------------------------

    @pytest.mark.asyncio
    async def test_runner_catches_up_to_the_fold(self, store: AsyncEventStore) -> None:
        """After catching up, the read model is the fold of the projection's events."""
        for n in range(1, 8):
            await store.append(f"s{n % 3}", [Deposited(Decimal(n)), Noted(str(n))])
        projection = _Sums()
        await AsyncProjectionRunner(store, projection, batch_size=3).run_until_caught_up()
        assert projection.sums == {"s1": Decimal(12), "s2": Decimal(7), "s0": Decimal(9)}

    @pytest.mark.asyncio
    async def test_runner_follows_appends_while_running(self, store: AsyncEventStore) -> None:
        """Events appended while the runner runs reach the read model within a bounded wait."""
        projection = _Sums()
        async with AsyncProjectionRunner(store, projection, poll_interval=0.05) as runner:
            result = await store.append("s", _deposits(5, 6))
            await runner.wait_for(result.positions[-1], timeout=_WAIT)
            assert projection.sums == {"s": Decimal(11)}

    @pytest.mark.asyncio
    async def test_stop_policy_leaves_the_checkpoint_before_the_event(
        self, store: AsyncEventStore
    ) -> None:
        """A failing event stops the projection just before it, naming the event."""
        positions = (await store.append("s", _deposits(1, 2, 3, 4))).positions
        runner = AsyncProjectionRunner(store, _Sums(refuse=Decimal(3)), batch_size=10)
        with pytest.raises(ProjectionError) as info:
            await runner.run_until_caught_up()
        assert (info.value.position, info.value.stream_id, info.value.version) == (
            positions[2],
            "s",
            3,
        )
        checkpoints = await self.storage(store).projection_checkpoints()
        # Just before the failing event: past the events before it, short of the event.
        assert positions[1] <= checkpoints["contract.sums"].position < positions[2]

    @pytest.mark.asyncio
    async def test_parked_events_can_be_listed_and_retried(self, store: AsyncEventStore) -> None:
        """A parked event is listed, the rest is applied, and a retry applies it later."""
        positions = (await store.append("s", _deposits(1, 2, 3))).positions
        projection = _Sums(refuse=Decimal(2))
        projection.error_policy = ParkOnError()
        runner = AsyncProjectionRunner(store, projection)
        await runner.run_until_caught_up()
        parked = [letter.position for letter in await runner.dead_letters("contract.sums")]
        projection.refuse = None
        assert (parked, await runner.retry_dead_letters("contract.sums")) == ([positions[1]], 1)
        assert (projection.sums, await runner.dead_letters("contract.sums")) == (
            {"s": Decimal(6)},
            [],
        )

    @pytest.mark.asyncio
    async def test_a_second_runner_stands_by_until_the_first_stops(
        self, store: AsyncEventStore
    ) -> None:
        """Only the lock holder applies events; the standby takes over when it stops."""
        first, second = _Sums(), _Sums()
        active = AsyncProjectionRunner(store, first, poll_interval=0.05)
        standby = AsyncProjectionRunner(store, second, poll_interval=0.05)
        async with active:
            await active.wait_for(0, timeout=_WAIT)
            standby.start()
            try:
                result = await store.append("s", _deposits(1))
                await active.wait_for(result.positions[-1], timeout=_WAIT)
                assert (first.sums, len(second.sums)) == ({"s": Decimal(1)}, 0)
            except BaseException:
                await standby.stop()
                raise
        try:
            result = await store.append("s", _deposits(2))
            await standby.wait_for(result.positions[-1], timeout=_WAIT)
        finally:
            await standby.stop()
        assert (first.sums, second.sums) == ({"s": Decimal(1)}, {"s": Decimal(2)})

    # -- appends inside a transaction (what process managers write through) ----------------

    @pytest.mark.asyncio
    async def test_appends_in_a_transaction_commit_with_it(self, store: AsyncEventStore) -> None:
        """Events appended through the transaction are stored when it commits, checkpoint too."""
        storage = self.storage(store)
        write = _write(store, "pm", [Noted("a"), Noted("b")], NO_STREAM)

        def body(tx: ProjectionTransaction) -> list[AppendResult]:
            results = tx.append([write])
            tx.save_checkpoint("p", Checkpoint(1, 1))
            return results

        (result,) = await storage.run_projection_transaction(body)
        stored = await store.read_stream_records("pm")
        assert (result.version, result.positions) == (2, tuple(r.position for r in stored))
        assert [r.event_id for r in stored] == [record.event_id for record in write.records]
        assert (await storage.projection_checkpoints())["p"] == Checkpoint(1, 1)
        assert await store.head_position() == stored[-1].position

    @pytest.mark.asyncio
    async def test_appends_in_a_failed_transaction_are_rolled_back(
        self, store: AsyncEventStore
    ) -> None:
        """A transaction that raises after appending leaves no event, stream or id behind."""
        storage = self.storage(store)
        before = await store.append("s", [Noted("kept")])
        new_stream = _write(store, "pm", [Noted("a"), Noted("b")], NO_STREAM)
        old_stream = _write(store, "s", [Noted("c")], 1)

        def body(tx: ProjectionTransaction) -> None:
            tx.append([new_stream])
            tx.append([old_stream])
            tx.save_checkpoint("p", Checkpoint(9, 1))
            raise KeyError("after the appends, before the commit")

        with pytest.raises(KeyError):
            await storage.run_projection_transaction(body)
        assert (await store.stream_version("pm"), await store.stream_version("s")) == (0, 1)
        assert await store.head_position() == before.positions[-1]
        assert [stream async for stream in store.stream_ids()] == ["s"]
        assert await storage.projection_checkpoints() == {}
        # The rolled-back ids are free again: appending them now stores new events.
        again = await store.append_records([new_stream])
        assert again[0].version == 2
        assert [r.event_id for r in await store.read_stream_records("pm")] == [
            record.event_id for record in new_stream.records
        ]

    @pytest.mark.asyncio
    async def test_a_transaction_reads_its_own_appends(self, store: AsyncEventStore) -> None:
        """read_stream inside the transaction sees what it appended, in version order."""
        storage = self.storage(store)
        await store.append("pm", [Noted("first")])
        write = _write(store, "pm", [Noted("second")], 1)

        def body(tx: ProjectionTransaction) -> tuple[list[int], list[int], list[EventRecord]]:
            seen_before = [record.version for record in tx.read_stream("pm")]
            tx.append([write])
            return seen_before, [r.version for r in tx.read_stream("pm")], tx.read_stream("none")

        assert await storage.run_projection_transaction(body) == ([1], [1, 2], [])

    @pytest.mark.asyncio
    async def test_a_conflicting_append_in_a_transaction_raises(
        self, store: AsyncEventStore
    ) -> None:
        """An expected version the stream does not have raises ConcurrencyError inside."""
        storage = self.storage(store)
        await store.append("pm", [Noted("first")])
        write = _write(store, "pm", [Noted("late")], 0)

        def body(tx: ProjectionTransaction) -> None:
            tx.append([write])

        with pytest.raises(ConcurrencyError) as info:
            await storage.run_projection_transaction(body)
        assert (info.value.stream_id, info.value.actual_version) == ("pm", 1)
        assert await store.stream_version("pm") == 1

    @pytest.mark.asyncio
    async def test_a_repeated_append_in_a_transaction_stores_once(
        self, store: AsyncEventStore
    ) -> None:
        """Appending the same event ids twice stores them once and returns the same result."""
        storage = self.storage(store)
        write = _write(store, "pm", [Noted("once")], NO_STREAM)

        def body(tx: ProjectionTransaction) -> tuple[AppendResult, AppendResult]:
            return tx.append([write])[0], tx.append([write])[0]

        first, second = await storage.run_projection_transaction(body)
        assert first == second
        assert len(await store.read_stream_records("pm")) == 1

    @pytest.mark.asyncio
    async def test_appends_in_a_transaction_wake_listeners(self, store: AsyncEventStore) -> None:
        """Subscribers of on_append hear of events appended in a transaction, once it commits."""
        storage = self.storage(store)
        calls: list[str] = []
        unsubscribe = storage.on_append(lambda: calls.append("heard"))
        try:

            def body(tx: ProjectionTransaction) -> None:
                tx.append([_write(store, "pm", [Noted("a")], NO_STREAM)])
                calls.append("appended")

            await storage.run_projection_transaction(body)
        finally:
            unsubscribe()
        # A store may also call back on its own (when it starts listening, say).
        assert "heard" in calls[calls.index("appended") :]

    # -- process managers on this store ----------------------------------------------------

    @pytest.mark.asyncio
    async def test_process_manager_reacts_once_per_event(self, store: AsyncEventStore) -> None:
        """Each deposit gets one reaction, carrying causation and correlation ids."""
        positions: list[int] = []
        for n in range(1, 6):
            positions.extend((await store.append(f"s{n % 2}", _deposits(n))).positions)
        manager = _Echo()
        runner = AsyncProcessManagerRunner(store, manager, batch_size=2)
        await runner.run_until_caught_up()
        await runner.run_until_caught_up()  # again: nothing is reacted to twice
        echoes = [r async for r in store.read_all() if r.stream_id.startswith("echo-")]
        causes = {r.event_id: r async for r in store.read_all() if r.stream_id in {"s0", "s1"}}
        assert sorted(r.metadata["causation_id"] for r in echoes) == sorted(
            str(event_id) for event_id in causes
        )
        for echo in echoes:
            cause = causes[uuid.UUID(echo.metadata["causation_id"])]
            assert echo.metadata["correlation_id"] == str(cause.event_id)
            assert echo.event == Noted(f"{cause.stream_id}:{cause.version}")
        checkpoint = (await self.storage(store).projection_checkpoints())[manager.name]
        assert checkpoint.position >= positions[-1]

    @pytest.mark.asyncio
    async def test_a_failing_reaction_leaves_none_of_its_appends(
        self, store: AsyncEventStore
    ) -> None:
        """A handler that fails after appending: its event's appends are rolled back."""
        positions = (await store.append("s", _deposits(1, 2, 3))).positions
        manager = _Echo(fail_after_append=Decimal(2))
        manager.error_policy = StopOnError()
        with pytest.raises(ProjectionError) as info:
            await AsyncProcessManagerRunner(store, manager, batch_size=10).run_until_caught_up()
        assert info.value.position == positions[1]
        echoed = [r.event async for r in store.read_all() if r.stream_id == "echo-s"]
        assert echoed == [Noted("s:1")]
        checkpoint = (await self.storage(store).projection_checkpoints())[manager.name]
        assert positions[0] <= checkpoint.position < positions[1]


class _Echo(ProcessManager):
    """Reacts to each deposit with a note in an echo stream, failing on request."""

    name = "contract.echo"
    event_types = (Deposited,)

    def __init__(self, fail_after_append: Decimal | None = None) -> None:
        self.fail_after_append = fail_after_append

    def handle(self, recorded: RecordedEvent[Any], process: ProcessContext) -> None:
        process.append(
            f"echo-{recorded.stream_id}", [Noted(f"{recorded.stream_id}:{recorded.version}")]
        )
        if recorded.event.amount == self.fail_after_append:
            raise RuntimeError("failed after appending")


def _write(
    store: AsyncEventStore, stream_id: str, events: list[Any], expected: ExpectedVersion
) -> RecordWrite:
    return RecordWrite(stream_id, tuple(store.codec.encode(e) for e in events), expected)
