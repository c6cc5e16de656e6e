"""
Damaging stored rows on purpose, one backend at a time.

Each `Rows` class reaches into one backend's storage and changes the columns of one
stored event or snapshot, as an operator editing the database by hand (or a disk
losing bits) would. A backend that stores bytes can hold a column of another type
than the one written (`Rows.typed_columns` is False); the tests then damage column
types too. Add a class here for each new backend, and list it in `ROWS`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from eventkit import InMemoryEventStore, PostgresEventStore, SQLiteEventStore


class InMemoryRows:
    """The in-memory store keeps records as tuples: only their text can be damaged."""

    name = "memory"
    typed_columns = True

    def make_store(self, registry):
        return InMemoryEventStore(registry=registry)

    def event(self, store, position) -> dict[str, Any]:
        return store._log[position - 1]._asdict()

    def change_event(self, store, position, **columns):
        old = store._log[position - 1]
        new = old._replace(**columns)
        store._log[position - 1] = new
        store._streams[old.stream_id][old.version - 1] = new

    def snapshot(self, store, stream_id) -> dict[str, Any]:
        columns = store._snapshots[stream_id]._asdict()
        return {**columns, "event_id": columns["event_id"].bytes}  # as a database holds it

    def change_snapshot(self, store, stream_id, **columns):
        store._snapshots[stream_id] = store._snapshots[stream_id]._replace(**columns)


class SQLiteRows:
    """SQLite keeps whatever value is written to a column: types can be damaged too."""

    name = "sqlite"
    typed_columns = False
    _EVENT_COLUMNS: ClassVar = (
        "stream_id, version, position, event_id, event_type, schema_version, data, "
        "metadata, recorded_at"
    )

    def make_store(self, registry):
        return SQLiteEventStore(":memory:", registry=registry)

    def event(self, store, position) -> dict[str, Any]:
        row = store._writer.execute(
            f"SELECT {self._EVENT_COLUMNS} FROM eventkit_events WHERE position = ?",
            (position,),
        ).fetchone()
        return dict(zip(self._EVENT_COLUMNS.split(", "), row, strict=True))

    def change_event(self, store, position, **columns):
        sets = ", ".join(f"{name} = ?" for name in columns)
        store._writer.execute(
            f"UPDATE eventkit_events SET {sets} WHERE position = ?",
            (*columns.values(), position),
        )

    def snapshot(self, store, stream_id) -> dict[str, Any]:
        cursor = store._writer.execute(
            "SELECT * FROM eventkit_snapshots WHERE stream_id = ?", (stream_id,)
        )
        names = [column[0] for column in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))

    def change_snapshot(self, store, stream_id, **columns):
        sets = ", ".join(f"{name} = ?" for name in columns)
        store._writer.execute(
            f"UPDATE eventkit_snapshots SET {sets} WHERE stream_id = ?",
            (*columns.values(), stream_id),
        )


class PostgresRows:
    """
    PostgreSQL keeps typed columns: only the text of data, metadata and state can be damaged.

    Each store gets a schema of its own; a new store drops the schemas of the ones
    before it (closed by then), and `cleanup` drops the last.
    """

    name = "postgres"
    typed_columns = True

    def __init__(self):
        self._schemas = []

    def make_store(self, registry):
        from tests.backends import postgres_support  # noqa: PLC0415 (psycopg only when used)

        postgres_support.require_server()
        self.cleanup()
        schema = postgres_support.new_schema()
        self._schemas.append(schema)
        return PostgresEventStore(postgres_support.DSN, schema=schema, registry=registry)

    def cleanup(self):
        """Drop the schemas this made."""
        if self._schemas:
            from tests.backends import postgres_support  # noqa: PLC0415 (as above)

            postgres_support.drop_schemas(self._schemas)
            self._schemas.clear()

    def _query(self, store, sql, params):
        import psycopg  # noqa: PLC0415 (as above)

        from tests.backends import postgres_support  # noqa: PLC0415 (as above)

        with psycopg.connect(postgres_support.DSN, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{store.schema}"')
            cursor = conn.execute(sql, params)
            if cursor.description is None:
                return None
            names = [column.name for column in cursor.description]
            return dict(zip(names, cursor.fetchone(), strict=True))

    def event(self, store, position) -> dict[str, Any]:
        return self._query(store, "SELECT * FROM eventkit_events WHERE position = %s", (position,))

    def change_event(self, store, position, **columns):
        sets = ", ".join(f"{name} = %s" for name in columns)
        self._query(
            store,
            f"UPDATE eventkit_events SET {sets} WHERE position = %s",
            (*columns.values(), position),
        )

    def snapshot(self, store, stream_id) -> dict[str, Any]:
        columns = self._query(
            store, "SELECT * FROM eventkit_snapshots WHERE stream_id = %s", (stream_id,)
        )
        return {**columns, "event_id": columns["event_id"].bytes}  # as SQLite holds it

    def change_snapshot(self, store, stream_id, **columns):
        sets = ", ".join(f"{name} = %s" for name in columns)
        self._query(
            store,
            f"UPDATE eventkit_snapshots SET {sets} WHERE stream_id = %s",
            (*columns.values(), stream_id),
        )


ROWS = [InMemoryRows(), SQLiteRows(), PostgresRows()]


# -- ways to damage a column's type (backends that store bytes) ---------------------------------

# Type names a stored event's may be changed to: none of them fits another's data.
OTHER_TYPES = ["exact.Scalars", "exact.Values", "exact.Shapes", "exact.Gone"]

EVENT_COLUMN_DAMAGE = {
    "version": ["x1", 1.5, b"\x01"],
    "event_id": [b"\x00" * 15, b"\x00" * 17, "0" * 32, 5],
    "schema_version": ["one", 1.5, b"\x01"],
    "recorded_at": ["yesterday", "2024-01-01T00:00:00", 1_700_000_000, b"\x00"],
    "data": [b"{}"],
    "metadata": [b"{}", 1],
    "event_type": [b"exact.Scalars", 7],
}

SNAPSHOT_COLUMN_DAMAGE = {
    "version": ["x", 1.5, b"\x01"],
    "event_id": [b"\x00" * 15, "0" * 32, 3],
    "snapshot_version": ["one", 1.5],
    "state": [b"{}", 5],
    "taken_at": ["yesterday", "2024-01-01T00:00:00", 5, b"\x00"],
    "aggregate_type": [b"Wallet", 7],
    "build_seconds": ["slow", b"\x00"],
}
