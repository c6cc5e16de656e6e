"""
Connections to PostgreSQL: what is shown of them, and where their errors are translated.

Names shown in reprs and errors never hold a password; stream lock keys are computed
here; `Boundary` is the one place where psycopg's exceptions become eventkit errors.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Self

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eventkit.exceptions import StoreError

if TYPE_CHECKING:
    from types import TracebackType

# The password of a URL's user info: libpq ends the user info at the first "@", and
# looks for it only before the first "/" (an "@" or "/" in a password is escaped).
_URL_PASSWORD = re.compile(r"^(?P<head>[a-z]+://[^:/@]*:)[^@/]*(?P<tail>@.*)$", re.IGNORECASE)
# A secret in a URL's query string (``?password=...``, ``&sslpassword=...``).
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?:ssl)?password=)[^&#]*", re.IGNORECASE)
# The connection parameters that are secrets: the password, and the client key's passphrase.
_SECRETS = ("password", "sslpassword")
_MASK = "***"


def safe_conninfo(conninfo: str) -> str:
    """
    Return *conninfo* (a URL or ``key=value`` pairs) with its secrets shown as ``***``.

    What is shown in reprs, logs and errors: never the password (in a URL's user info
    or its query string), nor the passphrase of a client key (``sslpassword``).
    """
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<an unreadable connection string>"
    if not any(params.get(key) for key in _SECRETS):
        return conninfo
    if "://" in conninfo:
        shown = _URL_PASSWORD.sub(rf"\g<head>{_MASK}\g<tail>", conninfo)
        shown = _QUERY_SECRET.sub(rf"\g<head>{_MASK}", shown)
        if _masked(shown):
            return shown
    # Pairs, or a URL whose secrets the patterns did not find: rebuilt, every secret masked.
    pairs = {key: str(value) for key, value in params.items() if value is not None}
    for key in _SECRETS:
        if pairs.get(key):
            pairs[key] = _MASK
    return make_conninfo("", **pairs)


def _masked(shown: str) -> bool:
    # Whether every secret of the connection string *shown* is the mask.
    try:
        params = conninfo_to_dict(shown)
    except psycopg.ProgrammingError:
        return False
    return all(params.get(key) in (None, "", _MASK) for key in _SECRETS)


def stream_lock_key(namespace: str, stream_id: str) -> int:
    """
    Return the advisory lock key of a stream: 64 bits of a hash, as a signed integer.

    *namespace* names the store's tables, so that stores in other schemas of the same
    database do not share keys. A collision only makes two streams' writers wait for
    each other; it never lets an event be read out of order.
    """
    digest = hashlib.blake2b(f"{namespace}\x00{stream_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Boundary:
    """
    Turn psycopg exceptions raised inside a ``with`` block into `StoreError`.

    Stateless: a lost connection, a server that went away, a statement the server
    refused. The message names the store (without its password) and what failed; the
    driver's exception is ``__cause__``. Eventkit's own errors pass through, as do
    cancellations.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, psycopg.OperationalError):
            raise StoreError(
                f"PostgreSQL event store {self.name}: the connection failed: {_first_line(exc)}"
            ) from exc
        if isinstance(exc, psycopg.Error):
            detail = f"{type(exc).__name__}: {_first_line(exc)}"
            raise StoreError(f"PostgreSQL event store {self.name}: {detail}") from exc


def _first_line(exc: BaseException) -> str:
    # Server messages carry context lines (the statement, hints): the first says it.
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
