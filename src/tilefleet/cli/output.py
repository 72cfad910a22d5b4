"""What every command prints: log set-up, one-line errors, a run's summary."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import typer

from tilefleet.engine.result import RunResult
from tilefleet.errors import ExitCode

# Set by the root's -q/--quiet: warnings and errors only, no progress bar, no summary.
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def fail(message: str, code: int = ExitCode.INVALID) -> NoReturn:
    """Print ``error: message`` on stderr and exit (3, a bad job or command, by default)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(int(code))


def show_result(result: RunResult) -> NoReturn:
    """Print a run's summary (or a dry run's plan) and exit with its status."""
    if _quiet:
        raise typer.Exit(int(result.exit_code))
    if result.dry_run:
        typer.echo(result.summary(), nl=False)
    else:
        typer.echo("")
        typer.echo(result.summary(), nl=False)
        if result.outputs:
            typer.echo(f"outputs    {result.outputs}")
        typer.echo(f"reports    {result.run_dir}/ ({', '.join(result.reports)})")
        page = result.reports.get("report.html")
        if page is not None:  # the page to open: the map, the timeline, the failures
            typer.echo(f"open       {page.resolve().as_uri()}")
    raise typer.Exit(int(result.exit_code))


def ask(question: str) -> bool:
    return typer.confirm(question, default=False)


def confirm_on_terminal():
    """The cost question's asker when there is a terminal to ask on, else None."""
    return ask if sys.stdin.isatty() else None


def setup_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if _quiet else logging.INFO
    logger = logging.getLogger("tilefleet")
    logger.handlers.clear()
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
