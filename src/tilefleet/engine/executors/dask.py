"""``dask``: Dask distributed, on a LocalCluster started here, a running scheduler or a Dask
Gateway cluster.

- default: a ``distributed.LocalCluster`` of ``workers`` processes with one thread each and
  no dashboard. Its workers are children of this process and inherit its environment.
- ``scheduler: tcp://host:8786``: a running scheduler; its workers need the environment
  themselves (see docs/executors.md).
- ``gateway: https://…`` plus ``cluster_options``: a new Dask Gateway cluster (image,
  worker cores and memory, ``adaptive_minimum``/``adaptive_maximum``; ``environment`` as a
  list of variable names sends those variables' values from the driver's environment over
  the gateway API, so the job file and the record hold names only). With ``DASK_CLUSTER``
  set (as Calrissian does for a CWL step), the Gateway cluster of that name is joined
  instead, and left running at the end.

Retries are the engine's: tasks are submitted with ``retries=0`` and, on a cluster started
here, the scheduler's ``allowed-failures`` is 0, so a worker that dies fails its attempts at
once (``KilledWorker``) instead of rerunning them behind the engine's back. Any exception
from a future is infrastructure trouble (the worker function returns failures as data), so
it becomes a lost attempt, which the engine retries.

Task timeouts: the scheduler knows when an attempt was handed to a worker, not when it
started (a worker may hold several). So an attempt still running after half the timeout
(at most 5 s) says how long it has run, as a Dask worker event (``log_event`` on a topic
of the run, which the client subscribes to; short attempts send nothing); the driver
counts its start from when it heard, less that. An attempt past the timeout is cancelled
(its key released, so Dask never runs it again behind the engine's back) and fails,
retryable, "timed out after N s"; then the worker running it is restarted through its
nanny (``restart_workers``), the only way to stop a thread blocked in C. The other
attempts go on; those that die with the restarted worker (handed to it while it was stuck)
are submitted again under the same attempt numbers: they lose time, not an attempt. A
worker without a nanny cannot be restarted: its thread stays blocked (a warning says so)
while the attempt is retried elsewhere.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
from asyncio import CancelledError
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from pydantic import Field, model_validator

from tilefleet.engine.executors.base import (
    AttemptExecutor,
    Completion,
    ExecutorSettings,
    start_reported_if_long,
)
from tilefleet.engine.executors.scratch import new_scratch
from tilefleet.engine.executors.worker_env import is_secret_name
from tilefleet.engine.worker import execute
from tilefleet.errors import TaskTimeoutError, WorkerLostError
from tilefleet.fields import Cli, KeyValues
from tilefleet.task import Outcome, Task

#: Names an existing Gateway cluster to join instead of starting one (Calrissian sets it
#: for a CWL step with a DaskGatewayRequirement).
GATEWAY_CLUSTER_VARIABLE = "DASK_CLUSTER"

log = logging.getLogger("tilefleet")

#: Gateway cluster options that tilefleet handles itself rather than passing on.
ADAPTIVE_KEYS = ("adaptive_minimum", "adaptive_maximum")
#: Longest a restart of a worker holding a timed-out attempt may take.
RESTART_TIMEOUT_S = 60


class DaskSettings(ExecutorSettings):
    scheduler: str | None = Field(None, description="Address of a running scheduler (tcp://…)")
    gateway: str | None = Field(None, description="Dask Gateway URL: start a cluster there")
    cluster_options: Annotated[KeyValues | None, Cli(flag="--cluster-option")] = Field(
        None,
        description="Gateway cluster options KEY=VALUE (image, worker_cores, worker_memory, "
        "adaptive_minimum, adaptive_maximum, environment)",
    )

    @model_validator(mode="after")
    def _one_cluster(self) -> DaskSettings:
        if self.scheduler and self.gateway:
            raise ValueError("executor 'dask' takes either scheduler or gateway, not both")
        if self.cluster_options and not self.gateway:
            raise ValueError("executor 'dask': cluster_options need a gateway")
        return self


class DaskExecutor(AttemptExecutor):
    name = "dask"
    Settings = DaskSettings
    in_flight_per_worker = 32  # remote round trips and batched submissions: keep more queued

    def __init__(self, workers: int | None = None, **settings: Any):
        super().__init__(workers, **settings)
        self._distributed = _import_distributed()
        if self.config.gateway:  # a missing client is an invalid job, not a crash at start
            _gateway_class()
        self._client = None
        self._cluster = None  # only a cluster started here, closed on shutdown
        self._joined = None  # a Gateway cluster someone else started (GATEWAY_CLUSTER_VARIABLE)
        self._scratch: str | None = None
        self._futures: dict[Any, tuple[Task, int]] = {}
        self._run_token = secrets.token_hex(4)
        self._start_topic: str | None = None  # the workers' start events (with a timeout)
        self._started: dict[tuple[str, int], tuple[str, float]] = {}  # -> (worker, when)
        self._starts_lock = threading.Lock()
        self._restarts: ThreadPoolExecutor | None = None  # restarts off the driver's loop
        self._restarted: set[str] = set()  # workers restarted to stop a timed-out attempt
        self._reruns = 0

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        if "cluster_options" in described:
            described["cluster_options"] = _without_environment_values(described["cluster_options"])
        return described

    def start(self, preload: Sequence[str] = ()) -> None:
        distributed = self._distributed
        if self.config.scheduler:
            self._client = distributed.Client(self.config.scheduler)
        elif self.config.gateway and os.environ.get(GATEWAY_CLUSTER_VARIABLE):
            # A cluster made for this run by the workflow engine (Calrissian): used as it
            # is, and left for its owner to shut down.
            self._joined = _gateway(self.config.gateway).connect(
                os.environ[GATEWAY_CLUSTER_VARIABLE]
            )
            self._client = self._joined.get_client()
        elif self.config.gateway:
            self._cluster = _gateway_cluster(
                self.config.gateway, self.config.cluster_options or {}, self.workers
            )
            self._client = self._cluster.get_client()
        else:
            import dask

            self._scratch = new_scratch("dask")
            scheduler_config = {
                "distributed.scheduler.allowed-failures": 0,
                "temporary-directory": self._scratch,
            }
            with dask.config.set(scheduler_config):
                self._cluster = distributed.LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                    local_directory=self._scratch,
                )
            self._client = distributed.Client(self._cluster)
        modules = ("tilefleet.engine.worker", *preload)
        try:  # warm the workers up; workers that join later import on first use
            self._client.run(_import_modules, modules)
        except Exception as exc:  # not fatal: a worker that cannot import fails its tasks
            log.warning("dask: could not preload %s on the workers: %s", modules, exc)
        if self.task_timeout is not None:
            self._start_topic = f"tilefleet-{self._run_token}-starts"
            self._client.subscribe_topic(self._start_topic, self._note_start)

    def submit(self, task: Task, attempt: int) -> None:
        self.submit_many([(task, attempt)])

    def submit_many(self, attempts: Sequence[tuple[Task, int]]) -> None:
        self._submit(attempts)

    def _submit(self, attempts: Sequence[tuple[Task, int]], again: str = "") -> None:
        # One client.map is one graph update for the scheduler, however many attempts.
        keys = [
            f"tilefleet-{self._run_token}-{task.id}-{attempt}{again}" for task, attempt in attempts
        ]
        futures = self._client.map(
            _run_attempt,
            [task for task, _ in attempts],
            [attempt for _, attempt in attempts],
            key=keys,
            pure=False,
            retries=0,
            max_memory_mb=self.max_task_memory,
            start_topic=self._start_topic,
            timeout=self.task_timeout,
        )
        for future, (task, attempt) in zip(futures, attempts, strict=True):
            self._futures[future] = (task, attempt)

    def wait(self, timeout: float | None) -> list[Completion]:
        if not self._futures:
            return []
        # Waiting for a quarter of what is in flight (the engine refills about then), or
        # whatever has finished by the timeout, keeps the driver's wake-ups, gathers and
        # ledger commits few.
        batch = max(1, len(self._futures) // 4)
        if self._start_topic is not None:
            timeout = self._until_next_deadline(timeout)
        done = self._settled(batch, timeout)
        completions = self._stop_overdue() if self._start_topic is not None else []
        done = [future for future in done if future in self._futures]  # not stopped just now
        again = []
        results = self._results(done)
        self._client.loop.add_callback(_release, done)  # one wake-up of the loop, not one each
        for future, result in results:
            held = self._futures[future]
            completion = self._completion(future, result)
            if self._died_in_our_restart(completion):
                again.append(held)
            else:
                completions.append(completion)
        if again:  # held by a worker restarted to stop another attempt: no fault of theirs
            with self._starts_lock:  # they start again: not from when they first started
                for task, attempt in again:
                    self._started.pop((task.id, attempt), None)
            self._reruns += 1
            log.info("dask: %d attempt(s) lost with a restarted worker run again", len(again))
            self._submit(again, again=f"-again{self._reruns}")
        return completions

    def _settled(self, batch: int, timeout: float | None) -> list:
        """The attempts' futures that are done (finished, failed or cancelled), once
        ``batch`` of them are or ``timeout`` has passed. Their states are polled, at
        growing intervals: reading a status costs nothing, where ``as_completed`` costs a
        coroutine in the client's loop and a wake-up of this thread per attempt."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _POLL_FIRST_S
        while True:
            done = [future for future in self._futures if future.status in _DONE]
            left = None if deadline is None else deadline - time.monotonic()
            if len(done) >= batch or (left is not None and left <= 0):
                return done
            time.sleep(pause if left is None else min(pause, left))
            pause = min(2 * pause, _POLL_MOST_S)

    def _died_in_our_restart(self, completion: Completion) -> bool:
        worker = getattr(getattr(completion.lost, "last_worker", None), "address", None)
        return worker is not None and worker in self._restarted

    def _note_start(self, event: tuple[float, dict[str, Any]]) -> None:
        """In the client's loop: an attempt says it started (on which worker); noted with
        this machine's clock, when heard, so no two machines' clocks are compared."""
        _when, message = event
        with self._starts_lock:
            key = (message["task_id"], message["attempt"])
            self._started[key] = (message["worker"], time.monotonic() - message["elapsed"])

    def _until_next_deadline(self, timeout: float | None) -> float | None:
        with self._starts_lock:
            starts = [when for _worker, when in self._started.values()]
        if not starts:
            return timeout
        left = max(0.0, min(starts) + self.task_timeout - time.monotonic())
        return left if timeout is None else min(timeout, left)

    def _stop_overdue(self) -> list[Completion]:
        """Cancel the attempts past the timeout and restart the workers running them."""
        here = time.monotonic()
        in_flight = {
            (task.id, attempt): future for future, (task, attempt) in self._futures.items()
        }
        with self._starts_lock:
            for key in [key for key in self._started if key not in in_flight]:
                del self._started[key]  # finished (or heard of after it finished)
            overdue = [
                (key, worker)
                for key, (worker, when) in self._started.items()
                if here - when >= self.task_timeout
            ]
            for key, _worker in overdue:
                del self._started[key]
        if not overdue:
            return []
        futures = [in_flight[key] for key, _worker in overdue]
        try:  # released first, so that the restart cannot hand the attempt to another worker
            self._client.cancel(futures, force=True)
        except Exception as exc:
            log.warning("dask: cancelling timed-out attempts failed: %s", exc)
        for future in futures:
            del self._futures[future]
        workers = sorted({worker for _key, worker in overdue})
        self._restarted.update(workers)
        if self._restarts is None:
            self._restarts = ThreadPoolExecutor(1, thread_name_prefix="tilefleet-dask-restart")
        self._restarts.submit(self._restart, workers)
        lost = TaskTimeoutError(f"timed out after {self.task_timeout:g} s")
        return [Completion(task_id, attempt, lost=lost) for (task_id, attempt), _ in overdue]

    def _restart(self, workers: list[str]) -> None:
        """Restart the workers holding timed-out attempts (in a thread of its own: it takes
        seconds, and the driver goes on recording outcomes meanwhile)."""
        try:
            states = self._client.restart_workers(
                workers, timeout=RESTART_TIMEOUT_S, raise_for_error=False
            )
        except Exception as exc:
            states = {worker: str(exc) for worker in workers}
        for worker, state in states.items():
            if state != "OK":
                log.warning(
                    "dask: could not restart worker %s to stop a timed-out attempt (%s): "
                    "its thread stays blocked",
                    worker,
                    state,
                )

    def _results(self, done: list) -> list[tuple[Any, Any]]:
        """``(future, outcome or exception)`` of finished futures: the outcomes of those
        that succeeded in one gather, as a bare ``client.gather`` would fetch them."""
        finished = [future for future in done if future.status == "finished"]
        try:
            gathered = self._client.gather(finished) if finished else []
            outcomes = dict(zip(finished, gathered, strict=True))
        except Exception:  # a result lost with its worker meanwhile: one by one, to tell
            outcomes = {future: _result_or_error(future) for future in finished}
        return [
            (future, outcomes[future] if future in outcomes else _failure(future))
            for future in done
        ]

    def _completion(self, future, result: Any) -> Completion:
        task, attempt = self._futures.pop(future)
        task_id = task.id
        if isinstance(result, Outcome):
            return Completion(task_id, attempt, outcome=result)
        if isinstance(result, BaseException):  # KilledWorker, CommError, a lost result…
            return Completion(task_id, attempt, lost=result)
        lost = WorkerLostError(f"the attempt was {future.status} by the cluster ({result!r})")
        return Completion(task_id, attempt, lost=lost)

    def shutdown(self, cancel: bool = False) -> None:
        if self._client is not None:
            if cancel and self._futures:
                try:
                    self._client.cancel(list(self._futures), force=True)
                except Exception as exc:
                    log.debug("dask: cancelling attempts failed: %s", exc)
            self._futures.clear()
            if self._restarts is not None:  # a restart under way ends before the client
                self._restarts.shutdown(wait=True)
                self._restarts = None
            if self._start_topic is not None:
                try:
                    self._client.unsubscribe_topic(self._start_topic)
                except Exception as exc:
                    log.debug("dask: unsubscribing from the start events failed: %s", exc)
                self._start_topic = None
            self._started.clear()
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        self._joined = None
        if self._scratch is not None:  # the workers' spill folder of a cluster started here
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def _result_or_error(future) -> Any:
    """A finished future's result, fetched on its own, or the exception fetching it raised."""
    try:
        return future.result(timeout=_RESULT_TIMEOUT_S)
    except (Exception, CancelledError) as exc:
        return exc


