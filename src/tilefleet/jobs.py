"""Job files: YAML → validated :class:`~tilefleet.engine.job.Job` models.

A job file names a recipe and holds, at the top level, the run options every recipe shares,
the executor's settings and the recipe's own parameters (see :mod:`tilefleet.engine.job`).
``${VAR}`` in string values is expanded from the environment, at any depth; relative paths
are relative to the job file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tilefleet.engine.job import Job, build_job, job_model, resolve_local_paths
from tilefleet.errors import JobError
from tilefleet.fields import read_yaml_mapping
from tilefleet.recipes import recipe_names

__all__ = ["Job", "build_job", "job_from_document", "job_schema", "load_job", "read_job_document"]


def read_job_document(path: Path) -> dict[str, Any]:
    """The mapping a job (or chain) file holds, unvalidated; :class:`JobError` if none."""
    try:
        return read_yaml_mapping(path, "job file")
    except ValueError as exc:
        raise JobError(str(exc)) from None


def load_job(path: Path, overrides: dict[str, Any] | None = None) -> Job:
    """Read a YAML job file, apply CLI ``overrides`` (those not None), validate."""
    return job_from_document(read_job_document(path), path, overrides)


def job_from_document(
    raw: dict[str, Any], path: Path, overrides: dict[str, Any] | None = None
) -> Job:
    """The job of the mapping read from the job file at ``path`` (its relative paths are
    relative to that file), with ``overrides`` (those not None) applied, validated."""
    if "steps" in raw:
        raise JobError(f"{path} is a chain of steps: run or plan it whole (tilefleet run)")
    values = {str(k).replace("-", "_"): _expand(v) for k, v in raw.items()}
    resolve_local_paths(values, Path(path).resolve().parent)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_job(values)


def job_schema() -> dict[str, Any]:
    """JSON Schema of job files (one alternative per recipe), for editors."""
    alternatives = [job_model(name).model_json_schema() for name in recipe_names()]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tilefleet job",
        "oneOf": alternatives,
    }


_VAR = re.compile(r"\$\{(\w+)\}")


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        return _VAR.sub(lambda m: os.environ.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, dict):  # nested settings: tiles, executors' pools, cluster options
        return {k: _expand(v) for k, v in value.items()}
    return value
