"""Shared test configuration: hypothesis profiles (HYPOTHESIS_PROFILE), PostgreSQL schemas."""

import os

from hypothesis import HealthCheck, settings

# The throwaway PostgreSQL schemas of tests that use the server, wherever they are.
from tests.backends.postgres_support import _schemas

__all__ = ["_schemas"]

# ci: derandomized and bounded, so CI is repeatable and quick.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=40,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
# dev: the default for local runs; random, so repeated runs explore new cases.
settings.register_profile("dev", max_examples=60, deadline=None)
# thorough: long local runs that find what ci misses (make test-thorough).
settings.register_profile(
    "thorough",
    max_examples=2000,
    stateful_step_count=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
