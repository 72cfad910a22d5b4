"""Job files: YAML → validated pydantic models.

A job file names a recipe and holds, at the top level, the run options every recipe shares
(:class:`RunOptions`) and the recipe's own parameters. Every key is also a CLI option
(``input_root`` ↔ ``--input-root``) and the reverse, so ``tilefleet run job.yaml`` does what
the equivalent ``tilefleet cogify …`` does. ``${VAR}`` in string values is expanded from the
environment; relative paths are relative to the job file.
"""

from __future__ import annotations

import os
import re
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    create_model,
    field_validator,
)

from tilefleet.errors import JobError
from tilefleet.recipes import RECIPES, get_recipe
from tilefleet.recipes.base import RecipeParams


class RunOptions(BaseModel):
    """Options of every run, whatever the recipe."""

    model_config = ConfigDict(extra="forbid")

    run_dir: Path | None = Field(
        None,
        description="Run directory (ledger, reports); an existing one is resumed. "
        "Default: a new folder under ./runs/",
    )
    executor: str = Field("local", description="Execution engine")
    workers: int | None = Field(None, ge=1, description="Parallel workers; default CPU count")
    retries: int = Field(3, ge=0, description="Retries of a task after a retryable failure")
    backoff_s: float = Field(1.0, ge=0, description="First retry delay; doubles each retry")
    max_in_flight: int | None = Field(
        None,
        ge=1,
        description="Most attempts submitted at once; default per worker: 2 local, "
        "8 dask/ray, 16 lithops",
    )
    overwrite: bool = Field(False, description="Redo tasks whose outputs already exist")
    dry_run: bool = Field(False, description="Plan and estimate, run nothing")
    yes: bool = Field(False, description="Do not ask before starting a billed run")
    only: list[str] | None = Field(None, description="Run only these task ids")
    limit: int | None = Field(None, ge=1, description="Run at most this many tasks")
    # Settings of particular executors; an option that does not apply to the chosen one is
    # an error rather than silently ignored.
    scheduler: str | None = Field(None, description="dask: address of a running scheduler")
    gateway: str | None = Field(None, description="dask: Dask Gateway URL")
    cluster_options: dict[str, Any] | None = Field(
        None,
        description="dask: Gateway cluster options (image, worker_cores, worker_memory, "
        "adaptive_minimum, adaptive_maximum); htcondor: extra submit commands",
    )
    address: str | None = Field(None, description="ray: cluster address (default: local)")
    cpus_per_task: float | None = Field(None, gt=0, description="ray: CPUs per task")
    lithops_config: str | None = Field(None, description="lithops: Lithops config file")
    mem: int | None = Field(
        None,
        ge=128,
        description="Memory per task in MB (lithops, ray, htcondor); billed "
        "executors estimate cost from it",
    )
    executors: dict[str, dict[str, Any]] | None = Field(
        None,
        description="routed: pool name -> {executor: NAME, its settings} (job file only)",
    )
    route_by: str | None = Field(
        None, description="routed: the task parameter naming a task's pool [default: pool]"
    )
    routes: dict[str, str] | None = Field(
        None, description="routed: value of route_by -> pool name ('*': any other value)"
    )

    @field_validator("executors", mode="before")
    @classmethod
    def _parse_mapping(cls, value: Any) -> Any:
        if isinstance(value, str):  # a YAML/JSON mapping from the command line
            return yaml.safe_load(value)
        return value

    @field_validator("cluster_options", "routes", mode="before")
    @classmethod
    def _parse_pairs(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):  # KEY=VALUE pairs from the command line
            pairs = [str(item).partition("=") for item in value]
            return {key.strip(): yaml.safe_load(val) for key, _, val in pairs}
        return value

    def executor_settings(self) -> dict[str, Any]:
        """The executor-specific settings that were given."""
        return {
            key: value for key in EXECUTOR_SETTING_KEYS if (value := getattr(self, key)) is not None
        }

    @field_validator("only", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


EXECUTOR_SETTING_KEYS = (
    "scheduler",
    "gateway",
    "cluster_options",
    "address",
    "cpus_per_task",
    "lithops_config",
    "mem",
    "executors",
    "route_by",
    "routes",
)


class Job(RunOptions):
    """A validated job: run options, the recipe name, and the recipe's parameters."""

    recipe: str
    params: SerializeAsAny[RecipeParams]


def job_model(recipe: str) -> type[BaseModel]:
    """The flat pydantic model of a job file for one recipe (used for validation and schema)."""
    params_model = get_recipe(recipe).Params
    return create_model(
        f"{params_model.__name__.removesuffix('Params')}Job",
        __base__=(RunOptions, params_model),
        recipe=(Literal[recipe], Field(description="The recipe this job runs")),
    )


def build_job(values: dict[str, Any]) -> Job:
    """Validate a flat mapping (from YAML or CLI options) into a :class:`Job`."""
    recipe = values.get("recipe")
    if not recipe:
        raise JobError(f"the job names no recipe; choose one of {', '.join(sorted(RECIPES))}")
    try:
        model = job_model(recipe)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    try:
        flat = model.model_validate(values)
    except ValidationError as exc:
        raise JobError(_describe(exc)) from None
    run_keys = set(RunOptions.model_fields)
    data = flat.model_dump()
    params = get_recipe(recipe).Params.model_validate(
        {k: v for k, v in data.items() if k not in run_keys and k != "recipe"}
    )
    return Job(recipe=recipe, params=params, **{k: data[k] for k in run_keys})


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML file holding a mapping; ValueError with one clear line otherwise."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{what} {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{what} {path} must be a mapping of keys to values")
    return raw


def load_job(path: Path, overrides: dict[str, Any] | None = None) -> Job:
    """Read a YAML job file, apply CLI ``overrides`` (those not None), validate."""
    try:
        raw = read_yaml_mapping(path, "job file")
    except ValueError as exc:
        raise JobError(str(exc)) from None
    values = {str(k).replace("-", "_"): _expand(v) for k, v in raw.items()}
    _resolve_paths(values, Path(path).resolve().parent)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_job(values)


def job_schema() -> dict[str, Any]:
    """JSON Schema of job files (one alternative per recipe), for editors."""
    alternatives = [job_model(name).model_json_schema() for name in sorted(RECIPES)]
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


def _resolve_paths(values: dict[str, Any], base: Path) -> None:
    fields = ["run_dir", "lithops_config"]
    if isinstance(values.get("executors"), dict):  # routed: each pool's own Lithops config
        fields += [f"executors.{pool}.lithops_config" for pool in values["executors"]]
    with suppress(ValueError):  # an unknown recipe is reported by validation
        fields += list(get_recipe(str(values.get("recipe"))).Params.path_fields)
    for field in fields:
        *parents, key = field.split(".")
        holder = values
        for parent in parents:
            holder = holder.get(parent) if isinstance(holder, dict) else None
        if not isinstance(holder, dict):
            continue
        value = holder.get(key)
        if isinstance(value, str) and "://" not in value and not Path(value).is_absolute():
            holder[key] = str(base / value)


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "job"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        problems.append(f"{where}: {message}")
    return "invalid job: " + "; ".join(problems)
