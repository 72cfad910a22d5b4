"""The files of an HTCondor DAG for one run, written as plain text.

``RUN_DIR/htcondor/`` receives:

- ``tilefleet.dag``: one node per task (``JOB``, ``VARS task_id=… node=…``,
  ``RETRY n UNLESS-EXIT 2`` so a permanent failure is not retried, ``CATEGORY tasks``),
  ``MAXJOBS tasks <workers>`` as the throttle, and a ``FINAL`` node;
- ``task.sub``: the submit description every task node shares: ``python -m tilefleet task
  run RUN_DIR $(task_id)`` with ``request_cpus``, ``request_memory``, ``request_disk``;
  with a task timeout, ``TILEFLEET_TASK_TIMEOUT`` in its ``environment`` (the node stops
  an attempt past it, reports it timed out and exits 1, so RETRY reruns it) and a
  ``periodic_remove`` a little later, for a node too stuck to stop itself;
  without a shared file system, ``python -m tilefleet task run-file $(node).json`` instead,
  the task file and the outcome moved by HTCondor's file transfer;
- ``tasks/`` (without a shared file system only): each node's task as a small JSON file;
- ``final.sub``: ``python -m tilefleet task finish RUN_DIR`` in the local universe (on the
  submit host, next to the ledger): merges the nodes' outcome files and writes the reports;
- ``logs/``: the job event log and each node's stdout/stderr.

The files are written directly rather than through ``htcondor2.dags`` so that they can be
made (and checked) where the bindings are not installed. With a shared file system, nodes
read the run directory; without one, each node gets only its task file and sends back only
its outcome file (``transfer_output_remaps`` names it as ``merge_outcomes`` expects), so
every input and output must then be an object-store URL (see docs/executors.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tilefleet.engine.executors.worker_env import forwarded_environment
from tilefleet.engine.task_runner import (
    OUTCOME_FILE,
    OUTCOMES_DIR,
    TASK_TIMEOUT_VARIABLE,
    outcome_file_stem,
    write_task_file,
)
from tilefleet.errors import JobError
from tilefleet.task import Task

DAG_FOLDER = "htcondor"
DAG_NAME = "tilefleet.dag"
#: Folder (below ``DAG_FOLDER``) of the nodes' task files, without a shared file system.
TASKS_FOLDER = "tasks"
#: Characters that HTCondor's file-transfer commands give a meaning of their own (list
#: and remap separators, quotes, macros): a run directory holding one is refused there.
TRANSFER_SPECIAL = (",", ";", "=", '"', "'", "$(")
#: Defaults of the resource requests (the COG crank asked for 1 CPU, 1 GB, 1-2 GB disk).
DEFAULT_MEMORY_MB = 2048
DEFAULT_DISK = "2GB"
#: Seconds past the task timeout after which the schedd removes a node still running: the
#: node stops itself at the timeout; this is for one too stuck to (its removal is a failed
#: node, which RETRY reruns; it reports no outcome). The schedd looks every minute or so.
REMOVE_AFTER_TIMEOUT_S = 300


def getenv_names(environ: dict[str, str] | None = None) -> str:
    """What the submit files' ``getenv`` says: the names of the settings set here that
    remote workers get (:func:`forwarded_environment`), never a credential's. HTCondor
    copies the values of what ``getenv`` names into the job ad, which the schedd keeps on
    disk, so a wildcard (``GDAL_*``) would carry ``GDAL_HTTP_USERPWD`` there too."""
    names = sorted(forwarded_environment(environ))
    return ", ".join(names) if names else "false"


@dataclass(frozen=True)
class DagFiles:
    """Where the DAG of a run was written."""

    folder: Path
    dag: Path
    task_submit: Path
    final_submit: Path
    nodes: int


def write_dag(
    run_dir: Path,
    tasks: Iterable[Task],
    *,
    retries: int,
    max_jobs: int,
    cpus: float = 1,
    memory_mb: int | None = None,
    submit_options: Mapping[str, Any] | None = None,
    shared_filesystem: bool = True,
    task_timeout: float | None = None,
) -> DagFiles:
    """Write the DAG and submit files of ``tasks`` into ``RUN_DIR/htcondor``; without
    ``shared_filesystem``, also each node's task file, for HTCondor's file transfer.
    ``task_timeout`` (seconds) bounds each node's attempt."""
    run_dir = Path(run_dir).resolve()
    folder = run_dir / DAG_FOLDER
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    tasks_folder = folder / TASKS_FOLDER
    if not shared_filesystem:
        _check_transfer_path(run_dir)
        (run_dir / OUTCOMES_DIR).mkdir(exist_ok=True)  # remapped outcomes land there
        tasks_folder.mkdir(exist_ok=True)
        for stale in tasks_folder.glob("*.json"):  # an earlier launch's nodes
            stale.unlink()
    options = dict(submit_options or {})
    python = str(options.pop("python", sys.executable))
    bounds = _time_bounds(task_timeout, options)  # takes an `environment` of the options
    task_submit = folder / "task.sub"
    final_submit = folder / "final.sub"
    requests = {
        "request_cpus": _number(cpus),
        "request_memory": int(memory_mb or DEFAULT_MEMORY_MB),
        "request_disk": DEFAULT_DISK,
    }
    if shared_filesystem:
        where = {
            "arguments": _arguments(["-m", "tilefleet", "task", "run", str(run_dir), "$(task_id)"]),
            "initialdir": str(run_dir),
            "should_transfer_files": "NO",
        }
    else:
        outcome = run_dir / OUTCOMES_DIR / "$(outcome).$(RETRY).json"
        where = {
            "arguments": _arguments(
                ["-m", "tilefleet", "task", "run-file", "$(node).json", "--attempt", "$(RETRY)"]
                + ["--outcome", OUTCOME_FILE]
            ),
            "should_transfer_files": "YES",
            "when_to_transfer_output": "ON_EXIT",
            "transfer_executable": "false",  # the execute machines' own interpreter
            "transfer_input_files": str(tasks_folder / "$(node).json"),
            "transfer_output_files": OUTCOME_FILE,
            "transfer_output_remaps": f'"{OUTCOME_FILE} = {outcome}"',
        }
    task_submit.write_text(
        _submit_file(
            "One attempt of one task; exit 0 done (or already done), 1 retry, 2 permanent.",
            {
                "universe": "vanilla",
                "executable": python,
                **where,
                "getenv": getenv_names(),
                **requests,
                **bounds,
                "log": str(folder / "logs" / "tasks.log"),
                "output": str(folder / "logs" / "$(node).out"),
                "error": str(folder / "logs" / "$(node).err"),
                **options,
            },
        )
    )
    final_submit.write_text(
        _submit_file(
            "FINAL node: merge the nodes' outcomes into the ledger and write the reports.",
            {
                "universe": "local",
                "executable": python,
                "arguments": _arguments(["-m", "tilefleet", "task", "finish", str(run_dir)]),
                "initialdir": str(run_dir),
                "getenv": getenv_names(),
                "log": str(folder / "logs" / "final.log"),
                "output": str(folder / "logs" / "final.out"),
                "error": str(folder / "logs" / "final.err"),
            },
        )
    )
    dag = folder / DAG_NAME
    nodes = 0
    with open(dag, "w") as out:
        out.write(
            f"# tilefleet: one node per task of {run_dir}, then FINAL writes the reports.\n"
            f"# Submit from a submit host: condor_submit_dag {dag}\n"
        )
        for task in tasks:
            node = f"t{nodes:07d}"
            out.write(f"JOB {node} {task_submit}\n")
            task_id = _vars_value(_argument_text(task.id))
            macros = f'task_id="{task_id}" node="{node}"'
            if not shared_filesystem:
                write_task_file(task, tasks_folder / f"{node}.json")
                macros += f' outcome="{_vars_value(outcome_file_stem(task.id))}"'
            out.write(f"VARS {node} {macros}\n")
            out.write(f"RETRY {node} {retries} UNLESS-EXIT 2\n")
            out.write(f"CATEGORY {node} tasks\n")
            nodes += 1
        out.write(f"MAXJOBS tasks {max_jobs}\n")
        out.write(f"FINAL report {final_submit}\n")
    return DagFiles(folder, dag, task_submit, final_submit, nodes)


