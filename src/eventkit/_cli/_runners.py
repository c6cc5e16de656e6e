"""
``eventkit projections``: drive the application's `ProjectionRunner` from a shell.

The runner is found at ``--app MODULE:ATTRIBUTE``: a `ProjectionRunner` (on the store
the application opened), or a callable that builds one given the store that
``--store`` names.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from eventkit._cli import _inspect
from eventkit._cli._app import (
    app_option,
    cli,
    debug_option,
    json_option,
    registry_option,
    store_option,
)
from eventkit._cli._output import Output, styled
from eventkit._cli._stores import Failure, import_app, lookup, open_url, registry_from
from eventkit._projections import ProjectionRunner

if TYPE_CHECKING:
    from eventkit._store import BaseEventStore


@cli.group()
def projections() -> None:
    """Show, rebuild, replay and repair the application's projections."""


def _runner(
    store_url: str | None, apps: tuple[str, ...], registry: str | None
) -> tuple[ProjectionRunner, BaseEventStore | None]:
    named = import_app(apps)
    if len(named) != 1:
        raise Failure(
            "name the application's projection runner once, with --app MODULE:ATTRIBUTE "
            f"(or EVENTKIT_APP); {'none was' if not named else 'several were'} given",
            2,
        )
    module_name, attribute = named[0]
    found = lookup(module_name, attribute)
    if isinstance(found, ProjectionRunner):
        return found, None
    if not callable(found):
        raise Failure(
            f"{module_name}:{attribute} is neither a ProjectionRunner nor a callable that "
            f"makes one (it is a {type(found).__name__})",
            2,
        )
    store, _ = open_url(store_url, write=True, registry=registry_from(registry))
    try:
        made = found(store)
    except BaseException:
        store.close()
        raise
    if not isinstance(made, ProjectionRunner):
        store.close()
        raise Failure(
            f"{module_name}:{attribute}(store) returned a {type(made).__name__}, "
            "not a ProjectionRunner",
            2,
        )
    return made, store


def runner_options(function: Any) -> Any:
    """Add the options every projections command takes."""
    for option in (debug_option, registry_option, app_option, store_option):
        function = option(function)
    return function


@projections.command()
@runner_options
@json_option
def status(
    *,
    store_url: str | None,
    apps: tuple[str, ...],
    registry: str | None,
    as_json: bool,
) -> None:
    """Show each projection's checkpoint, events still to handle, and dead letters."""
    out = Output(as_json=as_json)
    runner, store = _runner(store_url, apps, registry)
    try:
        rows = []
        states = runner.status()
        for projection in runner.projections:
            state = states[projection.name]
            lag = _inspect.count_after(runner.store, state.position, projection.event_types)  # type: ignore[arg-type]
            rows.append((projection.name, state.version, state.position, lag, state.dead_letters))
    finally:
        if store is not None:
            store.close()
    if as_json:
        for name, version, position, lag, dead in rows:
            out.json(
                {
                    "name": name,
                    "version": version,
                    "position": position,
                    "lag_events": lag,
                    "dead_letters": dead,
                }
            )
        return
    out.table(
        ("Projection", "Version", "Position", "Lag (events)", "Dead letters"),
        [
            (
                name,
                version,
                position,
                styled(str(lag), "yellow" if lag else "green"),
                styled(str(dead), "red" if dead else ""),
            )
            for name, version, position, lag, dead in rows
        ],
        right=(1, 2, 3, 4),
    )


def _run(
    store_url: str | None,
    apps: tuple[str, ...],
    registry: str | None,
    action: Any,
) -> Any:
    runner, store = _runner(store_url, apps, registry)
    try:
        return action(runner)
    finally:
        if store is not None:
            store.close()


@projections.command()
@click.argument("name")
@runner_options
def rebuild(
    *, store_url: str | None, apps: tuple[str, ...], registry: str | None, name: str
) -> None:
    """Rebuild the projection NAME from the first event, beside the old read model, then swap."""
    _run(store_url, apps, registry, lambda runner: runner.rebuild(name, out=sys.stderr))
    Output().note(f"rebuilt {name}")


@projections.command()
@click.argument("name")
@runner_options
def replay(
    *, store_url: str | None, apps: tuple[str, ...], registry: str | None, name: str
) -> None:
    """Empty the read model of the projection NAME and apply every event again, in place."""
    _run(store_url, apps, registry, lambda runner: runner.replay(name, out=sys.stderr))
    Output().note(f"replayed {name}")


@projections.command(name="dead-letters")
@click.argument("name")
@runner_options
@json_option
def dead_letters(
    *,
    store_url: str | None,
    apps: tuple[str, ...],
    registry: str | None,
    name: str,
    as_json: bool,
) -> None:
    """List the events the projection NAME parked, oldest first."""
    out = Output(as_json=as_json)
    letters = _run(store_url, apps, registry, lambda runner: runner.dead_letters(name))
    if as_json:
        for letter in letters:
            out.json({**letter._asdict(), "parked_at": letter.parked_at.isoformat()})
        return
    if not letters:
        out.line(f"{name} has no dead letters.")
        return
    out.table(
        ("Position", "Stream", "Version", "Event type", "Attempts", "Parked at", "Error"),
        [
            (
                letter.position,
                letter.stream_id,
                letter.version,
                letter.event_type,
                letter.attempts,
                letter.parked_at.isoformat(timespec="seconds"),
                styled(letter.error, "red"),
            )
            for letter in letters
        ],
        right=(0, 2, 4),
    )


@projections.command()
@click.argument("name")
@click.option(
    "--position",
    "positions",
    multiple=True,
    type=click.IntRange(min=1),
    metavar="POSITION",
    help="retry only the dead letter at POSITION (repeatable; default: all)",
)
@runner_options
def retry(
    *,
    store_url: str | None,
    apps: tuple[str, ...],
    registry: str | None,
    name: str,
    positions: tuple[int, ...],
) -> None:
    """Handle the projection NAME's dead letters again; those that succeed are unparked."""
    out = Output()

    def action(runner: ProjectionRunner) -> tuple[int, int]:
        letters = runner.dead_letters(name)
        tried = [letter for letter in letters if not positions or letter.position in positions]
        succeeded = runner.retry_dead_letters(name, positions or None)
        return succeeded, len(tried) - succeeded

    succeeded, failed = _run(store_url, apps, registry, action)
    out.note(f"retried dead letters of {name}: {succeeded} succeeded, {failed} failed again")
    if failed:
        raise Failure(f"{failed} dead letters of {name} failed again and stay parked")