def _failure(future) -> BaseException | None:
    """What a future that did not finish stands for: its exception if it failed
    (``KilledWorker``, ``CommError``…), None if the cluster cancelled it."""
    if future.status != "error":
        return None
    try:
        return future.exception(timeout=_RESULT_TIMEOUT_S)
    except (Exception, CancelledError) as exc:
        return exc


#: Longest the driver waits to fetch the result of one finished attempt on its own.
_RESULT_TIMEOUT_S = 60
#: Future states of a done attempt, and the first and longest pause between two looks.
_DONE = frozenset({"finished", "error", "cancelled"})
_POLL_FIRST_S, _POLL_MOST_S = 0.001, 0.1


def _release(futures: list) -> None:
    """In the client's loop: let the cluster forget the results of ``futures``."""
    for future in futures:
        future.release()


def _run_attempt(
    task: Task,
    attempt: int,
    max_memory_mb: int | None,
    start_topic: str | None,
    timeout: float | None = None,
) -> Outcome:
    """In a Dask worker: run the attempt; one still running after a while says (as a
    worker event) on which worker it runs and since when."""
    if start_topic is None or timeout is None:
        return execute(task, attempt, max_memory_mb)
    from distributed import get_worker

    worker = get_worker()

    def report(elapsed: float) -> None:
        message = {"task_id": task.id, "attempt": attempt, "worker": worker.address}
        worker.log_event(start_topic, {**message, "elapsed": elapsed})

    with start_reported_if_long(timeout, report):
        return execute(task, attempt, max_memory_mb)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ValueError(
            "executor 'dask' needs Dask distributed: pip install 'tilefleet[dask]'"
        ) from None
    return distributed


