"""Chains: job files of several steps, each an ordinary run, run in order.

A chain file holds ``steps:`` (each a recipe and its parameters), shared ``variables``,
a ``folders:`` map of named storage locations, and run options or executor settings that
apply to every step (a step may override them)::

    variables: {year: 2020, patches: {grid: utm, bbox: [5, 51, 6, 52], size: 10000}}
    folders: {data: out/data/${year}, features: out/features/${year}}
    workers: 4
    steps:
      - {name: data, recipe: patch-data, tiles: "${patches}", dest: "${folders.data}", ...}
      - {name: features, recipe: features, input: "${folders.data}", ...}

``${name}`` is a variable, ``${folders.name}`` a folder (relative ones are relative to the
chain file), ``${run_dir}`` the chain's run directory, anything else an environment
variable; a string that is exactly one ``${…}`` takes the value as it is (a number, a
mapping), otherwise the value is put into the text. Every step is validated before the
first one runs.

Each step runs in its own run directory, ``{run_dir}/{step name}``, with its own ledger and
reports, so skip, resume and retries are the engine's, step by step; a rerun of a finished
chain finds every task done and runs nothing. The chain stops after a step that leaves a
task failed (later steps would only fail on its missing outputs) and records what each step
did in ``{run_dir}/chain.json``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tilefleet.engine.callbacks import RunCallback
from tilefleet.engine.job import (
    Job,
    build_job,
    executor_settings_model,
    resolve_local_paths,
    run_options_model,
)
from tilefleet.engine.result import RunResult
from tilefleet.engine.run import run_job
from tilefleet.errors import ExitCode, JobError
from tilefleet.jobs import read_job_document

log = logging.getLogger("tilefleet")

CHAIN_KEYS = ("steps", "variables", "folders")
CHAIN_RECORD = "chain.json"
STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REFERENCE = re.compile(r"\$\{([\w.]+)\}")


def is_chain_document(document: Mapping[str, Any]) -> bool:
    """A job file's mapping is a chain when it has ``steps``."""
    return "steps" in document


@dataclass(frozen=True)
class Step:
    """One step of a chain: its name and its validated job (run dir set)."""

    name: str
    job: Job


@dataclass(frozen=True)
class Chain:
    """A validated chain: its steps in order and the run directory holding theirs."""

    path: Path
    run_dir: Path
    steps: tuple[Step, ...]

    def select(self, first: str | None = None, last: str | None = None) -> list[Step]:
        """The steps from ``first`` to ``last`` (names or 1-based numbers), both included."""
        start = self._index(first, "from") if first else 0
        stop = self._index(last, "to") if last else len(self.steps) - 1
        if stop < start:
            raise JobError(f"--to {last} comes before --from {first} in the chain")
        return list(self.steps[start : stop + 1])

    def _index(self, name: str, option: str) -> int:
        names = [step.name for step in self.steps]
        if name in names:
            return names.index(name)
        if name.isdigit() and 1 <= int(name) <= len(names):
            return int(name) - 1
        raise JobError(f"--{option} {name}: no such step; the chain has {', '.join(names)}")


def load_chain(path: Path, overrides: Mapping[str, Any] | None = None) -> Chain:
    """Read and validate a chain file; ``overrides`` (run options, not None) apply to every
    step. :class:`JobError` with one line naming the step otherwise."""
    document = read_job_document(path)
    return chain_from_document(document, Path(path).resolve().parent, overrides, Path(path))


def chain_from_document(
    document: Mapping[str, Any],
    base: Path,
    overrides: Mapping[str, Any] | None = None,
    path: Path | None = None,
) -> Chain:
    """A :class:`Chain` from a chain file's mapping; relative paths are relative to ``base``."""
    values = {str(k).replace("-", "_"): v for k, v in document.items()}
    variables = _variables(values.get("variables"))
    folders = _folders(values.get("folders"), variables, base)
    shared = {k: v for k, v in values.items() if k not in CHAIN_KEYS}
    _check_shared_keys(shared)
    context = _Context(variables, folders)
    shared = context.expand(shared, "chain")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    name = (path.stem if path else "") or "chain"
    if overrides.get("run_dir"):  # from the command line: relative to the working directory
        run_dir = Path(overrides.pop("run_dir")).resolve()
    elif shared.get("run_dir"):
        run_dir = (base / str(shared.pop("run_dir"))).resolve()
    else:
        run_dir = Path("runs", name).resolve()
    shared.pop("run_dir", None)
    # Steps may name the chain's run dir (a step that publishes the runs' reports).
    context = _Context({"run_dir": str(run_dir), **variables}, folders)
    steps = values.get("steps")
    if not isinstance(steps, list) or not steps:
        raise JobError("steps: a chain needs a list of steps, each a recipe and its parameters")
    built: list[Step] = []
    for number, raw in enumerate(steps, start=1):
        built.append(_step(number, raw, shared, overrides, context, base, run_dir))
    names = [step.name for step in built]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise JobError(f"steps: step names must be unique; repeated: {', '.join(repeated)}")
    return Chain(path or base / "chain.yaml", run_dir, tuple(built))


