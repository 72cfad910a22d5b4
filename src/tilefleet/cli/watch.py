"""``tilefleet watch``: its own options, plus those of the watched recipe and of every run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tilefleet.cli.generate import command, extra_argument, extra_option, model_options
from tilefleet.cli.monitor import monitor_callbacks
from tilefleet.cli.output import fail, setup_logging
from tilefleet.cli.recipes import RECIPE_PANEL, RUN_PANEL, Verbose, monitor_options
from tilefleet.engine.job import executor_settings_model, run_options_model
from tilefleet.errors import JobError
from tilefleet.recipes import get_recipe, recipe_names

#: Run options that make sense for the runs a watcher starts (one run dir per manifest).
WATCH_RUN_KEYS = ("executor", "workers", "retries", "backoff_s", "max_in_flight", "yes")
#: What the watcher itself sets on every run.
SET_BY_WATCH = ("dest", "input_root", "run_dir")

Source = Annotated[str, typer.Argument(help="Folder or s3:// prefix to watch (any depth)")]
OWN_OPTIONS: dict[str, Any] = {
    "dest": Annotated[str, typer.Option("--dest", help="Folder or s3:// prefix for the outputs")],
    "recipe": Annotated[
        str, typer.Option("--recipe", help="Recipe run on each manifest (one that takes one)")
    ],
    "pattern": Annotated[
        str, typer.Option("--pattern", help="fnmatch pattern of manifest base names")
    ],
    "input_root": Annotated[
        str | None,
        typer.Option(
            "--input-root",
            help="Root of the manifest paths [default: the source bucket's root, "
            "or the source folder]",
        ),
    ],
    "every": Annotated[
        str | None,
        typer.Option("--every", help="Pass again every DURATION (15m, 1h…) until SIGTERM/Ctrl-C"),
    ],
    "once": Annotated[bool, typer.Option("--once", help="One pass, then exit (the default)")],
    "stale_after": Annotated[
        str, typer.Option("--stale-after", help="Resume processing manifests older than this")
    ],
    "runs_dir": Annotated[
        Path, typer.Option("--runs-dir", help="Folder of the run directories, one per manifest")
    ],
}


def add_watch_command(app: typer.Typer) -> None:
    from tilefleet.engine.watch import DEFAULT_PATTERN, DEFAULT_RECIPE, DEFAULT_RUNS_DIR

    defaults = {
        "dest": ...,  # required
        "recipe": DEFAULT_RECIPE,
        "pattern": DEFAULT_PATTERN,
        "input_root": None,
        "every": None,
        "once": False,
        "stale_after": "2h",
        "runs_dir": DEFAULT_RUNS_DIR,
    }
    own = [extra_argument("source", Source)] + [
        extra_option(name, annotation, defaults[name]) for name, annotation in OWN_OPTIONS.items()
    ]
    run_model = run_options_model()
    parameters = [
        *own,
        *_recipe_options(),
        *model_options(
            run_model, skip=set(run_model.model_fields) - set(WATCH_RUN_KEYS), panel=RUN_PANEL
        ),
        *model_options(executor_settings_model(), required=False, panel="Executor settings"),
        extra_option("verbose", Verbose, False),
        *monitor_options(),
    ]
    command(
        app,
        "watch",
        parameters,
        _watch,
        "Claim the CSV manifests dropped below SOURCE and run a recipe (cogify) on each "
        "exactly once.",
    )


def _recipe_options() -> list:
    """The parameters of every recipe that can be watched, less what the watcher sets."""
    seen: dict[str, Any] = {}
    for name in recipe_names():
        try:
            recipe = get_recipe(name)
        except JobError:
            continue
        if recipe.manifest_param is None:
            continue
        skip = {recipe.manifest_param, *SET_BY_WATCH}
        for parameter in model_options(
            recipe.Params, skip=skip, required=False, panel=RECIPE_PANEL
        ):
            seen.setdefault(parameter.name, parameter)
    return list(seen.values())


def _watch(values: dict[str, Any]) -> None:
    from tilefleet.engine.watch import WatchOptions, parse_duration, watch

    setup_logging(values.pop("verbose", False))
    callbacks = tuple(monitor_callbacks(values))  # one page, following each manifest's run
    own = {name: values.pop(name, None) for name in ("source", *OWN_OPTIONS)}
    try:
        if own["once"] and own["every"]:
            raise JobError("give either --once or --every, not both")
        settings = WatchOptions(
            source=own["source"],
            dest=own["dest"],
            recipe=own["recipe"],
            pattern=own["pattern"],
            input_root=own["input_root"],
            runs_dir=own["runs_dir"],
            stale_after_s=parse_duration(own["stale_after"]),
            every_s=parse_duration(own["every"]) if own["every"] else None,
            job_options=values,
            callbacks=callbacks,
        )
        code = watch(settings)
    except JobError as exc:
        fail(str(exc))
    raise typer.Exit(int(code))
