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

from eventkit._backends.postgres.connections import stream_lock_key
from eventkit._records import Checkpoint, DeadLetter
from eventkit._storage import ProjectionLockLostError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from uuid import UUID

    import psycopg

    from eventkit._backends.postgres.sql import Statements


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
            raise ValueError(
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
