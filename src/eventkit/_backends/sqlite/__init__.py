"""The SQLite backend: `SQLiteEventStore`, its async form, its tables and connections."""

from eventkit._backends.sqlite.aio import AsyncSQLiteEventStore
from eventkit._backends.sqlite.store import SQLiteEventStore

__all__ = ["AsyncSQLiteEventStore", "SQLiteEventStore"]