def _time_bounds(task_timeout: float | None, options: dict[str, Any]) -> dict[str, str]:
    """The submit commands bounding a node's run time: the timeout in the node's
    environment (ahead of an ``environment`` of the cluster options, which is then merged
    here), and a ``periodic_remove`` backstop unless the options give their own."""
    if task_timeout is None:
        return {}
    given = str(options.pop("environment", "")).strip().strip('"').strip()
    environment = " ".join(filter(None, [f"{TASK_TIMEOUT_VARIABLE}={task_timeout:g}", given]))
    remove_after = int(task_timeout + REMOVE_AFTER_TIMEOUT_S)
    return {
        "environment": f'"{environment}"',
        "periodic_remove": f"(JobStatus == 2) && (time() - EnteredCurrentStatus > {remove_after})",
    }


def _check_transfer_path(run_dir: Path) -> None:
    """Refuse a run directory that HTCondor's transfer commands would read otherwise."""
    for special in TRANSFER_SPECIAL:
        if special in str(run_dir):
            raise JobError(
                f"run dir {run_dir} holds {special!r}, which HTCondor's file transfer "
                "reads as a separator: choose another --run-dir"
            )


def _submit_file(comment: str, commands: Mapping[str, Any]) -> str:
    lines = [f"# {comment}"]
    lines += [f"{key} = {value}" for key, value in commands.items()]
    lines.append("queue")
    return "\n".join(lines) + "\n"


def _arguments(args: list[str]) -> str:
    """HTCondor's new-style ``arguments``: double-quoted, each argument in single quotes
    (a literal ``'`` doubled, a literal ``"`` doubled)."""
    return '"' + " ".join(f"'{_argument_text(arg)}'" for arg in args) + '"'


def _argument_text(text: str) -> str:
    """Text inside one single-quoted argument (also a task id substituted into one)."""
    return text.replace("'", "''").replace('"', '""')


def _vars_value(value: str) -> str:
    """A DAG ``VARS`` value: backslashes and double quotes escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
