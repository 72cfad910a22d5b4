"""One command per registered recipe (``tilefleet cogify``, ``tilefleet mosaic``, …),
made from the recipe's ``Params``, the run options and the executors' settings when the
root group is asked for it (see :mod:`tilefleet.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from tilefleet.cli.generate import command, extra_option, model_options
from tilefleet.cli.monitor import MonitorOptions, monitor_callbacks
from tilefleet.cli.output import (
    confirm_on_terminal,
    fail,
    is_quiet,
    setup_logging,
    show_result,
)
from tilefleet.engine.job import RunOptions, executor_settings_model, run_options_model
from tilefleet.errors import JobError
from tilefleet.recipes import get_recipe

RECIPE_PANEL, RUN_PANEL, EXECUTOR_PANEL = "Recipe", "Run", "Executor settings"

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log every retry and detail")]


def run_and_executor_options() -> list:
    """The options of every run: shared run options, then the executors' settings."""
    shared = run_options_model()
    run_keys = set(RunOptions.model_fields)
    return [
        *model_options(shared, skip=set(shared.model_fields) - run_keys, panel=RUN_PANEL),
        *model_options(executor_settings_model(), required=False, panel=EXECUTOR_PANEL),
    ]


def monitor_options() -> list:
    """``--monitor``, ``--monitor-port``, ``--monitor-host``: command-line only, like
    ``--verbose`` (see :func:`run_values`)."""
    return model_options(MonitorOptions, panel="Monitor")


def add_recipe_command(app: typer.Typer, recipe_name: str, command_name: str) -> None:
    """``command_name`` on ``app`` runs ``recipe_name`` with the options it is given."""
    recipe = get_recipe(recipe_name)

    def handle(values: dict[str, Any]) -> None:
        verbose = values.pop("verbose", False)
        setup_logging(verbose)
        run_values({"recipe": recipe_name, **values})

    parameters = [
        *model_options(recipe.Params, panel=RECIPE_PANEL),
        *run_and_executor_options(),
        extra_option("verbose", Verbose, False),
        *monitor_options(),
    ]
    command(app, command_name, parameters, handle, recipe.describe())


def run_values(values: dict[str, Any], file: Path | None = None) -> NoReturn:
    """Run a job given as flat values, or a job file with ``values`` overriding its keys;
    print its summary and exit with its status. ``--monitor`` serves the live page for
    the run's duration."""
    from tilefleet.api import run

    callbacks = monitor_callbacks(values)
    job = file if file is not None else values.pop("recipe")
    if is_quiet():
        values.setdefault("progress", False)
    try:
        result = run(job, confirm=confirm_on_terminal(), callbacks=callbacks, **values)
    except JobError as exc:
        fail(str(exc))
    show_result(result)


def plan_values(values: dict[str, Any], file: Path, map_to: Path | None = None) -> NoReturn:
    """``tilefleet plan``: the dry run of a job file, and with ``map_to`` the map of its
    plan written there."""
    if map_to is None:
        run_values(values, file=file)
    from tilefleet.api import load_job, plan
    from tilefleet.engine.plan_map import write_plan_map_of

    try:
        job = load_job(file, **values)
        result = plan(job)
        path = write_plan_map_of(job, result, map_to)
    except JobError as exc:
        fail(str(exc))
    typer.echo(f"map        {path}", err=True)
    show_result(result)
