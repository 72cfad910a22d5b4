"""The ``tilefleet`` command: parse options, call the library, print. No logic of its own."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tilefleet import __version__
from tilefleet.cli.cells import app as cells_app
from tilefleet.cli.mosaic import MOSAIC_OPTIONS, area_values
from tilefleet.cli.options import COGIFY_OPTIONS, EXECUTOR_OPTIONS, RUN_OPTIONS, with_options
from tilefleet.cli.task import app as task_app
from tilefleet.cli.tiles import app as tiles_app
from tilefleet.config import build_job, job_schema, load_job
from tilefleet.errors import JobError

app = typer.Typer(
    name="tilefleet",
    help="Earth-observation work tile by tile: plan one idempotent task per tile, run it on "
    "the engine you pick, keep an exact record.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Options of their own (the shared ones are declared in cli/options.py).
Workers = Annotated[
    int | None, typer.Option("--workers", min=1, help="Parallel workers [default: CPU count]")
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log every retry and detail")]


app.add_typer(
    tiles_app,
    name="tiles",
    help="Cut an area, a request or a list into tiles of "
    "a grid (TTC 1/18°, UTM patches, HEALPix cells) and write them out.",
)
app.add_typer(cells_app, name="cells")


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit")] = False,
) -> None:
    if version:
        typer.echo(f"tilefleet {__version__}")
        raise typer.Exit()


@app.command()
@with_options(COGIFY_OPTIONS, RUN_OPTIONS, EXECUTOR_OPTIONS)
def cogify(
    manifest: Annotated[str, typer.Argument(help="CSV manifest (path,num_bands), local or s3://")],
    input_root: Annotated[
        str,
        typer.Option(
            "--input-root", help="Folder or s3:// prefix the manifest paths are relative to"
        ),
    ],
    dest: Annotated[str, typer.Option("--dest", help="Folder or s3:// prefix for the outputs")],
    verbose: Verbose = False,
    options: dict[str, Any] | None = None,
) -> None:
    """Turn the GeoTIFFs of a CSV manifest into COGs + JPEG previews + STAC items."""
    values = {
        "recipe": "cogify",
        "manifest": manifest,
        "input_root": input_root,
        "dest": dest,
        **(options or {}),
    }
    _setup_logging(verbose)
    _execute(lambda: build_job(values))


@app.command()
@with_options(MOSAIC_OPTIONS, RUN_OPTIONS, EXECUTOR_OPTIONS)
def mosaic(
    aoi: Annotated[str, typer.Option("--aoi", help="Area: lon/lat W,S,E,N or a GeoJSON file")],
    start_date: Annotated[str, typer.Option("--start-date", help="First day, YYYY-MM-DD")],
    end_date: Annotated[str, typer.Option("--end-date", help="Last day, YYYY-MM-DD (inclusive)")],
    bands: Annotated[
        str, typer.Option("--bands", help="Bands by asset key or common name, e.g. red,green,blue")
    ],
    dest: Annotated[str, typer.Option("--dest", help="Folder or s3:// prefix for the outputs")],
    verbose: Verbose = False,
    options: dict[str, Any] | None = None,
) -> None:
    """Monthly cloud-free median mosaics from a STAC search: one COG per tile and month,
    with a STAC collection."""
    values = {
        "recipe": "mosaic",
        **area_values(aoi),
        "start_date": start_date,
        "end_date": end_date,
        "bands": bands,
        "dest": dest,
        **(options or {}),
    }
    _setup_logging(verbose)
    _execute(lambda: build_job(values))


@app.command()
@with_options(RUN_OPTIONS, EXECUTOR_OPTIONS)
def run(
    job_file: Annotated[Path, typer.Argument(help="YAML job file")],
    verbose: Verbose = False,
    options: dict[str, Any] | None = None,
) -> None:
    """Run a job file; options given here override the file's keys."""
    _setup_logging(verbose)
    _execute(lambda: load_job(job_file, options))


