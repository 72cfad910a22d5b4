"""Command-line options that several commands share, declared once.

Each table maps a job-file key to its annotated typer option; :func:`with_options` adds a
table's options to a command and hands the ones the user gave to the command as one
``options`` dict, ready to be merged with a job file. Declaring them once keeps every
command, the job-file schema and the docs in step.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

RUN_OPTIONS: dict[str, Any] = {
    "run_dir": Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            help="Run directory (ledger, reports); an existing one is resumed "
            "[default: a new folder under ./runs/]",
        ),
    ],
    "executor": Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="Execution engine: local, dask, ray, lithops, htcondor [default: local]",
        ),
    ],
    "workers": Annotated[
        int | None, typer.Option("--workers", min=1, help="Parallel workers [default: CPU count]")
    ],
    "retries": Annotated[
        int | None,
        typer.Option("--retries", min=0, help="Retries after a retryable failure [default: 3]"),
    ],
    "backoff_s": Annotated[
        float | None,
        typer.Option(
            "--backoff-s", min=0, help="First retry delay in seconds; doubles each retry [1]"
        ),
    ],
    "max_in_flight": Annotated[
        int | None,
        typer.Option(
            "--max-in-flight",
            min=1,
            help="Most attempts submitted at once [default: 2 per worker; 32 dask/ray, 16 lithops]",
        ),
    ],
    "overwrite": Annotated[
        bool | None,
        typer.Option("--overwrite/--no-overwrite", help="Redo tasks whose outputs already exist"),
    ],
    "dry_run": Annotated[
        bool | None, typer.Option("--dry-run/--no-dry-run", help="Plan and estimate, run nothing")
    ],
    "yes": Annotated[
        bool | None, typer.Option("--yes/--no-yes", "-y", help="Do not ask before a billed run")
    ],
    "only": Annotated[
        str | None, typer.Option("--only", help="Run only these task ids (ID[,ID…])")
    ],
    "limit": Annotated[int | None, typer.Option("--limit", min=1, help="Run at most N tasks")],
}

EXECUTOR_OPTIONS: dict[str, Any] = {
    "scheduler": Annotated[
        str | None,
        typer.Option("--scheduler", help="dask: address of a running scheduler (tcp://…)"),
    ],
    "gateway": Annotated[str | None, typer.Option("--gateway", help="dask: Dask Gateway URL")],
    "cluster_options": Annotated[
        list[str] | None,
        typer.Option(
            "--cluster-option", help="dask: a Gateway cluster option KEY=VALUE (repeatable)"
        ),
    ],
    "address": Annotated[
        str | None, typer.Option("--address", help="ray: cluster address [default: a local Ray]")
    ],
    "cpus_per_task": Annotated[
        float | None, typer.Option("--cpus-per-task", help="ray: CPUs reserved per task")
    ],
    "lithops_config": Annotated[
        str | None,
        typer.Option(
            "--lithops-config", help="lithops: the Lithops config file (backend, region, …)"
        ),
    ],
    "executors": Annotated[
        str | None,
        typer.Option(
            "--executors",
            help="routed: the pools as a YAML mapping, e.g. "
            "'{a: {executor: dask}, b: {executor: lithops}}'",
        ),
    ],
    "route_by": Annotated[
        str | None,
        typer.Option("--route-by", help="routed: task parameter naming the pool [pool]"),
    ],
    "routes": Annotated[
        list[str] | None,
        typer.Option("--route", help="routed: VALUE=POOL, a value of --route-by (repeatable)"),
    ],
    "mem": Annotated[
        int | None,
        typer.Option(
            "--mem", help="Memory per task in MB (lithops, ray, htcondor); feeds the cost estimate"
        ),
    ],
}

COGIFY_OPTIONS: dict[str, Any] = {
    "profile": Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="COG profile: deflate (lossless, default), zstd, lzw, lzma, packbits, "
            "raw, lerc, lerc_deflate, lerc_zstd, jpeg, webp",
        ),
    ],
    "overview_resampling": Annotated[
        str | None,
        typer.Option("--overview-resampling", help="Overview resampling [default: nearest]"),
    ],
    "blocksize": Annotated[int | None, typer.Option("--blocksize", help="COG tile size [512]")],
    "quality": Annotated[
        int | None, typer.Option("--quality", help="Quality of the jpeg/webp profiles (1-100)")
    ],
    "preview_bands": Annotated[
        str | None,
        typer.Option(
            "--preview-bands", help="Bands of the preview, e.g. 4,3,2 [default: 1 or 1,2,3]"
        ),
    ],
    "preview_max_size": Annotated[
        int | None,
        typer.Option(
            "--preview-max-size", help="Longest preview side in pixels [default: full size]"
        ),
    ],
    "preview_quality": Annotated[
        int | None, typer.Option("--preview-quality", help="JPEG quality of the preview [75]")
    ],
}


def with_options(*tables: dict[str, Any]):
    """Add the options of ``tables`` to a command; the command receives those the user gave
    (not None) as ``options``."""
    names = [name for table in tables for name in table]

    def decorate(command):
        own = [
            p
            for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.name != "options"
        ]
        added = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
            )
            for table in tables
            for name, annotation in table.items()
        ]

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            given = {name: kwargs.pop(name, None) for name in names}
            options = {name: value for name, value in given.items() if value is not None}
            return command(*args, options=options, **kwargs)

        parameters = own + added
        wrapper.__signature__ = inspect.Signature(parameters)
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate
