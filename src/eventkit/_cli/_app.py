"""
The ``eventkit`` command's parser and its commands, on click.

Exit codes: 0 when all went well; 1 when something failed (a one-line message on
standard error; the traceback too with ``--debug``); 2 for a usage error.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import pathlib
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

import click

from eventkit._cli import _inspect, _transfer
from eventkit._cli._output import Output, rate_text, styled
from eventkit._cli._stores import (
    APP_HELP,
    STORE_HELP,
    Failure,
    import_app,
    open_url,
    registry_from,
    scrub,
)
from eventkit._migration import verify as verify_store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from eventkit._records import EventRecord
    from eventkit._reports import VerifyReport
    from eventkit._store import BaseEventStore

F = Any  # a command function, as click's decorators take and return it

_KIB = 1024
_NAMED = 3  # the hint about unregistered types names this many
RECORD_COLUMNS = ("Position", "Stream", "Version", "Event type", "Schema", "Recorded at")


def store_option(function: F) -> F:
    """Add ``--store URL`` (or ``$EVENTKIT_STORE``)."""
    return click.option(
        "--store", "store_url", envvar="EVENTKIT_STORE", metavar="URL", help=STORE_HELP
    )(function)


def app_option(function: F) -> F:
    """Add ``--app MODULE[:ATTRIBUTE]`` (or ``$EVENTKIT_APP``, separated by spaces)."""
    return click.option(
        "--app",
        "apps",
        multiple=True,
        envvar="EVENTKIT_APP",
        metavar="MODULE[:ATTRIBUTE]",
        help=APP_HELP,
    )(function)


def registry_option(function: F) -> F:
    """Add ``--registry MODULE:NAME``."""
    return click.option(
        "--registry",
        metavar="MODULE:NAME",
        help="the EventRegistry to decode with (default: eventkit.default_registry)",
    )(function)


def json_option(function: F) -> F:
    """Add ``--json``."""
    return click.option(
        "--json", "as_json", is_flag=True, help="print JSON lines instead of a table"
    )(function)


def debug_option(function: F) -> F:
    """Add ``--debug``, which `run` looks for itself (errors can come before parsing)."""
    return click.option(
        "--debug", is_flag=True, expose_value=False, help="show the traceback of an error"
    )(function)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    importlib.metadata.version("eventkit-es"), prog_name="eventkit", message="%(prog)s %(version)s"
)
@debug_option
def cli() -> None:
    """Look into an event store, move it between backends, verify it, run projections."""


# -- looking into a store ---------------------------------------------------------------------


@cli.command()
@store_option
@json_option
@debug_option
def info(*, store_url: str | None, as_json: bool) -> None:
    """Show the head position, streams, events per type, projections and size."""
    out = Output(as_json=as_json)
    store, parsed = open_url(store_url)
    with _closing(store):
        found = _inspect.figures(store, parsed)
        held = _held_back(store)
    if as_json:
        out.json(
            {
                "store": parsed.shown,
                "head_position": found.head_position,
                "streams": found.streams,
                "events": found.events,
                "size_bytes": found.size_bytes,
                "held_back_events": held,
                "event_types": [
                    {"event_type": name, "schema_version": version, "events": count}
                    for (name, version), count in found.event_types.items()
                ],
                "projections": [
                    {
                        "name": p.name,
                        "version": p.version,
                        "position": p.position,
                        "lag_events": p.lag_events,
                        "dead_letters": p.dead_letters,
                    }
                    for p in found.projections
                ],
            }
        )
        return
    summary: list[tuple[str, object]] = [
        ("Store", parsed.shown),
        ("Head position", found.head_position),
        ("Streams", found.streams),
        ("Events", found.events),
        ("Size", _size(found.size_bytes)),
    ]
    if held is not None:
        summary.append(("Held back", f"{held} events (by transactions still running)"))
    out.table(("", ""), summary, header=False)
    out.table(
        ("Event type", "Schema version", "Events"),
        _inspect.event_type_rows(found.event_types),
        title="Event types",
        right=(1, 2),
    )
    if not found.projections:
        out.line("No projection has a checkpoint in this store.")
        return
    out.table(
        ("Projection", "Version", "Position", "Lag (events)", "Dead letters"),
        [
            (
                p.name,
                p.version,
                p.position,
                styled(str(p.lag_events), "yellow" if p.lag_events else "green"),
                styled(str(p.dead_letters), "red" if p.dead_letters else ""),
            )
            for p in found.projections
        ],
        title="Projections",
        right=(1, 2, 3, 4),
    )


def _held_back(store: BaseEventStore) -> int | None:
    # PostgreSQL holds committed events back from readers while older transactions run.
    feed_delay: Callable[[], Any] | None = getattr(store, "feed_delay", None)
    return None if feed_delay is None else int(feed_delay().events)


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < _KIB or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:,.1f} {unit} ({size} bytes)"
        value /= _KIB
    raise AssertionError  # pragma: no cover (the loop returns at GiB)


@cli.command()
@store_option
@click.option("--prefix", default="", metavar="PREFIX", help="only streams whose id starts so")
@json_option
@debug_option
def streams(*, store_url: str | None, prefix: str, as_json: bool) -> None:
    """List the streams, in id order, with their versions."""
    out = Output(as_json=as_json)
    store, _ = open_url(store_url)
    with _closing(store):
        rows = (
            (stream_id, store.stream_version(stream_id))
            for stream_id in store.stream_ids(prefix=prefix)
        )
        if as_json:
            for stream_id, version in rows:
                out.json({"stream_id": stream_id, "version": version})
        else:
            out.table(("Stream", "Version"), rows, right=(1,))


@cli.command()
@store_option
@click.argument("stream")
@click.option(
    "--from-version", type=click.IntRange(min=1), default=1, metavar="N", help="start at version N"
)
@click.option("--limit", type=click.IntRange(min=0), metavar="N", help="show at most N events")
@json_option
@debug_option
def read(
    *,
    store_url: str | None,
    stream: str,
    from_version: int,
    limit: int | None,
    as_json: bool,
) -> None:
    """Show the events of the stream STREAM, as stored."""
    out = Output(as_json=as_json)
    store, _ = open_url(store_url)
    with _closing(store):
        if store.stream_version(stream) == 0:
            raise Failure(f"the store has no stream {stream!r}")
        records = store.read_stream_records(stream, from_version=from_version, limit=limit)
    _show_records(out, records)


@cli.command()
@store_option
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    default=10,
    metavar="N",
    help="show the last N events first (default: 10)",
)
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="TYPE",
    help="only events of this stored type name (repeatable)",
)
@click.option("-f", "--follow", is_flag=True, help="then show new events as they are appended")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.01),
    default=0.5,
    metavar="SECONDS",
    help="how often --follow looks for new events (default: 0.5)",
)
@json_option
@debug_option
def tail(
    *,
    store_url: str | None,
    lines: int,
    types: tuple[str, ...],
    follow: bool,
    interval: float,
    as_json: bool,
) -> None:
    """Show the newest events of the whole store; with --follow, keep showing new ones."""
    out = Output(as_json=as_json)
    store, _ = open_url(store_url)
    selected = list(types) or None
    with _closing(store):
        last = _inspect.last_records(store, lines, selected)
        _show_records(out, last, with_data=True)
        if not follow:
            return
        after = last[-1].position if last else store.head_position()
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                new = list(store.read_all_records(after_position=after, event_types=selected))
                if new:
                    _show_records(out, new, with_data=True, header=False)
                    after = new[-1].position
                sys.stdout.flush()
                time.sleep(interval)


def _show_records(
    out: Output, records: Sequence[EventRecord], *, with_data: bool = True, header: bool = True
) -> None:
    if out.as_json:
        for record in records:
            sys.stdout.write(_transfer.record_json(record) + "\n")
        return
    if not records:
        return
    columns = (*RECORD_COLUMNS, "Event id", "Data", "Metadata") if with_data else RECORD_COLUMNS
    out.table(
        columns,
        [
            (
                r.position,
                r.stream_id,
                r.version,
                styled(r.event_type, "bold"),
                r.schema_version,
                r.recorded_at.isoformat(timespec="microseconds"),
                *((str(r.event_id), r.data, r.metadata) if with_data else ()),
            )
            for r in records
        ],
        right=(0, 2, 4),
        header=header,
    )


# -- moving a store -----------------------------------------------------------------------------


@cli.command()
@store_option
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option("--force", is_flag=True, help="overwrite FILE if it exists")
@debug_option
def export(*, store_url: str | None, file: str, force: bool) -> None:
    """Write every event of the store to FILE ('-': standard output), exactly as stored."""
    out = Output()
    if file != "-" and pathlib.Path(file).exists() and not force:
        raise Failure(f"{file} exists; add --force to overwrite it")
    store, parsed = open_url(store_url)
    started = time.monotonic()
    with _closing(store), _output_file(file) as target, out.progress() as bar:
        task = bar.add_task("export", total=1.0, rate="")
        count = _transfer.export(
            store,
            target,
            source=parsed.shown,
            progress=lambda p: bar.update(task, completed=p.fraction, rate=f"{p.events:,} events"),
        )
    out.note(f"exported {count} events from {parsed.shown} to {file} ({_rate(count, started)})")


@contextlib.contextmanager
def _output_file(file: str) -> Iterator[Any]:
    if file == "-":
        yield sys.stdout
        return
    with pathlib.Path(file).open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as f:
        yield f


@cli.command(name="import")
@store_option
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option(
    "--resume",
    is_flag=True,
    help="the target may hold events already: those of FILE it holds are skipped "
    "(to finish an interrupted import)",
)
@debug_option
def import_(*, store_url: str | None, file: str, resume: bool) -> None:
    """Append the events of an export FILE ('-': standard input) to the store."""
    out = Output()
    if file != "-" and not pathlib.Path(file).is_file():
        raise Failure(f"cannot read {file}: no such file")
    store, parsed = open_url(store_url, write=True)
    total = None if file == "-" else pathlib.Path(file).stat().st_size
    started = time.monotonic()
    with _closing(store), _input_file(file) as source, out.progress() as bar:
        task = bar.add_task("import", total=total, rate="")
        count = _transfer.import_(
            store,
            source,
            name=file,
            resume=resume,
            progress=lambda events, done: bar.update(
                task, completed=done, rate=f"{events:,} events"
            ),
        )
    out.note(f"imported {count} events from {file} into {parsed.shown} ({_rate(count, started)})")


@contextlib.contextmanager
def _input_file(file: str) -> Iterator[Any]:
    if file == "-":
        yield sys.stdin.buffer
        return
    with pathlib.Path(file).open("rb", buffering=1 << 20) as f:
        yield f


def _rate(count: int, started: float) -> str:
    return rate_text(count, time.monotonic() - started) or "instantly"


# -- checking a store ------------------------------------------------------------------------


@cli.command()
@store_option
@app_option
@registry_option
@debug_option
def verify(*, store_url: str | None, apps: tuple[str, ...], registry: str | None) -> None:
    """Check that every stored event still loads with the application's code."""
    out = Output()
    import_app(apps)
    store, _ = open_url(store_url, registry=registry_from(registry))
    with _closing(store):
        report = verify_store(store)
    out.line(str(report))
    hint = _unknown_types_hint(report, given=bool(apps) or registry is not None)
    if hint:
        out.note(hint)
    if not report.ok:
        raise Failure(f"{report.failed} of {report.loaded + report.failed} events do not load")


