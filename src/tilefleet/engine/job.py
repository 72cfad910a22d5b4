"""What a job is: a recipe, its parameters, how to run it, and on which executor.

A job file (and a recipe's command) is one flat mapping: the run options every recipe shares
(:class:`RunOptions`), the settings of the executors (each executor's ``Settings`` model),
and the recipe's ``Params``. :func:`job_model` joins them into the flat model that job files,
``tilefleet schema`` and the command line are made from; :func:`build_job` validates a
mapping into a :class:`Job`. Every key is also a command-line option (``input_root`` ↔
``--input-root``) and the reverse.
"""

from __future__ import annotations

import functools
import os
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    create_model,
)
from pydantic.fields import FieldInfo

from tilefleet.engine.executors import AttemptExecutor, executor_class, executor_classes
from tilefleet.errors import JobError
from tilefleet.fields import Cli, CommaList
from tilefleet.recipes import get_recipe, recipe_names
from tilefleet.recipes.params import RecipeParams

DEFAULT_EXECUTOR = "local"


class RunOptions(BaseModel):
    """Options of every run, whatever the recipe and the executor."""

    model_config = ConfigDict(extra="forbid")

    run_dir: Annotated[Path | None, Cli(default="a new folder under ./runs/")] = Field(
        None, description="Run directory (ledger, reports); an existing one is resumed"
    )
    executor: str = Field(DEFAULT_EXECUTOR, description="Execution engine")
    workers: Annotated[int | None, Cli(default="CPU count")] = Field(
        None, ge=1, le=1_000_000, description="Parallel workers"
    )
    retries: int = Field(3, ge=0, description="Retries of a task after a retryable failure")
    backoff_s: float = Field(1.0, ge=0, description="First retry delay, s; doubles each retry")
    max_in_flight: int | None = Field(
        None, ge=1, le=100_000_000, description="Most attempts submitted at once"
    )
    overwrite: bool = Field(False, description="Redo tasks whose outputs already exist")
    dry_run: bool = Field(False, description="Plan and estimate, run nothing")
    yes: Annotated[bool, Cli(short="-y")] = Field(
        False, description="Do not ask before starting a billed run"
    )
    only: Annotated[CommaList[str] | None, Cli(default="all", metavar="ID[,ID…]")] = Field(
        None, description="Run only these task ids"
    )
    limit: Annotated[int | None, Cli(default="all")] = Field(
        None, ge=1, description="Run at most this many of the tasks still to do"
    )
    task_timeout: Annotated[float | None, Cli(default="the recipe's, 1 h")] = Field(
        None,
        gt=0,
        le=7 * 24 * 3600,
        description="Seconds an attempt may run; a longer one is stopped and retried",
    )
    max_task_memory: Annotated[int | None, Cli(default="no limit")] = Field(
        None,
        ge=1,
        le=1 << 40,
        description="Most memory (MB) a task may need by its recipe's estimate; a task "
        "above it fails without reading its inputs",
    )


class Job(RunOptions):
    """A validated job: run options, the recipe name, its parameters, and the settings of
    its executor that were given."""

    recipe: str
    params: SerializeAsAny[RecipeParams]
    executor_settings: dict[str, Any] = Field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The job as the flat mapping it came from (what the ledger keeps, and what
        :func:`build_job` takes back)."""
        record = self.model_dump(mode="json", exclude={"params", "executor_settings"})
        record.update(self.executor_settings)
        record.update(self.params.model_dump(mode="json"))
        return record


@functools.cache
def executor_settings_model() -> type[BaseModel]:
    """One model holding every registered executor's settings, as flat job keys.

    A key several executors take (``mem``) is one field, described once per executor; each
    is optional here (None: not given) and checked by the chosen executor's own model."""
    classes = executor_classes()
    fields: dict[str, Any] = {}
    owners: dict[str, list[str]] = {}
    for name, cls in classes.items():
        for key, info in cls.Settings.model_fields.items():
            default = "" if info.default is None else f" [default: {info.default}]"
            owners.setdefault(key, []).append(f"{name}: {info.description or key}{default}")
            # The first declaration's type and checks (ge=…, Cli hints), made optional.
            fields.setdefault(key, _optional(info))
    model_fields = {
        key: (annotation, Field(None, description="; ".join(owners[key])))
        for key, annotation in fields.items()
    }
    return create_model(
        "ExecutorSettingFields", __config__=ConfigDict(extra="forbid"), **model_fields
    )


def _optional(info: FieldInfo) -> Any:
    optional = info.annotation | None
    return Annotated[(optional, *info.metadata)] if info.metadata else optional


@functools.cache
def run_options_model() -> type[BaseModel]:
    """Run options plus every executor's settings: what ``tilefleet run JOB`` takes."""
    return create_model(
        "RunAndExecutorOptions",
        __base__=(RunOptions, executor_settings_model()),
        **_executor_help(),
    )


