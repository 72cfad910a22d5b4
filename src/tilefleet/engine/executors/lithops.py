"""``lithops``: serverless functions (AWS Lambda, Google Cloud Functions, …) or local
processes, through Lithops and its own config file.

``lithops_config`` names a Lithops config file (YAML, the format Lithops documents: a
``lithops`` section naming ``backend`` and ``storage``, then one section per backend).
Without one, Lithops' ``localhost`` backend runs the tasks in local processes with the
fast ``version: 1`` runner and this interpreter as the runtime.

Each batch of attempts the engine submits goes out as one Lithops ``map`` job (one
invocation per attempt): a job costs a round trip and a runtime check (on ``localhost``, a
fresh runner process, and jobs run one after another), an invocation does not. The
futures' states come from Lithops' job monitor; a failed invocation (timeout, out of
memory, the function process killed) becomes a lost attempt, which the engine retries.
Lithops' own retries are not used.

Lithops runs every call in a process forked for it, which imports the task's modules
afresh: tilefleet, the recipe, numpy, GDAL. On ``localhost`` with the default runtime that
is most of a short call, so the runtime is a small launcher that imports those modules in
the runner once, before it forks (see :func:`preloading_runtime`).

Billing: on ``aws_lambda`` an invocation costs its duration × ``mem`` (MB, default the
config's ``runtime_memory``) × the price per GB-second of its architecture, so the engine
estimates, asks and measures the cost. ``localhost`` costs nothing. Other serverless
backends run but are not priced (the estimate says nothing about money).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import math
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from tilefleet.engine.estimate import PRICE_PER_GB_S
from tilefleet.engine.executors.base import (
    AttemptExecutor,
    Billing,
    Completion,
    ExecutorSettings,
)
from tilefleet.engine.executors.worker_env import forwarded_environment
from tilefleet.engine.worker import execute
from tilefleet.fields import read_yaml_mapping
from tilefleet.task import Task

log = logging.getLogger("tilefleet")

LOCALHOST = "localhost"
#: Lithops' default ``runtime_memory`` of AWS Lambda functions, in MB.
LAMBDA_DEFAULT_MEMORY_MB = 256
#: Attempts in flight per local process on the localhost backend (see default_max_in_flight).
LOCALHOST_IN_FLIGHT_PER_WORKER = 256
#: How often the futures' states (kept current by Lithops' job monitor) are looked at.
POLL_S = 0.05
#: Seconds between the job monitor's listings of localhost storage (a fifth of it while
#: calls keep finishing). Lithops' 0.1 s lists every call's folder 10-50 times a second,
#: most of the driver's CPU on this backend (5 ms a call in a job of 200, 10 ms in one of
#: 500), taken from the workers.
LOCALHOST_MONITORING_S = 0.5


class LithopsSettings(ExecutorSettings):
    path_fields: ClassVar[tuple[str, ...]] = ("lithops_config",)

    lithops_config: str | None = Field(
        None,
        description="The Lithops config file (backend, region, …) "
        "[default: local processes, the localhost backend]",
    )
    mem: int | None = Field(
        None,
        ge=128,
        description="Memory per invocation, MB [default: the config's runtime_memory]; "
        "prices AWS Lambda runs",
    )


class LithopsExecutor(AttemptExecutor):
    name = "lithops"
    Settings = LithopsSettings
    in_flight_per_worker = 16  # remote round trips: keep more queued
    in_flight_help = f"16 ({LOCALHOST_IN_FLIGHT_PER_WORKER} on localhost)"

    def __init__(self, workers: int | None = None, **settings: Any):
        super().__init__(workers, **settings)
        self._lithops = _import_lithops()
        self.backend_config = lithops_config(self.config.lithops_config, self.workers)
        self.backend = self.backend_config["lithops"].get("backend", LOCALHOST)
        # The runtime is this interpreter unless the config names one: it can preload then.
        self._own_runtime = self.backend_config.get(LOCALHOST, {}).get("runtime") == sys.executable
        self._fexec = None
        self._futures: dict[Any, tuple[str, int]] = {}
        self._lost_at_submit: list[Completion] = []
        # Lithops looks through the function and each call's arguments for modules the
        # runtime lacks, to ship them: about 1 ms of driver CPU a task, and it finds none,
        # as the runtime must hold tilefleet and recipes are imported by name. A config
        # that names its own include_modules keeps it.
        keep_modules = "include_modules" in self.backend_config["lithops"]
        self._map_options: dict[str, Any] = {} if keep_modules else {"include_modules": None}

    @property
    def default_max_in_flight(self) -> int:
        # The localhost backend runs map jobs one after another, each in a fresh runner
        # process: small batches would queue behind each other and pay that start-up each.
        per_worker = LOCALHOST_IN_FLIGHT_PER_WORKER if self.backend == LOCALHOST else None
        return (per_worker or self.in_flight_per_worker) * self.workers

    @property
    def memory_mb(self) -> int | None:
        """Memory of one invocation: ``mem``, else the backend's ``runtime_memory``."""
        if self.config.mem:
            return self.config.mem
        memory = self.backend_config.get(self.backend, {}).get("runtime_memory")
        if memory is None and self.backend == "aws_lambda":
            memory = LAMBDA_DEFAULT_MEMORY_MB
        return memory

    @property
    def billing(self) -> Billing | None:
        if self.backend != "aws_lambda":
            return None
        arm = self.backend_config.get("aws_lambda", {}).get("architecture") == "arm64"
        price = PRICE_PER_GB_S["aws-lambda-arm" if arm else "aws-lambda-x86"]
        return Billing(memory_gb=self.memory_mb / 1024, usd_per_gb_s=price)

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described["backend"] = self.backend
        region = self.backend_config.get(self.backend, {}).get("region")
        if region:
            described["region"] = region
        if self.memory_mb:
            described["mem"] = self.memory_mb
        return described

    def start(self, preload: Sequence[str] = ()) -> None:
        if self.backend == LOCALHOST and self._own_runtime:
            from lithops.constants import LITHOPS_TEMP_DIR

            modules = ("tilefleet.engine.worker", *preload)
            runtime = preloading_runtime(sys.executable, modules, Path(LITHOPS_TEMP_DIR))
            self.backend_config[LOCALHOST]["runtime"] = str(runtime)
        self._fexec = self._lithops.FunctionExecutor(config=self.backend_config)

    def submit(self, task: Task, attempt: int) -> None:
        self.submit_many([(task, attempt)])

    def submit_many(self, attempts: Sequence[tuple[Task, int]]) -> None:
        """Send the attempts as one map job."""
        options = dict(self._map_options)
        if self.backend != LOCALHOST:
            options["extra_env"] = forwarded_environment()
            if self.memory_mb:
                options["runtime_memory"] = self.memory_mb
            if self.task_timeout is not None:  # the function's own limit (Lambda's timeout)
                options["timeout"] = math.ceil(self.task_timeout)
        calls = [(task, attempt, self.max_task_memory) for task, attempt in attempts]
        try:
            futures = self._fexec.map(execute, calls, **options)
        except Exception as exc:  # the job could not be invoked at all: every attempt is lost
            log.warning("lithops: invoking %d attempt(s) failed: %s", len(attempts), exc)
            self._lost_at_submit += [Completion(t.id, attempt, lost=exc) for t, attempt in attempts]
            return
        for future, (task, attempt) in zip(futures, attempts, strict=True):
            self._futures[future] = (task.id, attempt)

    def wait(self, timeout: float | None) -> list[Completion]:
        completions, self._lost_at_submit = self._lost_at_submit, []
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._futures and not completions:
            finished = [f for f in self._futures if f.ready or f.done or f.error]
            completions = [self._completion(future) for future in finished]
            if completions or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(POLL_S)
        return completions

    def _completion(self, future) -> Completion:
        task_id, attempt = self._futures.pop(future)
        try:
            outcome = future.result(
                throw_except=True, internal_storage=self._fexec.internal_storage
            )
            return Completion(task_id, attempt, outcome=outcome)
        except Exception as exc:  # invocation failed: timeout, killed, out of memory
            return Completion(task_id, attempt, lost=exc)

    def shutdown(self, cancel: bool = False) -> None:
        if self._fexec is None:
            return
        fexec, self._fexec = self._fexec, None
        try:  # delete this run's job data and function from storage, now rather than at exit
            fexec.clean(clean_cloudobjects=False, clean_fn=True, force=True, on_exit=True)
            atexit.unregister(fexec._clean_at_exit)
        except Exception as exc:
            log.debug("lithops: cleaning job data failed: %s", exc)
        fexec.job_monitor.stop()
        fexec.invoker.stop(wait=not cancel)
        if cancel:
            fexec.compute_handler.clear()  # stops what still runs (localhost)
        self._futures.clear()


