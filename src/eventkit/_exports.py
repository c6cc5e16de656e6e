"""How the public modules present the names they re-export from private ones."""

from __future__ import annotations

from typing import Any


def claim(module: str, namespace: dict[str, Any], names: list[str]) -> None:
    """
    Make the objects *names* in *namespace* say they live in the public *module*.

    Reprs, tracebacks and the docs then name the public path (``eventkit.Repository``),
    not the private module an object happens to be defined in.
    """
    for name in names:
        obj = namespace[name]
        if getattr(obj, "__module__", "").startswith("eventkit._"):
            obj.__module__ = module
