"""The ``tilefleet`` command: parse options, call the library, print. No logic of its own.

Each recipe's command, ``run``/``plan`` and the executors' options are made from the
models that declare them (see :mod:`tilefleet.cli.generate`). A bad option or a bad value
is a usage error: exit status 3, like any other invalid job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from tilefleet import __version__
from tilefleet.cli.cells import app as cells_app
from tilefleet.cli.generate import command, extra_argument, extra_option
from tilefleet.cli.monitor import MONITOR_HELP, monitor
from tilefleet.cli.output import fail, set_quiet, setup_logging
from tilefleet.cli.recipes import (
    Verbose,
    add_recipe_commands,
    monitor_options,
    plan_values,
    run_and_executor_options,
    run_values,
)
from tilefleet.cli.task import app as task_app
from tilefleet.cli.tiles import app as tiles_app
from tilefleet.cli.watch import add_watch_command
from tilefleet.errors import ExitCode, JobError

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


class _Tilefleet(TyperGroup):
    """The root group: usage errors (an unknown option, a bad value, a missing argument)
    exit 3 like any invalid job, not click's 2, which tilefleet keeps for "every task
    failed"."""

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


app.add_typer(
    tiles_app,
    name="tiles",
    help="Cut an area, a request or a list into tiles of a grid and write them out.",
)
app.add_typer(cells_app, name="cells")
app.add_typer(task_app, name="task")
add_recipe_commands(app, taken={"cells"})


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


add_watch_command(app)


def main() -> None:
    app()
