"""Reaching the test PostgreSQL server: its DSN, whether it answers, throwaway schemas."""

import os
import uuid

import psycopg
import pytest

DSN = os.environ.get("EVENTKIT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRED = os.environ.get("EVENTKIT_REQUIRE_POSTGRES") == "1"


def _answers() -> str | None:
    try:
        with psycopg.connect(DSN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


_PROBLEM = _answers()


def require_server():
    """Skip (or, where PostgreSQL is required, fail) when the server does not answer."""
    if _PROBLEM is None:
        return
    if REQUIRED:
        pytest.fail(f"EVENTKIT_REQUIRE_POSTGRES=1 but PostgreSQL does not answer: {_PROBLEM}")
    pytest.skip(f"no PostgreSQL server answers at the test DSN: {_PROBLEM}")


def new_schema() -> str:
    """Return a schema name no other test uses."""
    return f"eventkit_test_{uuid.uuid4().hex[:12]}"


def drop_schemas(names):
    """Drop the schemas *names* and everything in them."""
    if not names:
        return
    with psycopg.connect(DSN, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(name="schemas")
def _schemas():
    """A list that tests add schema names to; every one of them is dropped afterwards."""
    require_server()
    created = []
    yield created
    drop_schemas(created)