def _step(
    number: int,
    raw: Any,
    shared: dict[str, Any],
    overrides: Mapping[str, Any],
    context: _Context,
    base: Path,
    run_dir: Path,
) -> Step:
    if not isinstance(raw, dict) or not raw.get("recipe"):
        raise JobError(f"step {number}: a step is a mapping with a recipe and its parameters")
    values = {str(k).replace("-", "_"): v for k, v in raw.items()}
    name = str(values.pop("name", None) or values["recipe"])
    where = f"step {name}"
    if not STEP_NAME.match(name):
        raise JobError(f"{where}: a step name is letters, digits, '.', '_' or '-'")
    if "run_dir" in values:
        raise JobError(f"{where}: run_dir is the chain's ({run_dir}/{name}); set it on the chain")
    # The chain's keys and the step's own, relative paths against the chain file.
    merged = {**shared, **context.expand(values, where)}
    resolve_local_paths(merged, base)
    job_values = {**merged, **overrides, "run_dir": run_dir / name}
    try:
        job = build_job(job_values)
    except JobError as exc:
        raise JobError(f"{where}: {exc}") from None
    return Step(name, job)


def _check_shared_keys(shared: Mapping[str, Any]) -> None:
    """Only run options and executor settings apply to every step."""
    allowed = set(run_options_model().model_fields) | set(executor_settings_model().model_fields)
    unknown = sorted(set(shared) - allowed)
    if unknown:
        raise JobError(
            f"chain: unknown key(s) {', '.join(unknown)}: the chain's own keys are steps, "
            "variables, folders and run options; a recipe's parameters go in its step "
            "(or in variables, shared as ${name})"
        )


