"""
The ``eventkit`` command: inspect, move, verify a store, and drive projections.

Never imported by ``eventkit/__init__.py``. Its libraries (click for the command line,
rich for tables, colours and progress bars) come with the ``cli`` extra and are
imported only once the command runs, so that a missing extra is named, not a traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

_LIBRARIES = ("click", "rich")


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the ``eventkit`` command with *argv* (the process's arguments if None).

    Returns:
        The exit code: 0 when all went well, 1 when something failed, 2 for a usage
        error.
    """
    missing = [name for name in _LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        print(  # noqa: T201 (a command's output)
            f"eventkit: the eventkit command needs the 'cli' extra ({', '.join(missing)} "
            "is missing): pip install 'eventkit-es[cli]'",
            file=sys.stderr,
        )
        return 1
    from eventkit._cli._app import run  # noqa: PLC0415 (only once the extra is known present)

    return run(argv)
