"""What drctl shows: rich tables for people, JSON for scripts, one-line errors with an exit code."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from domain.errors import PlanError

# Exit codes: 1 = the command could not do its work, 2 = the input (a plan, an argument) is invalid.
EXIT_FAILED = 1
EXIT_INVALID = 2


def console() -> Console:
    """A console on the current stdout (looked up per call, so test runners can capture it)."""
    return Console(soft_wrap=False)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``message`` to stderr and stop with ``code``; no traceback."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def fail_plan(error: PlanError) -> NoReturn:
    """Print every problem of an invalid plan, one ``field: problem (fix: ...)`` per line, and exit 2."""
    typer.echo(f"error: invalid plan {error.source}: {len(error.issues)} problem(s)", err=True)
    for issue in error.issues:
        typer.echo(f"  {issue}", err=True)
    raise typer.Exit(EXIT_INVALID)


def emit_json(data: Any) -> None:
    """Write ``data`` to stdout as indented JSON."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A rich table of plain-text cells (``[0]`` is not markup) that folds long values instead of cutting them."""
    result = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        result.add_column(column, overflow="fold")
    for row in rows:
        result.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    return result


def show(*renderables: Any) -> None:
    """Print rich renderables (tables) to stdout."""
    out = console()
    for renderable in renderables:
        out.print(renderable)