def _variables(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise JobError("variables: a mapping of names to values")
    resolved: dict[str, Any] = {}
    for key, value in raw.items():  # a variable may use those before it
        resolved[str(key)] = _Context(resolved, {}).expand(value, f"variables.{key}")
    return resolved


def _folders(raw: Any, variables: dict[str, Any], base: Path) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise JobError("folders: a mapping of names to folders (paths or URLs)")
    folders = {}
    for key, value in raw.items():
        text = _Context(variables, {}).expand(value, f"folders.{key}")
        if not isinstance(text, str) or not text:
            raise JobError(f"folders.{key}: a folder is a path or a URL")
        folders[str(key)] = text if "://" in text else str((base / text).resolve())
    return folders


@dataclass(frozen=True)
class _Context:
    """What ``${…}`` may name: variables, folders, then the environment."""

    variables: Mapping[str, Any]
    folders: Mapping[str, str]

    def expand(self, value: Any, where: str) -> Any:
        if isinstance(value, str):
            whole = _REFERENCE.fullmatch(value)
            if whole:
                return self._lookup(whole.group(1), where)
            return _REFERENCE.sub(lambda m: str(self._lookup(m.group(1), where)), value)
        if isinstance(value, list):
            return [self.expand(v, where) for v in value]
        if isinstance(value, dict):
            return {k: self.expand(v, f"{where}.{k}") for k, v in value.items()}
        return value

    def _lookup(self, name: str, where: str) -> Any:
        if name.startswith("folders."):
            folder = name.removeprefix("folders.")
            if folder in self.folders:
                return self.folders[folder]
            known = ", ".join(self.folders) or "none"
            raise JobError(f"{where}: ${{{name}}}: no such folder (folders: {known})")
        if name in self.variables:
            return self.variables[name]
        if name in os.environ:
            return os.environ[name]
        raise JobError(f"{where}: ${{{name}}} names no variable, folder or environment variable")


@dataclass
class StepResult:
    """What one step did: its result, or why it did not run."""

    name: str
    recipe: str
    run_dir: Path
    result: RunResult | None = None
    #: ``ran`` (see ``result``), ``not run`` (an earlier step failed), or ``cannot plan``.
    state: str = "not run"
    reason: str = ""


@dataclass
class ChainResult:
    """What a chain run did, step by step; quacks like a :class:`RunResult` for the
    command line (summary, exit status, reports)."""

    run_dir: Path
    steps: list[StepResult] = field(default_factory=list)
    dry_run: bool = False
    exit_code: ExitCode = ExitCode.OK
    outputs: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitCode.OK

    @property
    def failed(self) -> list:
        """Failed tasks of every step that ran."""
        return [task for step in self.steps if step.result for task in step.result.failed]

    @property
    def reports(self) -> dict[str, Path]:
        path = self.run_dir / CHAIN_RECORD
        return {CHAIN_RECORD: path} if path.exists() else {}

    def summary(self) -> str:
        lines = []
        for number, step in enumerate(self.steps, start=1):
            head = f"step {number} {step.name} ({step.recipe})"
            if step.result is None:
                lines.append(f"{head}: {step.state}{': ' + step.reason if step.reason else ''}")
                continue
            if self.dry_run:
                lines.append(f"{head}:")
                lines += [f"  {line}" for line in step.result.summary().splitlines()]
                continue
            counts = step.result.counts
            done = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no task"
            lines.append(f"{head}: {done}  [{step.run_dir}]")
            lines += [f"  failed {t.id}: {t.reason}" for t in step.result.failed[:5]]
        return "\n".join(lines) + "\n"


def run_chain(
    chain: Chain,
    *,
    first: str | None = None,
    last: str | None = None,
    dry_run: bool = False,
    confirm: Callable[[str], bool] | None = None,
    callbacks: Sequence[RunCallback] = (),
) -> ChainResult:
    """Run (or plan) the steps of ``chain`` from ``first`` to ``last``, in order."""
    selected = chain.select(first, last)
    result = ChainResult(chain.run_dir, dry_run=dry_run)
    result.steps = [StepResult(s.name, s.job.recipe, s.job.run_dir) for s in selected]
    earlier_ran = False
    for number, (step, record) in enumerate(zip(selected, result.steps, strict=True), 1):
        log.info("chain: step %d/%d %s (%s)", number, len(selected), step.name, step.job.recipe)
        job = step.job.model_copy(update={"dry_run": True}) if dry_run else step.job
        try:
            record.result = run_job(job, confirm=confirm, callbacks=callbacks)
        except JobError as exc:
            if dry_run and earlier_ran:
                # Its plan may need what the steps before it write.
                record.state, record.reason = "cannot plan yet", str(exc)
                continue
            raise JobError(f"step {step.name}: {exc}") from None
        record.state = "ran"
        earlier_ran = True
        result.outputs = record.result.outputs
        code = record.result.exit_code
        if not dry_run and (code != ExitCode.OK or record.result.declined):
            result.exit_code = code
            why = (
                f"step {step.name} was declined at the cost prompt"
                if record.result.declined
                else f"step {step.name} did not finish every task"
            )
            for later in result.steps[number:]:
                later.reason = why
            break
    if not dry_run:
        _write_record(chain, result)
    return result


def _write_record(chain: Chain, result: ChainResult) -> None:
    """``chain.json``: the chain's steps, what each did, and where its run dir is."""
    steps = []
    for step in result.steps:
        entry: dict[str, Any] = {
            "name": step.name,
            "recipe": step.recipe,
            "run_dir": str(step.run_dir),
            "state": step.state,
        }
        if step.reason:
            entry["reason"] = step.reason
        if step.result is not None:
            entry["exit_code"] = int(step.result.exit_code)
            entry["counts"] = step.result.counts
        steps.append(entry)
    record = {
        "chain": str(chain.path),
        "exit_code": int(result.exit_code),
        "steps": steps,
    }
    chain.run_dir.mkdir(parents=True, exist_ok=True)
    target = chain.run_dir / CHAIN_RECORD
    partial = target.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=1))
    partial.replace(target)
