"""The ``tilefleet`` command: parse options, call the library, print. No logic of its own.

Each recipe's command, ``run``/``plan`` and the executors' options are made from the
models that declare them (see :mod:`tilefleet.cli.generate`). A bad option or a bad value
is a usage error: exit status 3, like any other invalid job.

The commands that import much (one per recipe, ``watch``, which knows every watchable
recipe, and the groups ``tiles``, ``cells``, ``task``) are made when they are named, so
``tilefleet cogify …`` imports cogify's modules and no other recipe's. ``tilefleet --help``
lists every command with its help, so it makes them all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main
from typer.core import TyperGroup

from tilefleet import __version__
from tilefleet.cli.generate import command, extra_argument, extra_option
from tilefleet.cli.monitor import MONITOR_HELP, monitor
from tilefleet.cli.output import fail, set_quiet, setup_logging
from tilefleet.cli.recipes import (
    Verbose,
    add_recipe_command,
    monitor_options,
    plan_values,
    run_and_executor_options,
    run_values,
)
from tilefleet.errors import ExitCode, JobError
from tilefleet.recipes import recipe_names

log = logging.getLogger("tilefleet")

#: The base of every command-line usage error (typer vendors its own click; BadParameter
#: is the public name of one of them).
UsageError = typer.BadParameter.__base__


@contextmanager
def _usage_errors_are_invalid_jobs() -> Iterator[None]:
    try:
        yield
    except UsageError as exc:
        exc.exit_code = ExitCode.INVALID
        raise


def _made_on(add: Callable[[typer.Typer], None]) -> Any:
    """The click command that ``add`` puts on a Typer of its own."""
    own = typer.Typer(add_completion=False)
    add(own)
    return typer.main.get_command(own)


def _group(module: str, name: str) -> Any:
    """The click group of the Typer ``app`` of ``module``, named ``name``."""
    group = typer.main.get_command(import_module(module).app)
    group.name = name
    return group


def _watch_command() -> Any:
    from tilefleet.cli.watch import add_watch_command

    return _made_on(add_watch_command)


#: The commands made when named, after the recipes' and the others in the listing.
_MADE_WHEN_NAMED: dict[str, Callable[[], Any]] = {
    "watch": _watch_command,
    "tiles": lambda: _group("tilefleet.cli.tiles", "tiles"),
    "cells": lambda: _group("tilefleet.cli.cells", "cells"),
    "task": lambda: _group("tilefleet.cli.task", "task"),
}


class _Tilefleet(TyperGroup):
    """The root group: usage errors (an unknown option, a bad value, a missing argument)
    exit 3 like any invalid job, not click's 2, which tilefleet keeps for "every task
    failed". Its commands that import much are made when named (see the module's doc)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.eager = tuple(self.commands)  # those registered on ``app`` below

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self._recipe_commands(), *self.eager, *_MADE_WHEN_NAMED]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name not in self.commands:
            made = self._make(name)
            if made is None:
                return None
            self.commands[name] = made
        return super().get_command(ctx, name)

    def _recipe_commands(self) -> list[str]:
        """A command per registered recipe whose name is not a command already."""
        return [
            name
            for name in recipe_names()
            if name not in self.eager and name not in _MADE_WHEN_NAMED
        ]

    def _make(self, name: str) -> Any:
        if name in _MADE_WHEN_NAMED:
            return _MADE_WHEN_NAMED[name]()
        if name not in self._recipe_commands():
            return None
        try:
            return _made_on(lambda own: add_recipe_command(own, name, name))
        except JobError as exc:  # a recipe that cannot be loaded (a missing extra)
            log.debug("no command for recipe %s: %s", name, exc)
            return None

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _usage_errors_are_invalid_jobs():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _usage_errors_are_invalid_jobs():
            return super().invoke(ctx)


app = typer.Typer(
    cls=_Tilefleet,
    name="tilefleet",
    help="Earth-observation work tile by tile: plan one idempotent task per tile, run it on "
    "the engine you pick, keep an exact record.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion
    pretty_exceptions_enable=False,
)

