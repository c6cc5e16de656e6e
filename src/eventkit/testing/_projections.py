"""The conformance suite of projection storage: checkpoints, dead letters, locks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import pytest

from eventkit._projection_store import ProjectionStore
from eventkit._projections import ParkOnError, Projection, ProjectionRunner
from eventkit._records import Checkpoint, DeadLetter
from eventkit.exceptions import ProjectionError
from eventkit.testing._events import Deposited, Noted, StoreFactory, _deposits, contract_registry

if TYPE_CHECKING:
    from collections.abc import Iterator

    from eventkit._envelope import RecordedEvent
    from eventkit._storage import ProjectionTransaction
    from eventkit._store import EventStore

# Bounded waits for the tests with threads: generous, because CI machines are shared.
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


class ProjectionStoreContract:
    """
    The behaviour every `ProjectionStore` must have, as pytest tests.

    Mix into the same ``Test*`` class as `EventStoreContract`, which provides the
    ``make_store`` fixture. It checks the storage (checkpoints, dead letters, locks,
    transactions, append callbacks) and that a `ProjectionRunner` works on the store.

    .. versionadded:: 0.1.0
    """

    @pytest.fixture(name="store")
    def _contract_store(self, make_store: StoreFactory) -> Iterator[EventStore]:
        store = make_store(contract_registry)
        yield store
        store.close()

    @staticmethod
    def storage(store: EventStore) -> ProjectionStore:
        """Return *store* as the projection storage it must also be."""
        assert isinstance(store, ProjectionStore)
        return cast("ProjectionStore", store)

    # -- checkpoints ------------------------------------------------------------------------

    def test_new_store_has_no_checkpoints(self, store: EventStore) -> None:
        """A new store keeps no checkpoints and no dead letters."""
        storage = self.storage(store)
        assert (storage.projection_checkpoints(), storage.dead_letters("p")) == ({}, [])

    def test_committed_checkpoint_is_kept(self, store: EventStore) -> None:
        """A checkpoint saved in a transaction that commits is read back, with its version."""
        storage = self.storage(store)

        def body_1(tx: ProjectionTransaction) -> None:
            tx.save_checkpoint("p", Checkpoint(7, 2))

        storage.run_projection_transaction(body_1)
        inside = storage.run_projection_transaction(lambda tx: tx.checkpoint("p"))
        assert (storage.projection_checkpoints(), inside) == ({"p": Checkpoint(7, 2)}, (7, 2))

    def test_failed_transaction_keeps_nothing(self, store: EventStore) -> None:
        """An exception in the block rolls back checkpoints and dead letters alike."""
        storage = self.storage(store)

        def body_3(tx: ProjectionTransaction) -> None:
            tx.save_checkpoint("p", Checkpoint(1, 1))

        storage.run_projection_transaction(body_3)

        def fail() -> None:
            def body_4(tx: ProjectionTransaction) -> None:
                tx.save_checkpoint("p", Checkpoint(5, 1))
                tx.park(_letter(3))
                raise KeyError(3)

            storage.run_projection_transaction(body_4)

        with pytest.raises(KeyError):
            fail()
        assert (storage.projection_checkpoints(), storage.dead_letters("p")) == (
            {"p": Checkpoint(1, 1)},
            [],
        )

    def test_a_transaction_sees_its_own_writes(self, store: EventStore) -> None:
        """Inside a transaction, a saved checkpoint reads back before the commit."""
        storage = self.storage(store)

        def body_5(tx: ProjectionTransaction) -> None:
            tx.save_checkpoint("p", Checkpoint(3, 1))
            assert tx.checkpoint("p") == Checkpoint(3, 1)
            assert tx.checkpoint("other") is None

        storage.run_projection_transaction(body_5)

    def test_forget_deletes_checkpoint_and_dead_letters(self, store: EventStore) -> None:
        """Forgetting removes one projection's checkpoint and dead letters, no other's."""
        storage = self.storage(store)

        def body_6(tx: ProjectionTransaction) -> None:
            for name in ("p", "q"):
                tx.save_checkpoint(name, Checkpoint(4, 1))
                tx.park(_letter(2, name))

        storage.run_projection_transaction(body_6)

        def body_7(tx: ProjectionTransaction) -> None:
            tx.forget("p")

        storage.run_projection_transaction(body_7)
        assert (storage.projection_checkpoints(), storage.dead_letters("p")) == (
            {"q": Checkpoint(4, 1)},
            [],
        )
        assert storage.dead_letters("q") == [_letter(2, "q")]

    # -- dead letters -----------------------------------------------------------------------

    def test_dead_letters_round_trip_in_position_order(self, store: EventStore) -> None:
        """Parked events come back field for field, ordered by position."""
        storage = self.storage(store)

        def body_8(tx: ProjectionTransaction) -> None:
            for position in (9, 2, 5):
                tx.park(_letter(position))

        storage.run_projection_transaction(body_8)
        assert storage.dead_letters("p") == [_letter(2), _letter(5), _letter(9)]

    def test_parking_a_position_again_replaces_its_letter(self, store: EventStore) -> None:
        """A second letter for the same projection and position replaces the first."""
        storage = self.storage(store)

        def body_9(tx: ProjectionTransaction) -> None:
            tx.park(_letter(2))

        storage.run_projection_transaction(body_9)
        again = _letter(2, error="KeyError: 'x'")._replace(attempts=2)

        def body_10(tx: ProjectionTransaction) -> None:
            tx.park(again)

        storage.run_projection_transaction(body_10)
        assert storage.dead_letters("p") == [again]

    def test_unpark_deletes_one_letter(self, store: EventStore) -> None:
        """Unparking removes the letter at one position; a missing one is harmless."""
        storage = self.storage(store)

        def body_11(tx: ProjectionTransaction) -> None:
            tx.park(_letter(2))
            tx.park(_letter(3))

        storage.run_projection_transaction(body_11)

        def body_12(tx: ProjectionTransaction) -> None:
            tx.unpark("p", 2)
            tx.unpark("p", 99)

        storage.run_projection_transaction(body_12)
        assert storage.dead_letters("p") == [_letter(3)]

    def test_move_projection_replaces_the_target(self, store: EventStore) -> None:
        """The target takes the source's checkpoint and letters; the source is gone."""
        storage = self.storage(store)

        def body_13(tx: ProjectionTransaction) -> None:
            tx.save_checkpoint("live", Checkpoint(10, 1))
            tx.park(_letter(4, "live"))
            tx.save_checkpoint("new", Checkpoint(12, 2))
            tx.park(_letter(6, "new"))

        storage.run_projection_transaction(body_13)

        def body_14(tx: ProjectionTransaction) -> None:
            tx.move_projection("new", "live")

        storage.run_projection_transaction(body_14)
        assert (storage.projection_checkpoints(), storage.dead_letters("live")) == (
            {"live": Checkpoint(12, 2)},
            [_letter(6, "live")],
        )
        assert storage.dead_letters("new") == []

    def test_dropping_or_replacing_no_tables_is_harmless(self, store: EventStore) -> None:
        """drop_tables and replace_tables with nothing to do change nothing."""
        storage = self.storage(store)

        def body_15(tx: ProjectionTransaction) -> None:
            tx.save_checkpoint("p", Checkpoint(1, 1))
            tx.drop_tables([])
            tx.replace_tables([])

        storage.run_projection_transaction(body_15)
        assert storage.projection_checkpoints() == {"p": Checkpoint(1, 1)}

    def test_exactly_once_is_a_bool(self, store: EventStore) -> None:
        """The store says whether handler writes commit with the checkpoint."""
        assert isinstance(self.storage(store).exactly_once, bool)

    # -- transactions and locks -------------------------------------------------------------

    def test_transactions_do_not_interleave(self, store: EventStore) -> None:
        """A second transaction writing a checkpoint waits until the first has committed it."""
        storage = self.storage(store)
        inside, steps = threading.Event(), []

        def second() -> None:
            inside.wait(_WAIT)

            def body_16(tx: ProjectionTransaction) -> None:
                tx.save_checkpoint("p", Checkpoint(2, 1))
                steps.append("second wrote")

            storage.run_projection_transaction(body_16)

        thread = threading.Thread(target=second)
        thread.start()

        def body_17(tx: ProjectionTransaction) -> None:
            tx.save_checkpoint("p", Checkpoint(1, 1))
            inside.set()
            # The other thread is now blocked (on the store's write lock, or on the
            # checkpoint's row); give it a moment to try.
            thread.join(0.2)
            steps.append("first commits")

        storage.run_projection_transaction(body_17)
        thread.join(_WAIT)
        assert (steps, storage.projection_checkpoints()) == (
            ["first commits", "second wrote"],
            {"p": Checkpoint(2, 1)},
        )

    def test_a_held_lock_is_refused(self, store: EventStore) -> None:
        """While one holder has a projection's lock, nobody else gets it."""
        storage = self.storage(store)
        lock = storage.lock_projection("p")
        try:
            assert lock is not None
            assert storage.lock_projection("p") is None
        finally:
            if lock is not None:
                lock.release()

    def test_a_released_lock_can_be_taken(self, store: EventStore) -> None:
        """Once released (twice is harmless), the lock can be taken again."""
        storage = self.storage(store)
        first = storage.lock_projection("p")
        assert first is not None
        first.release()
        first.release()
        second = storage.lock_projection("p")
        assert second is not None
        second.release()

    def test_locks_of_different_projections_are_independent(self, store: EventStore) -> None:
        """Holding one projection's lock does not block another projection's."""
        storage = self.storage(store)
        first, second = storage.lock_projection("p"), storage.lock_projection("q")
        assert (first is not None, second is not None) == (True, True)
        for lock in (first, second):
            if lock is not None:
                lock.release()

    def test_on_append_calls_back_after_each_append(self, store: EventStore) -> None:
        """Subscribers hear of appends until they unsubscribe."""
        storage = self.storage(store)
        calls: list[None] = []
        unsubscribe = storage.on_append(lambda: calls.append(None))
        store.append("s", _deposits(1))
        store.append("s", _deposits(2, 3))
        heard = len(calls)
        unsubscribe()
        store.append("s", _deposits(4))
        # A store may also call back for appends heard of otherwise (PostgreSQL's NOTIFY).
        assert (heard >= 2, len(calls)) == (True, heard)

    # -- the runner on this store -----------------------------------------------------------

    def test_runner_catches_up_to_the_fold(self, store: EventStore) -> None:
        """After catching up, the read model is the fold of the projection's events."""
        for n in range(1, 8):
            store.append(f"s{n % 3}", [Deposited(Decimal(n)), Noted(str(n))])
        projection = _Sums()
        ProjectionRunner(store, projection, batch_size=3).run_until_caught_up()
        assert projection.sums == {"s1": Decimal(12), "s2": Decimal(7), "s0": Decimal(9)}

    def test_runner_follows_appends_while_running(self, store: EventStore) -> None:
        """Events appended while the runner runs reach the read model within a bounded wait."""
        projection = _Sums()
        with ProjectionRunner(store, projection, poll_interval=0.05) as runner:
            result = store.append("s", _deposits(5, 6))
            runner.wait_for(result.positions[-1], timeout=_WAIT)
            assert projection.sums == {"s": Decimal(11)}

    def test_stop_policy_leaves_the_checkpoint_before_the_event(self, store: EventStore) -> None:
        """A failing event stops the projection just before it, naming the event."""
        positions = store.append("s", _deposits(1, 2, 3, 4)).positions
        runner = ProjectionRunner(store, _Sums(refuse=Decimal(3)), batch_size=10)
        with pytest.raises(ProjectionError) as info:
            runner.run_until_caught_up()
        failed = (info.value.position, info.value.stream_id, info.value.version)
        assert failed == (positions[2], "s", 3)
        checkpoint = self.storage(store).projection_checkpoints()["contract.sums"].position
        assert checkpoint == positions[1]

    def test_parked_events_can_be_listed_and_retried(self, store: EventStore) -> None:
        """A parked event is listed, the rest is applied, and a retry applies it later."""
        positions = store.append("s", _deposits(1, 2, 3)).positions
        projection = _Sums(refuse=Decimal(2))
        projection.error_policy = ParkOnError()
        runner = ProjectionRunner(store, projection)
        runner.run_until_caught_up()
        parked = [letter.position for letter in runner.dead_letters("contract.sums")]
        projection.refuse = None
        assert (parked, runner.retry_dead_letters("contract.sums")) == ([positions[1]], 1)
        assert (projection.sums, runner.dead_letters("contract.sums")) == ({"s": Decimal(6)}, [])

    def test_a_second_runner_stands_by_until_the_first_stops(self, store: EventStore) -> None:
        """Only the lock holder applies events; the standby takes over when it stops."""
        first, second = _Sums(), _Sums()
        active = ProjectionRunner(store, first, poll_interval=0.05)
        standby = ProjectionRunner(store, second, poll_interval=0.05)
        with active:
            active.wait_for(0, timeout=_WAIT)
            standby.start()
            try:
                active.wait_for(store.append("s", _deposits(1)).positions[-1], timeout=_WAIT)
                assert (first.sums, len(second.sums)) == ({"s": Decimal(1)}, 0)
            except BaseException:
                standby.stop()
                raise
        try:
            standby.wait_for(store.append("s", _deposits(2)).positions[-1], timeout=_WAIT)
        finally:
            standby.stop()
        assert (first.sums, second.sums) == ({"s": Decimal(1)}, {"s": Decimal(2)})
