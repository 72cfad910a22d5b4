"""The ``htcondor`` adapter: a *detached* executor.

A DAG runs without a driver waiting on it (DAGMan is the driver), so this executor does not
take attempts one by one: the engine hands it the whole plan with :meth:`launch`, which
writes the DAG into the run directory and submits it to the local schedd through the
``htcondor2`` bindings. Retries are DAGMan's (``RETRY`` per node, with the run's
``retries``); outcomes come back as files that the FINAL node merges into the ledger.

Settings: ``mem`` (MB) → ``request_memory``, ``cpus_per_task`` → ``request_cpus``,
``workers`` → ``MAXJOBS`` of the task nodes (default 10000, the COG crank's), and
``cluster_options``: further submit commands for the task nodes (``request_disk``,
``container_image``, ``requirements``, ``+ProjectName``…, and ``python``: the interpreter
on the execute machines, default this one). ``shared_filesystem`` (default on) says whether
the execute machines see the run directory; without it each node gets its task as a file
through HTCondor's file transfer and sends its outcome back the same way, so every input
and output of the tasks must be an object-store URL: a local path is refused at launch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from tilefleet.engine.executors.base import ExecutorSettings, Launch, PlanExecutor
from tilefleet.engine.executors.htcondor.dag import write_dag
from tilefleet.errors import JobError, TilefleetError
from tilefleet.fields import Cli, KeyValues
from tilefleet.store.location import Location
from tilefleet.task import Task

#: Most task nodes DAGMan keeps submitted at once unless ``workers`` says otherwise.
DEFAULT_MAX_JOBS = 10_000
#: GDAL paths that name a remote object, though they start with ``/``.
GDAL_NETWORK_PREFIXES = ("/vsicurl/", "/vsis3/", "/vsigs/", "/vsiaz/", "/vsiadls/", "/vsioss/")


class HTCondorSettings(ExecutorSettings):
    mem: int | None = Field(
        None, ge=128, description="request_memory of each task node, MB [default: 2048]"
    )
    cpus_per_task: float = Field(1.0, gt=0, description="request_cpus of each task node")
    cluster_options: Annotated[KeyValues | None, Cli(flag="--cluster-option")] = Field(
        None,
        description="Further submit commands of the task nodes KEY=VALUE (request_disk, "
        "container_image, requirements, +ProjectName, python: the nodes' interpreter)",
    )
    shared_filesystem: bool = Field(
        True,
        description="The execute machines see the run directory; if not, each node gets its "
        "task file and sends back its outcome through HTCondor's file transfer, and every "
        "input and output must be an object-store URL (s3://…)",
    )


class HTCondorExecutor(PlanExecutor):
    name = "htcondor"
    Settings = HTCondorSettings
    #: Seconds a node's attempt may run, set by the engine before ``launch`` (None: no
    #: limit): each node stops its attempt past it and reports it timed out (retryable).
    task_timeout: float | None = None

    @staticmethod
    def default_workers() -> int:
        return DEFAULT_MAX_JOBS

    def check_plan(self, tasks: Sequence[Task]) -> None:
        if not self.config.shared_filesystem:
            check_remote_only(tasks)

    def launch(
        self, tasks: Sequence[Task], run_dir: Path, *, retries: int, submit: bool = True
    ) -> Launch:
        """Write the DAG of ``tasks`` into ``run_dir``; submit it unless ``submit`` is off.
        Without a reachable schedd the files stay and the message says how to submit them.
        Without a shared file system, a task naming a local path is refused (:class:`JobError`)."""
        self.check_plan(tasks)
        files = write_dag(
            run_dir,
            tasks,
            retries=retries,
            max_jobs=self.workers,
            cpus=self.config.cpus_per_task,
            memory_mb=self.config.mem,
            submit_options=self.config.cluster_options,
            shared_filesystem=self.config.shared_filesystem,
            task_timeout=self.task_timeout,
        )
        by_hand = f"submit it from a submit host with: condor_submit_dag {files.dag}"
        if not submit:
            return Launch(False, f"DAG of {files.nodes} node(s) written; {by_hand}", files)
        try:
            cluster_id = submit_dag(files.dag)
        except SubmitError as exc:
            return Launch(False, f"{exc}; the DAG is written, {by_hand}", files)
        return Launch(
            True,
            f"DAG of {files.nodes} node(s) submitted as cluster {cluster_id}; the FINAL node "
            f"writes the reports (follow it with: condor_q {cluster_id} -dag)",
            files,
            handle=str(cluster_id),
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "mode": "dag"}


def check_remote_only(tasks: Sequence[Task]) -> None:
    """Refuse, naming the first one, a task whose ``dest`` or a string parameter is a local
    path: job building makes every local path absolute, and the execute machines of a pool
    without a shared file system cannot see the files it names."""
    for task in tasks:
        if Location.parse(task.dest).is_local:
            _refuse(task, "dest", task.dest)
        for name, text in _strings(task.params):
            if _is_local_path(text):
                _refuse(task, name, text)


def _refuse(task: Task, name: str, value: str) -> None:
    raise JobError(
        f"htcondor without a shared file system: task {task.id!r} has {name} {value}, a local "
        "path the execute machines cannot see; use an object-store URL (s3://…) or "
        "shared_filesystem: true"
    )


def _strings(value: Any, name: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a task's parameters, with where it is (``a.b[2]``)."""
    if isinstance(value, str):
        yield name, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{name}.{key}" if name else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{name}[{index}]")


def _is_local_path(text: str) -> bool:
    if text.startswith("file://"):
        return True
    return os.path.isabs(text) and not text.startswith(GDAL_NETWORK_PREFIXES)


class SubmitError(TilefleetError, RuntimeError):
    """The DAG could not be submitted (no bindings, no schedd)."""


def submit_dag(dag: Path) -> int:
    """Submit a DAG to the local schedd; return its cluster id."""
    try:
        import htcondor2
    except ImportError:
        raise SubmitError(
            "the htcondor2 bindings are not installed (pip install 'tilefleet[htcondor]')"
        ) from None
    try:
        schedd = htcondor2.Schedd()
        description = htcondor2.Submit.from_dag(str(dag))  # a rescue DAG is picked up
        return int(schedd.submit(description).cluster())
    except Exception as exc:  # HTCondorException and friends: no daemon, no DAGMan
        raise SubmitError(f"no HTCondor schedd could take the DAG ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