def _gateway_class():
    try:
        from dask_gateway import Gateway
    except ImportError:
        raise ValueError(
            "executor 'dask' with a gateway needs dask-gateway: pip install 'tilefleet[dask]'"
        ) from None
    return Gateway


def _gateway(address: str):
    return _gateway_class()(address)


def _gateway_cluster(address: str, options: dict[str, Any], workers: int):
    """A new Dask Gateway cluster with ``options``; scaled adaptively when asked to."""
    gateway = _gateway(address)
    cluster_options = gateway.cluster_options()
    for key, value in options.items():
        if key in ADAPTIVE_KEYS:
            continue
        if key == "environment" and isinstance(value, list | tuple):
            # Names only in the job file; values read here and sent over the gateway API.
            value = {name: os.environ[name] for name in value if name in os.environ}
        cluster_options[key] = value
    cluster = gateway.new_cluster(cluster_options)
    if any(key in options for key in ADAPTIVE_KEYS):
        cluster.adapt(
            minimum=options.get("adaptive_minimum", 0),
            maximum=options.get("adaptive_maximum", workers),
        )
    else:
        cluster.scale(workers)
    return cluster


def _without_environment_values(options: dict[str, Any]) -> dict[str, Any]:
    """Cluster options for the record: environment variables by name only."""
    recorded = {k: v for k, v in options.items() if not is_secret_name(k)}
    environment = recorded.get("environment")
    if isinstance(environment, dict):
        recorded["environment"] = sorted(environment)
    return recorded


def _import_modules(modules: Sequence[str]) -> None:
    import importlib

    for module in modules:
        importlib.import_module(module)