@functools.cache
def job_model(recipe: str) -> type[BaseModel]:
    """The flat pydantic model of a job file for one recipe (validation, schema, CLI)."""
    params_model = get_recipe(recipe).Params
    return create_model(
        f"{params_model.__name__.removesuffix('Params')}Job",
        __base__=(RunOptions, executor_settings_model(), params_model),
        recipe=(Literal[recipe], Field(description="The recipe this job runs")),
        **_executor_help(),
    )


def _executor_help() -> dict[str, Any]:
    """``executor`` and ``max_in_flight`` described from the registered executors and
    their defaults, so the help never lags behind the registry."""
    classes = executor_classes()
    per_worker = ", ".join(
        f"{name} {cls.in_flight_help or cls.in_flight_per_worker}"
        for name, cls in classes.items()
        if issubclass(cls, AttemptExecutor)
    )
    return {
        "executor": _run_option("executor", f"Execution engine: {', '.join(classes)}"),
        "max_in_flight": _run_option("max_in_flight", cli=Cli(default=f"per worker: {per_worker}")),
    }


def _run_option(name: str, description: str | None = None, cli: Cli | None = None) -> tuple:
    """A field of :class:`RunOptions` as it is (type, default, checks), with another
    description or command-line hint."""
    info = RunOptions.model_fields[name]
    metadata = [m for m in info.metadata if cli is None or not isinstance(m, Cli)]
    metadata += [cli] if cli is not None else []
    annotation = Annotated[(info.annotation, *metadata)] if metadata else info.annotation
    return annotation, Field(info.default, description=description or info.description)


def build_job(values: dict[str, Any]) -> Job:
    """Validate a flat mapping (from YAML, the command line or the Python API) into a
    :class:`Job`; :class:`JobError` with one line naming every problem otherwise."""
    recipe = values.get("recipe")
    if not recipe:
        raise JobError(f"the job names no recipe; choose one of {', '.join(recipe_names())}")
    model = job_model(str(recipe))
    try:
        flat = model.model_validate(values)
    except ValidationError as exc:
        raise JobError(describe_problems(exc)) from None
    run_keys = set(RunOptions.model_fields)
    setting_keys = set(executor_settings_model().model_fields)
    given = flat.model_dump(exclude_unset=True)
    # Once validated, values are what they mean (mosaic's --aoi W,S,E,N is a bbox by now).
    resolve_local_paths(given, Path.cwd())
    data = {**flat.model_dump(), **given}
    params = get_recipe(str(recipe)).Params.model_validate(
        {k: v for k, v in given.items() if k not in run_keys | setting_keys | {"recipe"}}
    )
    settings = {k: v for k, v in data.items() if k in setting_keys and v is not None}
    return Job(
        recipe=str(recipe),
        params=params,
        executor_settings=settings,
        **{k: data[k] for k in run_keys},
    )


def describe_problems(exc: ValidationError) -> str:
    """``invalid job: key: problem; …`` in one line."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "job"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        problems.append(f"{where}: {message}")
    return "invalid job: " + "; ".join(problems)


def _executor_path_fields(name: str) -> tuple[str, ...]:
    try:
        return executor_class(name).Settings.path_fields
    except JobError:  # an unknown executor is reported when the run starts
        return ()


def resolve_local_paths(values: dict[str, Any], base: Path) -> None:
    """Make the relative local paths of a job's values (run dir, the executor's and the
    recipe's path fields) absolute against ``base``: the job file's folder, else the working
    directory. A job then means the same files wherever it runs (an HTCondor node, another
    folder) and its fingerprint does not depend on how a path was spelt."""
    fields = ["run_dir", *_executor_path_fields(values.get("executor") or DEFAULT_EXECUTOR)]
    pools = values.get("executors")
    if isinstance(pools, dict):  # routed: each pool's own settings
        for pool, spec in pools.items():
            if isinstance(spec, dict) and spec.get("executor"):
                paths = _executor_path_fields(str(spec["executor"]))
                fields += [f"executors.{pool}.{field}" for field in paths]
    with suppress(JobError):  # an unknown recipe is reported by validation
        fields += list(get_recipe(str(values.get("recipe"))).Params.path_fields)
    for field in fields:
        *parents, key = field.split(".")
        holder = values
        for parent in parents:  # nested mappings are copied, never changed in place
            if not isinstance(holder, dict) or not isinstance(holder.get(parent), dict):
                holder = None
                break
            holder[parent] = dict(holder[parent])
            holder = holder[parent]
        value = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(value, str | os.PathLike):
            text = os.fspath(value)
            if "://" not in text and not Path(text).is_absolute():
                holder[key] = str(base / text)
