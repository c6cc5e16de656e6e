"""
Projection storage in PostgreSQL: checkpoints, dead letters and fenced leases.

A projection's batch runs as a synchronous body in one transaction on a synchronous
psycopg connection, in both the sync and the async store (the async store runs it in a
worker thread), so that handlers are the same plain code everywhere and write their
read models through the transaction's connection: exactly once.

Fencing: when the store holds a lease on a projection (see ``lock_projection``), moving
its checkpoint also renews the lease, in the same transaction, on the condition that
it is still this holder's generation and has not expired. The update locks the lease
row until the commit, so a runner that was paused past its lease (and lost it) can
never commit a batch after another runner took over: its transaction is refused with
`ProjectionLockLostError` and rolled back, read model writes included.
"""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg

from eventkit._backends.postgres.connections import stream_lock_key
from eventkit._backends.postgres.schema import POSITION_BITS
from eventkit._backends.postgres.sql import event_records, insert_columns
from eventkit._records import Checkpoint, DeadLetter, StoredEventRef
from eventkit._rules import decide_append
from eventkit._storage import ProjectionLockLostError, RetryTransaction
from eventkit.exceptions import ArgumentError, ConcurrencyError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from uuid import UUID

    from eventkit._backends.postgres.sql import Statements
    from eventkit._records import AppendResult, EventRecord, RecordWrite
    from eventkit._rules import AppendPlan

_MAX_INT4 = 2**31 - 1


class LeaseHeld(NamedTuple):
    """What a store knows of a lease it holds: its owner id, generation and length."""

    owner: UUID
    generation: int
    seconds: float


