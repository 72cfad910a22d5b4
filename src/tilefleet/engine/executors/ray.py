"""``ray``: Ray tasks, on a local Ray started here or a running cluster (``address``).

- default: ``ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)``.
  Its workers are started by this process and inherit its environment.
- ``address: ray://head:10001`` (or ``auto``): a running cluster. Its workers get the
  non-secret settings of this process (GDAL options, regions, endpoints) through the
  runtime environment's ``env_vars``; credentials come from the cluster itself.
- If Ray is already initialised in this process (a notebook, a test session), it is used
  as it is and left running: tilefleet only shuts down a Ray it started.

Each attempt is one Ray task reserving ``cpus_per_task`` CPUs (default 1) and ``mem`` MB of
memory, with ``max_retries=0``: retries are the engine's. A worker that dies
(``WorkerCrashedError``), an actor or node lost (``RayActorError``, ``NodeDiedError``) or
an object lost with it becomes a lost attempt, which the engine retries.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from tilefleet.engine.executors.base import AttemptExecutor, Completion, ExecutorSettings
from tilefleet.engine.executors.worker_env import forwarded_environment
from tilefleet.engine.worker import execute
from tilefleet.task import Task

log = logging.getLogger("tilefleet")


class RaySettings(ExecutorSettings):
    address: str | None = Field(
        None, description="Cluster address (ray://head:10001 or auto) [default: a local Ray]"
    )
    cpus_per_task: float = Field(1.0, gt=0, description="CPUs reserved per task")
    mem: int | None = Field(None, ge=128, description="Memory reserved per task, MB")


class RayExecutor(AttemptExecutor):
    name = "ray"
    Settings = RaySettings
    in_flight_per_worker = 32  # remote round trips and batched submissions: keep more queued

    def __init__(self, workers: int | None = None, **settings: Any):
        super().__init__(workers, **settings)
        self._ray = _import_ray()
        self._started_here = False
        self._remote = None
        self._refs: dict[Any, tuple[str, int]] = {}

    def start(self, preload: Sequence[str] = ()) -> None:
        ray = self._ray
        if not ray.is_initialized():
            address = self.config.address
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.WARNING,
            }
            if address:
                options["address"] = address
                options["runtime_env"] = {"env_vars": forwarded_environment()}
            else:
                options["num_cpus"] = self.workers
            ray.init(**options)
            self._started_here = True
        resources: dict[str, Any] = {
            "num_cpus": self.config.cpus_per_task,
            "max_retries": 0,
            "retry_exceptions": False,
        }
        if self.config.mem:
            resources["memory"] = self.config.mem * 1024 * 1024
        self._remote = ray.remote(execute).options(**resources)

    def submit(self, task: Task, attempt: int) -> None:
        ref = self._remote.remote(task, attempt, self.max_task_memory)
        self._refs[ref] = (task.id, attempt)

    def wait(self, timeout: float | None) -> list[Completion]:
        if not self._refs:
            return []
        refs = list(self._refs)
        # Wait for a quarter of what is in flight (the engine refills about then), or
        # whatever has finished by the timeout: few wait calls, each returning many.
        ready, _ = self._ray.wait(refs, num_returns=max(1, len(refs) // 4), timeout=timeout)
        try:  # one round trip for the whole batch, the usual case
            outcomes = self._ray.get(ready)
        except Exception:  # a lost attempt among them: fetch one by one to tell which
            return [self._completion(ref) for ref in ready]
        return [
            Completion(*self._refs.pop(ref), outcome=outcome)
            for ref, outcome in zip(ready, outcomes, strict=True)
        ]

    def _completion(self, ref) -> Completion:
        task_id, attempt = self._refs.pop(ref)
        try:
            return Completion(task_id, attempt, outcome=self._ray.get(ref))
        except Exception as exc:  # WorkerCrashedError, RayActorError, NodeDiedError, …
            return Completion(task_id, attempt, lost=exc)

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            for ref in list(self._refs):
                try:
                    self._ray.cancel(ref, force=True)
                except Exception as exc:
                    log.debug("ray: cancelling an attempt failed: %s", exc)
        self._refs.clear()
        if self._started_here:
            self._ray.shutdown()
            self._started_here = False


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("executor 'ray' needs Ray: pip install 'tilefleet[ray]'") from None
    return ray
