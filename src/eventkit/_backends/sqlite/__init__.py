"""The SQLite backend: `SQLiteEventStore`, its tables and its connections."""

from eventkit._backends.sqlite.store import SQLiteEventStore

__all__ = ["SQLiteEventStore"]
