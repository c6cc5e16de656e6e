"""
How commands print: tables, JSON lines, messages and progress bars.

Tables are rich's, coloured, on a terminal, and plain aligned columns elsewhere; JSON
lines on request; progress bars on standard error, drawn only when it is a terminal.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from eventkit._cli._stores import scrub

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

# Where the output is not a terminal, tables are as wide as their content: a pipe to
# grep or a file should not see lines cut or wrapped at 80 columns.
_UNLIMITED = 100_000

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_text(value: object) -> str:
    """Return *value* as compact JSON (integers stay integers, however large)."""
    return _encode(value)


class Output:
    """A command's two streams: results on standard output, messages on standard error."""

    def __init__(self, *, as_json: bool = False) -> None:
        self.as_json = as_json
        self.out = Console(highlight=False, soft_wrap=False)
        if not self.out.is_terminal:
            self.out = Console(highlight=False, width=_UNLIMITED, color_system=None)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def terminal(self) -> bool:
        """Whether results go to a terminal (and may be coloured)."""
        return self.out.is_terminal

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[object]],
        *,
        title: str | None = None,
        right: Iterable[int] = (),
        header: bool = True,
    ) -> None:
        """Print *rows* under *columns*; numbers in the columns *right* align right."""
        aligned = set(right)
        table = Table(
            box=box.SIMPLE_HEAD if self.terminal else None,
            show_header=header,
            header_style="bold cyan" if self.terminal else "",
            title=title,
            title_justify="left",
            title_style="bold" if self.terminal else "",
            pad_edge=False,
            padding=(0, 2, 0, 0),
        )
        for index, name in enumerate(columns):
            table.add_column(name, justify="right" if index in aligned else "left", overflow="fold")
        for row in rows:
            table.add_row(*(_cell(value) for value in row))
        if title:
            self._print(Text(""))
        self._print(table)

    def _print(self, renderable: Text | Table) -> None:
        if self.terminal:
            self.out.print(renderable)
            return
        # Plain columns for pipes and files, without the padding after the last one.
        with self.out.capture() as captured:
            self.out.print(renderable)
        sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))

    def line(self, text: str, *, style: str | None = None) -> None:
        """Print one line of results."""
        self._print(Text(scrub(text), style=style or ""))

    def json(self, value: object) -> None:
        """Print *value* as one line of JSON."""
        sys.stdout.write(json_text(value) + "\n")

    def note(self, text: str) -> None:
        """Print a message on standard error."""
        self.err.print(Text(scrub(text)))

    def progress(self, *, transient: bool = False) -> Progress:
        """Return a progress bar on standard error, drawn only when it is a terminal."""
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.err,
            disable=not self.err.is_terminal,
            transient=transient,
        )


def _cell(value: object) -> Text:
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, Text):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Text(str(value))
    return Text(scrub(str(value)))


def styled(text: str, style: str) -> Text:
    """Return a table cell with a style (shown on terminals only)."""
    return Text(text, style=style)


def rate_text(done: int, seconds: float) -> str:
    """Return a speed, in events per second."""
    return f"{done / seconds:,.0f} events/s" if seconds > 0 else ""


def as_dict(fields: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """Return a JSON object's fields from parallel sequences."""
    return dict(zip(fields, values, strict=True))