@app.command()
@with_options(RUN_OPTIONS, EXECUTOR_OPTIONS)
def plan(
    job_file: Annotated[Path, typer.Argument(help="YAML job file")],
    options: dict[str, Any] | None = None,
) -> None:
    """Plan and estimate a job file without running it (same as `run --dry-run`)."""
    _setup_logging(False)
    _execute(lambda: load_job(job_file, {**(options or {}), "dry_run": True}))


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of an earlier run")],
) -> None:
    """Rebuild the reports of a run from its ledger and print the summary."""
    from tilefleet.engine.ledger import LEDGER_NAME, Ledger
    from tilefleet.engine.report import write_reports

    if not (run_dir / LEDGER_NAME).is_file():
        _fail(f"{run_dir} is not a tilefleet run directory (no {LEDGER_NAME})")
    from tilefleet.engine.task_runner import merge_outcomes

    ledger = Ledger.in_run_dir(run_dir)
    try:
        merge_outcomes(ledger, run_dir)  # outcomes reported so far by HTCondor DAG nodes
        write_reports(ledger, run_dir)
    finally:
        ledger.close()
    typer.echo((run_dir / "report.txt").read_text(), nl=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of job files (for editors and validation)."""
    typer.echo(json.dumps(job_schema(), indent=2))


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the sample data, outputs and run")
    ] = Path("tilefleet-demo"),
    workers: Workers = None,
) -> None:
    """Make a small sample workload and cogify it on local processes (no network needed)."""
    from tilefleet.demo import prepare_demo

    _setup_logging(False)
    try:
        values = prepare_demo(out)
    except FileExistsError as exc:
        _fail(str(exc))
    if workers is not None:
        values["workers"] = workers
    typer.echo(f"sample workload: {values['manifest']} ({values['input_root']})")
    _execute(lambda: build_job(values))


@app.command()
@with_options(
    COGIFY_OPTIONS,
    {
        key: RUN_OPTIONS[key]
        for key in ("executor", "workers", "retries", "backoff_s", "max_in_flight", "yes")
    },
    EXECUTOR_OPTIONS,
)
def watch(
    source: Annotated[str, typer.Argument(help="Folder or s3:// prefix to watch (any depth)")],
    dest: Annotated[str, typer.Option("--dest", help="Folder or s3:// prefix for the outputs")],
    pattern: Annotated[
        str, typer.Option("--pattern", help="fnmatch pattern of manifest base names")
    ] = "*raw.csv",
    input_root: Annotated[
        str | None,
        typer.Option(
            "--input-root",
            help="Root of the manifest paths [default: the source bucket's root, "
            "or the source folder]",
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option("--every", help="Pass again every DURATION (15m, 1h…) until SIGTERM/Ctrl-C"),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit (the default)")] = False,
    stale_after: Annotated[
        str, typer.Option("--stale-after", help="Resume processing manifests older than this")
    ] = "2h",
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Folder of the run directories, one per manifest")
    ] = Path("runs/watch"),
    verbose: Verbose = False,
    options: dict[str, Any] | None = None,
) -> None:
    """Claim the CSV manifests dropped below SOURCE and cogify each one exactly once."""
    from tilefleet.engine.watch import WatchOptions, parse_duration
    from tilefleet.engine.watch import watch as watch_source

    _setup_logging(verbose)
    try:
        if once and every:
            raise JobError("give either --once or --every, not both")
        settings = WatchOptions(
            source=source,
            dest=dest,
            pattern=pattern,
            input_root=input_root,
            runs_dir=runs_dir,
            stale_after_s=parse_duration(stale_after),
            every_s=parse_duration(every) if every else None,
            job_options=options or {},
        )
        code = watch_source(settings)
    except JobError as exc:
        _fail(str(exc))
    raise typer.Exit(code)


app.add_typer(task_app, name="task")


def _execute(make_job) -> None:
    from tilefleet.engine.run import EXIT_INVALID, run_job

    try:
        job = make_job()
        result = run_job(job, confirm=_ask if sys.stdin.isatty() else None)
    except JobError as exc:
        _fail(str(exc), EXIT_INVALID)
    if result.dry_run:
        _print_plan(job, result)
    else:
        typer.echo("")
        typer.echo((result.run_dir / "report.txt").read_text(), nl=False)
        typer.echo(f"outputs    {result.outputs}")
        typer.echo(
            f"reports    {result.run_dir}/ (report.json, report.txt, tasks.csv, "
            "failed.csv, succeeded.csv, timeline.png)"
        )
    raise typer.Exit(result.exit_code)


def _print_plan(job, result) -> None:
    typer.echo(
        f"plan: {result.planned} task(s) for recipe {job.recipe}, {len(result.rejected)} rejected"
    )
    for task in result.rejected[:20]:
        typer.echo(f"  rejected {task.id}: {task.rejected}")
    typer.echo(f"estimate: {result.estimate.describe()}")
    typer.echo("dry run: nothing was run")


def _ask(question: str) -> bool:
    return typer.confirm(question, default=False)


def _fail(message: str, code: int = 3) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _setup_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
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


def main() -> None:
    app()
