"""
The ``eventkit`` command line.

``eventkit verify PATH`` opens an SQLite store read-only with the application's
registry and reports whether every stored event still loads. Never imported by
``eventkit/__init__.py``: importing eventkit does not parse command lines.
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import sys
from typing import TYPE_CHECKING

from eventkit._backends.sqlite import SQLiteEventStore
from eventkit._events import EventRegistry, default_registry
from eventkit._migration import verify
from eventkit.exceptions import EventKitError

if TYPE_CHECKING:
    from collections.abc import Sequence

# Exit codes: 0 every event loads, 1 some do not, 2 the command could not run.
_FAILED = 1
_ERROR = 2


class _UsageError(Exception):
    """The command's arguments cannot be acted on."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventkit", description="Tools for eventkit event stores."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "verify",
        help="check that every stored event still loads",
        description=(
            "Read every stored event of an SQLite event store (opened read-only), decode "
            "it with the application's registry and upcasters, and report per event type "
            "and schema version how many load and the first that fails. Exits with 0 when "
            "every event loads, 1 when some do not, 2 when the check could not run."
        ),
    )
    check.add_argument("path", help="the SQLite database file")
    check.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first, so that its events and upcasters register (repeatable)",
    )
    check.add_argument(
        "--registry",
        metavar="MODULE:NAME",
        help="the EventRegistry to use (default: eventkit.default_registry)",
    )
    check.add_argument(
        "--table-prefix",
        default="eventkit_",
        help="the prefix of the store's table names (default: %(default)s)",
    )
    return parser


def _registry(spec: str | None) -> EventRegistry:
    if spec is None:
        return default_registry
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise _UsageError(f"--registry must be MODULE:NAME, got {spec!r}")
    found = getattr(_import(module_name), attribute, None)
    if not isinstance(found, EventRegistry):
        raise _UsageError(f"{spec} is not an EventRegistry (got {type(found).__name__})")
    return found


def _import(name: str) -> object:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise _UsageError(f"cannot import {name}: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the ``eventkit`` command with *argv* (the process's arguments if None).

    Returns:
        The exit code: 0 when every event loads, 1 when some do not, 2 on errors.
    """
    args = _parser().parse_args(argv)
    # As with ``python -m``, the application's modules import from where it is run.
    here = str(pathlib.Path.cwd())
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)
    try:
        for module in args.modules:
            _import(module)
        registry = _registry(args.registry)
        with SQLiteEventStore(
            args.path, registry=registry, table_prefix=args.table_prefix, read_only=True
        ) as store:
            report = verify(store)
    except (_UsageError, EventKitError, ValueError) as exc:
        print(f"eventkit: error: {exc}", file=sys.stderr)  # noqa: T201 (a command's output)
        return _ERROR
    print(report)  # noqa: T201 (a command's output)
    return 0 if report.ok else _FAILED