def lithops_config(path: str | None, workers: int) -> dict[str, Any]:
    """The Lithops config of a run: the given file, or local processes; for ``localhost``
    the fast ``version: 1`` runner and this interpreter, and for ``localhost`` storage a
    calmer job monitor, unless the file says otherwise."""
    if path:
        config = read_yaml_mapping(path, "lithops_config")
    else:
        config = {"lithops": {"backend": LOCALHOST, "storage": LOCALHOST}}
    config.setdefault("lithops", {})
    config["lithops"].setdefault("log_level", "WARNING")
    if config["lithops"].get("backend", LOCALHOST) == LOCALHOST:
        config["lithops"].setdefault("backend", LOCALHOST)
        config["lithops"].setdefault("storage", LOCALHOST)
        local = config.setdefault(LOCALHOST, {}) or {}
        config[LOCALHOST] = local
        local.setdefault("version", 1)
        local.setdefault("runtime", sys.executable)
        local.setdefault("worker_processes", workers)
    if config["lithops"].get("storage") == LOCALHOST:
        config["lithops"].setdefault("monitoring_interval", LOCALHOST_MONITORING_S)
    return config


_PRELOAD_THEN_RUN = """\
import importlib, runpy, sys
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except Exception:
        pass  # the call that needs the module reports why it cannot be imported
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def preloading_runtime(python: str, modules: Sequence[str], folder: Path) -> Path:
    """An executable that Lithops' localhost backend can take as its runtime: it runs
    ``python`` on the given script, after importing ``modules``. The runner of a job, and
    so every call forked from it, then starts with them imported. The file is named by its
    content, so Lithops' cache of runtime metadata (keyed by the runtime) stays valid."""
    code = _PRELOAD_THEN_RUN.format(modules=tuple(modules))
    script = f'#!/bin/sh\nexec {shlex.quote(python)} -c {shlex.quote(code)} "$@"\n'
    digest = hashlib.sha256(script.encode()).hexdigest()[:16]
    path = folder / f"tilefleet-runtime-{digest}.sh"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}")
        partial.write_text(script)
        partial.chmod(0o755)
        partial.replace(path)  # atomic: runs started side by side never see half a file
    return path


def _import_lithops():
    try:
        import lithops
    except ImportError:
        raise ValueError(
            "executor 'lithops' needs Lithops: pip install 'tilefleet[lithops]'"
        ) from None
    return lithops