class PostgresProjectionTransaction:
    """A projection transaction on a psycopg connection, inside ``BEGIN``."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        sql: Statements,
        *,
        name: str,
        schema: str,
        own_tables: frozenset[str],
        leases: Mapping[str, LeaseHeld],
    ) -> None:
        self.connection = conn
        self._sql = sql
        self._name = name
        self._schema = schema
        self._own = own_tables
        self._leases = leases
        self._namespace = f"{schema}.{sql.prefix}"
        self._serialized: set[str] = set()
        self.appended = 0  # the highest position appended in this transaction, or 0

    def append(self, writes: Sequence[RecordWrite]) -> list[AppendResult]:
        """
        Append records in this transaction, as the store's own appends do.

        The streams' advisory locks are taken first. A store's own append takes them
        before its transaction has an id, so that a stream's later writers get larger
        ids and their events sort after. Here the transaction may have an id already
        (from an earlier append or a handler's write): if a stream's newest event was
        stored by a transaction younger than this one, this one's events would sort
        before it, and the append asks for the whole transaction to run again
        (`RetryTransaction`). A deadlock among such appends does the same.
        """
        sql = self._sql
        stream_ids = [write.stream_id for write in writes]
        keys = sorted({stream_lock_key(self._namespace, stream_id) for stream_id in stream_ids})
        found: dict[UUID, StoredEventRef] = {}
        for attempt in range(2):
            try:
                # A savepoint: a repeated event id undoes this append only.
                with self.connection.transaction():
                    self._rows(sql.lock_streams, (keys,))
                    heads = self._rows(sql.stream_heads, (stream_ids,))
                    self._check_order(heads)
                    stored = {stream_id: version for stream_id, version, _ in heads}
                    versions = [stored.get(stream_id, 0) for stream_id in stream_ids]
                    try:
                        plan = decide_append(writes, versions, found)
                    except ConcurrencyError:
                        if found:
                            raise
                        # Maybe a retry of an append that succeeded, after the stream moved on.
                        found = self._find(writes)
                        plan = decide_append(writes, versions, found)
                    positions = self._insert(plan) if plan.rows else []
            except psycopg.errors.UniqueViolation:
                if attempt or found:  # pragma: no cover (a race within a race)
                    raise
                found = self._find(writes)
                continue
            except psycopg.errors.DeadlockDetected as exc:
                raise RetryTransaction(f"PostgreSQL event store {self._name}: {exc}") from exc
            if positions:
                self.appended = max(self.appended, positions[-1])
            return plan.results(positions)
        raise AssertionError  # pragma: no cover (the loop returns or raises)

    def _check_order(self, heads: list[Any]) -> None:
        base = self._rows(self._sql.own_base)[0][0]
        if base is None:
            return  # no id yet: the insert takes one, younger than every stored event's
        for stream_id, version, position in heads:
            if position >= base + (1 << POSITION_BITS):
                raise RetryTransaction(
                    f"PostgreSQL event store {self._name}: stream {stream_id!r} is at "
                    f"version {version}, written by a transaction younger than this one; "
                    "its new events would sort before that one's"
                )

    def _find(self, writes: Sequence[RecordWrite]) -> dict[UUID, StoredEventRef]:
        event_ids = [record.event_id for write in writes for record in write.records]
        rows = self._rows(self._sql.find_ids, (event_ids,))
        return {row[0]: StoredEventRef(row[1], row[2], row[3]) for row in rows}

    def _insert(self, plan: AppendPlan) -> list[int]:
        columns = insert_columns(plan)
        return sorted(row[0] for row in self._rows(self._sql.insert, columns))

    def read_stream(self, stream_id: str) -> list[EventRecord]:
        """Return the stream's records as this transaction sees them, times in UTC."""
        rows = self._rows(self._sql.read_stream, (stream_id, 1, _MAX_INT4, None))
        return [
            record._replace(recorded_at=record.recorded_at.astimezone(UTC))
            for record in event_records(rows)
        ]

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        cursor = self.connection.execute(statement, params)
        return cursor.fetchall() if cursor.description is not None else []

    def _serialize(self, projection: str) -> None:
        # Transactions on one projection's checkpoint take turns, as a database's write
        # lock would make them: the second waits for the first and sees what it did.
        # Transactions on different projections run in parallel.
        if projection not in self._serialized:
            self._serialized.add(projection)
            key = stream_lock_key(self._namespace, f"\x00projection {projection}")
            self._rows("SELECT pg_advisory_xact_lock(%s)", (key,))

    def checkpoint(self, projection: str) -> Checkpoint | None:
        """Return the projection's checkpoint, or None."""
        self._serialize(projection)
        rows = self._rows(self._sql.get_checkpoint, (projection,))
        return Checkpoint(*rows[0]) if rows else None

    def save_checkpoint(self, projection: str, checkpoint: Checkpoint) -> None:
        """Set the projection's checkpoint; under a lease, only while it is still held."""
        self._serialize(projection)
        lease = self._leases.get(projection)
        if lease is not None:
            renewed = self._rows(
                self._sql.renew_lease, (lease.seconds, projection, lease.owner, lease.generation)
            )
            if not renewed:
                raise ProjectionLockLostError(
                    f"PostgreSQL event store {self._name}: projection {projection!r} was "
                    "taken over by another runner; this batch is rolled back"
                )
        self._rows(self._sql.put_checkpoint, (projection, checkpoint.position, checkpoint.version))

    def forget(self, projection: str) -> None:
        """Delete the projection's checkpoint and dead letters."""
        self._rows(self._sql.delete_checkpoint, (projection,))
        self._rows(self._sql.forget_dead_letters, (projection,))

    def park(self, letter: DeadLetter) -> None:
        """Store a dead letter, replacing one at the same position."""
        self._rows(self._sql.park, tuple(letter))

    def unpark(self, projection: str, position: int) -> None:
        """Delete the dead letter at *position*."""
        self._rows(self._sql.unpark, (projection, position))

    def move_projection(self, source: str, target: str) -> None:
        """Give *target* the checkpoint and dead letters of *source*."""
        self.forget(target)
        self._rows(self._sql.rename_checkpoint, (target, source))
        self._rows(self._sql.move_dead_letters, (target, source))

    def drop_tables(self, names: Sequence[str]) -> None:
        """Drop the named read-model tables that exist."""
        for name in names:
            self._check_table(name)
            self._rows(f"DROP TABLE IF EXISTS {self._qualified(name)}")

    def replace_tables(self, moves: Sequence[tuple[str, str]]) -> None:
        """Drop each target, then rename its source to it, without the source's indexes."""
        for source, target in moves:
            self._check_table(source)
            self._check_table(target)
            self._rows(f"DROP TABLE IF EXISTS {self._qualified(target)}")
            qualified = self._qualified(source)
            if not self._rows(self._sql.table_exists, (qualified,))[0][0]:
                continue  # the new version of the projection has no such table
            # Indexes a projection's setup made: dropped, so that setup makes them again
            # under their usual names (indexes that back constraints stay with the table).
            for (index,) in self._rows(self._sql.table_indexes, (qualified,)):
                self._rows(f"DROP INDEX {index}")
            self._rows(f"ALTER TABLE {qualified} RENAME TO {_quote(target)}")

    def _qualified(self, name: str) -> str:
        return f"{_quote(self._schema)}.{_quote(name)}"

    def _check_table(self, name: str) -> None:
        # A read model's table can be dropped: the store's own tables never.
        if name in self._own:
            raise ArgumentError(
                f"PostgreSQL event store {self._name}: {name!r} is one of the store's own "
                "tables; a projection cannot drop or replace it"
            )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def dead_letter(row: Sequence[Any]) -> DeadLetter:
    """Return the dead letter stored as *row*, its time in UTC."""
    projection, position, stream_id, version, event_type, error, attempts, parked_at = row
    return DeadLetter(
        projection,
        position,
        stream_id,
        version,
        event_type,
        error,
        attempts,
        parked_at.astimezone(UTC),
    )
