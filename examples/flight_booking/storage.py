"""
Where the service keeps its data: the store named by a URL, and the read side.

Every process of the service opens the store with `open_store` and queries the read
models through `ReadModels`, so these are the two places to change when the events
move to PostgreSQL (``postgresql://...``), or the read models to a service fed from
a broker. Today both live in one SQLite file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventkit import SQLiteEventStore

if TYPE_CHECKING:
    from collections.abc import Sequence

SQLITE_URL = "sqlite:///"


def sqlite_path(url: str) -> Path:
    """
    Return the file of the SQLite store named by *url*.

    *url* is ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, or a
    plain path.
    """
    if url.startswith(SQLITE_URL):
        return Path(url.removeprefix(SQLITE_URL))
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise SystemExit(f"{scheme}:// stores are not supported yet: give a sqlite:/// URL")
    return Path(url)


def open_store(url: str) -> SQLiteEventStore:
    """Open the event store named by *url* (see `sqlite_path`)."""
    return SQLiteEventStore(sqlite_path(url))


class ReadModels:
    """
    A read-only connection to the read models, for one thread.

    The projections write their tables in the store's file, in the transactions that
    move their checkpoints; readers open the file read-only beside them. In WAL mode
    a reader never waits for the writer, and each query sees one committed state.
    """

    def __init__(self, url: str) -> None:
        uri = sqlite_path(url).resolve().as_uri() + "?mode=ro"
        self._conn = sqlite3.connect(uri, uri=True, timeout=10)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query in its own read transaction and return its rows."""
        return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def remove_previous_run(path: Path, tables: Sequence[str]) -> None:
    """Delete the file a previous run left at *path*, and only such a file."""
    if not path.exists():
        return
    try:
        conn = sqlite3.connect(path)
        try:
            found = [
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        found = []
    ours = [
        name.startswith("eventkit_") or name.removesuffix("__rebuild") in tables for name in found
    ]
    if not found or not all(ours):
        raise SystemExit(f"{path} is not a file this example wrote; give another path")
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    for lock in path.parent.glob(f"{path.name}-eventkit_projection-*.lock"):
        lock.unlink()