Workers = Annotated[
    int | None, typer.Option("--workers", min=1, help="Parallel workers [default: CPU count]")
]
JobFile = Annotated[Path, typer.Argument(help="YAML job file (or chain file of steps:)")]
# A chain's first and last step to run (names or numbers; see tilefleet.chain).
FromStep = Annotated[
    str | None, typer.Option("--from", metavar="STEP", help="Chain: start at this step")
]
ToStep = Annotated[
    str | None, typer.Option("--to", metavar="STEP", help="Chain: end after this step")
]


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit")] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Only warnings and errors: no progress, no summary"),
    ] = False,
) -> None:
    set_quiet(quiet)
    if version:
        typer.echo(f"tilefleet {__version__}")
        raise typer.Exit()


def _run_file(values: dict[str, Any]) -> None:
    setup_logging(values.pop("verbose", False))
    job_file = values.pop("job_file")
    run_values(values, file=job_file)


def _plan_file(values: dict[str, Any]) -> None:
    setup_logging(False)
    job_file, map_to = values.pop("job_file"), values.pop("map", None)
    plan_values({**values, "dry_run": True}, file=job_file, map_to=map_to)


# `tilefleet plan JOB --map plan.html`: the map of the plan, before a run.
PlanMap = Annotated[
    Path | None,
    typer.Option(
        "--map",
        help="Also write the map of the plan to this HTML file: the tiles coloured by what "
        "would run (pending), what is done already (skipped) and what the plan rejects "
        "(failed); opens offline in any browser",
    ),
]


_job_file = extra_argument("job_file", JobFile)
command(
    app,
    "run",
    [
        _job_file,
        *run_and_executor_options(),
        extra_option("from_step", FromStep),
        extra_option("to_step", ToStep),
        extra_option("verbose", Verbose, False),
        *monitor_options(),
    ],
    _run_file,
    "Run a job file; options given here override the file's keys.",
)
command(
    app,
    "plan",
    [
        _job_file,
        *run_and_executor_options(),
        extra_option("from_step", FromStep),
        extra_option("to_step", ToStep),
        extra_option("map", PlanMap, None),
    ],
    _plan_file,
    "Plan and estimate a job file (every step of a chain) without running it (same as "
    "`run --dry-run`).",
)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of an earlier run")],
) -> None:
    """Rebuild the reports of a run from its ledger and print the summary."""
    from tilefleet.engine.run import rebuild_reports

    try:
        rebuild_reports(run_dir)
    except JobError as exc:
        fail(str(exc))
    typer.echo((run_dir / "report.txt").read_text(), nl=False)


app.command("monitor", help=MONITOR_HELP)(monitor)


@app.command()
def schema() -> None:
    """Print the JSON Schema of job files (for editors and validation)."""
    from tilefleet.jobs import job_schema

    typer.echo(json.dumps(job_schema(), indent=2))


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--dest", "--out", help="Folder for the sample data, outputs and run")
    ] = Path("tilefleet-demo"),
    workers: Workers = None,
    watch_live: Annotated[bool, typer.Option("--monitor", help=MONITOR_HELP)] = False,
    monitor_port: Annotated[
        int | None, typer.Option("--monitor-port", help="Port of the monitor page [8765]")
    ] = None,
) -> None:
    """Make a small sample workload and cogify it on local processes (no network needed)."""
    from tilefleet.demo import prepare_demo

    setup_logging(False)
    try:
        values = prepare_demo(out)
    except FileExistsError as exc:
        fail(str(exc))
    if workers is not None:
        values["workers"] = workers
    values.update(monitor=watch_live, monitor_port=monitor_port)
    typer.echo(f"sample workload: {values['manifest']} ({values['input_root']})")
    run_values(values)


def main() -> None:
    # Unlike a worker (engine.worker_process.defer_imports), the command imports boto3 as
    # usual: it pays the import once per run, not once per worker, and its threads (the
    # executors', Lithops') may first use boto3 at once, which a module executed on first
    # use does not survive on Pythons without the fix of CPython gh-114763 (3.11).
    app()
