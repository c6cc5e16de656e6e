"""
The PostgreSQL backend: `PostgresEventStore` and its async form, on psycopg 3.

Importing this package imports psycopg (the ``postgres`` extra); ``import eventkit``
does not, and names these classes lazily.
"""

from eventkit._backends.postgres.store import Lease, PostgresEventStore
from eventkit._backends.postgres.store_async import AsyncLease, AsyncPostgresEventStore, FeedDelay

__all__ = ["AsyncLease", "AsyncPostgresEventStore", "FeedDelay", "Lease", "PostgresEventStore"]