def _unknown_types_hint(report: VerifyReport, *, given: bool) -> str | None:
    unknown = [
        group.event_type
        for group in report.groups
        if group.first_failure is not None
        and group.first_failure.error.startswith("UnknownEventType")
    ]
    if not unknown:
        return None
    names = sorted(set(unknown))
    shown = ", ".join(repr(name) for name in names[:_NAMED]) + (", ..." * (len(names) > _NAMED))
    what = "no application module was imported" if not given else "the modules imported do not"
    return (
        f"hint: events of {len(names)} stored type(s) cannot be decoded because no class is "
        f"registered for them ({shown}); {what}: name the modules that define the "
        "application's events with --app MODULE (or EVENTKIT_APP)"
    )


@contextlib.contextmanager
def _closing(store: BaseEventStore) -> Iterator[BaseEventStore]:
    try:
        yield store
    finally:
        store.close()


# -- running the command ----------------------------------------------------------------------


def run(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 (a return per outcome)
    """Run the command; return its exit code, having printed any error on one line."""
    from eventkit._cli import _runners  # noqa: PLC0415 (registers the projections commands)

    del _runners
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("EVENTKIT_DEBUG") == "1"
    try:
        result = cli.main(args=args, prog_name="eventkit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        exc.show()
        return 2
    except (click.Abort, KeyboardInterrupt):
        _error("interrupted")
        return 1
    except click.ClickException as exc:
        _error(exc.format_message())
        return 1
    except Failure as exc:
        _report(exc, debug=debug)
        return exc.code
    except Exception as exc:  # noqa: BLE001 (an operator sees one line; --debug shows more)
        _report(exc, debug=debug, prefix=f"{type(exc).__name__}: ")
        return 1
    return int(result) if isinstance(result, int) else 0


def _report(exc: BaseException, *, debug: bool, prefix: str = "") -> None:
    if debug:
        sys.stderr.write(scrub("".join(traceback.format_exception(exc))))
    message = " ".join(str(exc).split()) or type(exc).__name__
    _error(prefix + message)


def _error(message: str) -> None:
    sys.stderr.write(f"eventkit: error: {scrub(message)}\n")
