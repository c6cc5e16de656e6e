"""Fixtures of the backend tests."""

from tests.backends.postgres_support import _schemas

__all__ = ["_schemas"]
