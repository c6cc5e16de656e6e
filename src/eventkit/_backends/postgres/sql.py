"""The PostgreSQL store's statements, spliced once with its qualified table names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventkit._backends._sql import SQLTemplates
from eventkit._backends.postgres.schema import (
    MAX_EVENTS_PER_TRANSACTION,
    POSITION_BITS,
    table_names,
)
from eventkit._records import EventRecord
from eventkit.exceptions import ArgumentError

if TYPE_CHECKING:
    from eventkit._rules import AppendPlan

_COLUMNS = (
    "stream_id, version, position, event_id, event_type, schema_version, data, metadata, "
    "recorded_at"
)
_OFFSET = "(SELECT value::bigint FROM {meta} WHERE key = 'xid_offset')"
# Every position below the horizon belongs to a transaction that has ended, and every
# transaction that can still commit has, or will get, positions at or above it: the
# oldest transaction id still running (the snapshot's xmin), in a position's high bits.
HORIZON = (
    f"((pg_snapshot_xmin(pg_current_snapshot())::text::bigint + {_OFFSET}) << {POSITION_BITS})"
)


class Statements(SQLTemplates):
    """Everything the store says to PostgreSQL."""

    meta_table = "CREATE TABLE IF NOT EXISTS {meta} (key text PRIMARY KEY, value text NOT NULL)"
    get_meta = "SELECT value FROM {meta} WHERE key = %s"
    put_meta = (
        "INSERT INTO {meta} (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )
    # Writers of one stream are ordered before they take a transaction id: advisory locks
    # assign none, so whoever locks a stream after us gets a larger id, and its events
    # sort after ours. The keys arrive sorted, so multi-stream appends cannot deadlock.
    lock_streams = "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k"
    versions = (
        "SELECT stream_id, max(version) FROM {events} "
        "WHERE stream_id = ANY(%s::text[]) GROUP BY stream_id"
    )
    # The newest event of each stream, for appends inside a projection transaction:
    # see `PostgresProjectionTransaction.append`.
    stream_heads = (
        "SELECT stream_id, max(version), max(position) FROM {events} "
        "WHERE stream_id = ANY(%s::text[]) GROUP BY stream_id"
    )
    own_base = (
        f"SELECT ((pg_current_xact_id_if_assigned()::text::bigint + {_OFFSET}) << {POSITION_BITS})"
    )
    find_ids = (
        "SELECT event_id, stream_id, version, position FROM {events} "
        "WHERE event_id = ANY(%s::uuid[])"
    )
    # One statement for all the events of an append. n continues after events that this
    # transaction appended before, when it appends twice. A copied event keeps the time
    # it was first recorded (recorded_at given); others get the time of the insert.
    insert = f"""
        WITH base AS (
            SELECT ((pg_current_xact_id()::text::bigint + {_OFFSET}) << {POSITION_BITS}) AS b
        ), taken AS (
            SELECT coalesce(max(e.position) - base.b, 0) AS n0
            FROM base LEFT JOIN {{events}} e
              ON e.position > base.b AND e.position < base.b + {1 << POSITION_BITS}
            GROUP BY base.b
        )
        INSERT INTO {{events}} (position, stream_id, version, event_id, event_type,
                                schema_version, data, metadata, recorded_at)
        SELECT base.b + taken.n0 + t.n, t.stream_id, t.version, t.event_id, t.event_type,
               t.schema_version, t.data, t.metadata, coalesce(t.recorded_at, clock_timestamp())
        FROM base, taken,
             unnest(%s::text[], %s::integer[], %s::uuid[], %s::text[], %s::integer[],
                    %s::text[], %s::text[], %s::timestamptz[])
             WITH ORDINALITY AS t(stream_id, version, event_id, event_type, schema_version,
                                  data, metadata, recorded_at, n)
        RETURNING position
    """
    read_stream = (
        f"SELECT {_COLUMNS} FROM {{events}} WHERE stream_id = %s AND version BETWEEN %s AND %s "
        "ORDER BY version LIMIT %s"
    )
    read_stream_backwards = (
        f"SELECT {_COLUMNS} FROM {{events}} WHERE stream_id = %s AND version BETWEEN %s AND %s "
        "ORDER BY version DESC LIMIT %s"
    )
    # The page is chosen by position alone and cut at the horizon outside: the planner
    # cannot estimate a condition on the horizon, and on a table without statistics it
    # would sort every row after the cursor instead of walking the position index.
    # Positions at or above the horizon all come after those below it, so the cut
    # leaves a prefix of the page: nothing is skipped.
    read_all = (
        f"SELECT * FROM (SELECT {_COLUMNS} FROM {{events}} WHERE position > %s "
        f"ORDER BY position LIMIT %s) page WHERE position < {HORIZON} ORDER BY position"
    )
    read_all_of_types = (
        f"SELECT * FROM (SELECT {_COLUMNS} FROM {{events}} WHERE event_type = ANY(%s::text[]) "
        f"AND position > %s ORDER BY position LIMIT %s) page WHERE position < {HORIZON} "
        "ORDER BY position"
    )
    version = "SELECT coalesce(max(version), 0) FROM {events} WHERE stream_id = %s"
    horizon = f"SELECT {HORIZON}"
    head = f"SELECT coalesce(max(position), 0) FROM {{events}} WHERE position < {HORIZON}"
    count = (
        f"SELECT count(*) FROM {{events}} WHERE position > %s AND position <= %s "
        f"AND position < {HORIZON}"
    )
    stream_ids = (
        "SELECT stream_id FROM {events} WHERE version = 1 AND stream_id >= %s "
        "AND stream_id > %s AND starts_with(stream_id, %s) ORDER BY stream_id LIMIT %s"
    )
    save_snapshot = """
        INSERT INTO {snapshots} (stream_id, aggregate_type, version, event_id,
                                 snapshot_version, state, taken_at, build_seconds)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (stream_id) DO UPDATE SET aggregate_type = excluded.aggregate_type,
            version = excluded.version, event_id = excluded.event_id,
            snapshot_version = excluded.snapshot_version, state = excluded.state,
            taken_at = excluded.taken_at, build_seconds = excluded.build_seconds
    """
    load_snapshot = (
        "SELECT stream_id, aggregate_type, version, event_id, snapshot_version, state, "
        "taken_at, build_seconds FROM {snapshots} WHERE stream_id = %s"
    )
    # The feed is held back by the oldest transaction with an id in the whole cluster
    # (any database), or a prepared transaction: how many committed events wait above
    # the horizon, since when, and who holds it (hidden details need pg_read_all_stats).
    held_events = (
        f"SELECT count(*), min(recorded_at), clock_timestamp() FROM {{events}} "
        f"WHERE position >= {HORIZON}"
    )
    oldest_transaction = """
        SELECT pid, datname, greatest(clock_timestamp() - xact_start, interval '0')
        FROM (
            SELECT pid, datname, xact_start, age(backend_xid) AS age FROM pg_stat_activity
            WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
            UNION ALL
            SELECT NULL, database, prepared, age(transaction) FROM pg_prepared_xacts
        ) t ORDER BY age DESC LIMIT 1
    """
    # After a logical restore transaction ids start again below the stored positions:
    # raise the offset so that new positions sort after every stored one.
    max_position = "SELECT max(position) FROM {events}"
    next_xid = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
    lock_for_offset = "LOCK TABLE {events} IN SHARE MODE"

    get_checkpoint = "SELECT position, version FROM {checkpoints} WHERE name = %s"
    put_checkpoint = (
        "INSERT INTO {checkpoints} (name, position, version) VALUES (%s, %s, %s) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
        "version = excluded.version"
    )
    delete_checkpoint = "DELETE FROM {checkpoints} WHERE name = %s"
    rename_checkpoint = "UPDATE {checkpoints} SET name = %s WHERE name = %s"
    checkpoints = "SELECT name, position, version FROM {checkpoints}"
    park = """
        INSERT INTO {dead_letters} (projection, position, stream_id, version, event_type,
                                    error, attempts, parked_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (projection, position) DO UPDATE SET stream_id = excluded.stream_id,
            version = excluded.version, event_type = excluded.event_type,
            error = excluded.error, attempts = excluded.attempts,
            parked_at = excluded.parked_at
    """
    unpark = "DELETE FROM {dead_letters} WHERE projection = %s AND position = %s"
    forget_dead_letters = "DELETE FROM {dead_letters} WHERE projection = %s"
    move_dead_letters = "UPDATE {dead_letters} SET projection = %s WHERE projection = %s"
    dead_letters = (
        "SELECT projection, position, stream_id, version, event_type, error, attempts, "
        "parked_at FROM {dead_letters} WHERE projection = %s ORDER BY position"
    )
    # A lease is taken when free (expired, on the database's clock) with a new
    # generation; renewed and checked by its holder's every checkpoint commit, which
    # locks its row until the commit: a holder paused past its lease commits nothing.
    take_lease = """
        INSERT INTO {leases} AS l (name, owner, generation, expires_at)
        VALUES (%s, %s, 1, clock_timestamp() + %s * interval '1 second')
        ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,
            generation = l.generation + 1, expires_at = excluded.expires_at
        WHERE l.expires_at < clock_timestamp()
        RETURNING generation
    """
    renew_lease = """
        UPDATE {leases} SET expires_at = clock_timestamp() + %s * interval '1 second'
        WHERE name = %s AND owner = %s AND generation = %s AND expires_at > clock_timestamp()
        RETURNING 1
    """
    release_lease = (
        "UPDATE {leases} SET expires_at = '-infinity' "
        "WHERE name = %s AND owner = %s AND generation = %s"
    )
    table_exists = "SELECT to_regclass(%s) IS NOT NULL"
    table_indexes = """
        SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE i.indrelid = to_regclass(%s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
    """

    def __init__(self, schema: str, prefix: str, channel: str) -> None:
        super().__init__(**table_names(schema, prefix))
        self.prefix = prefix
        self.listen = f'LISTEN "{channel}"'
        self.notify = f"SELECT pg_notify('{channel}', %s)"


def event_records(rows: list[Any]) -> list[EventRecord]:
    """Turn rows fetched by the statements above into records."""
    new_tuple = tuple.__new__
    return [new_tuple(EventRecord, row) for row in rows]


def insert_columns(plan: AppendPlan) -> tuple[list[Any], ...]:
    """
    Return the column arrays of `Statements.insert` for the rows *plan* stores.

    Raises:
        ArgumentError: More events than one transaction's positions can number.
    """
    rows = plan.rows
    if len(rows) > MAX_EVENTS_PER_TRANSACTION:
        raise ArgumentError(
            f"an append to PostgreSQL holds at most {MAX_EVENTS_PER_TRANSACTION:,} "
            f"events, got {len(rows):,}"
        )
    return (
        [row.stream_id for row in rows],
        [row.version for row in rows],
        [row.record.event_id for row in rows],
        [row.record.event_type for row in rows],
        [row.record.schema_version for row in rows],
        [row.record.data for row in rows],
        [row.record.metadata for row in rows],
        [row.record.recorded_at for row in rows],
    )
