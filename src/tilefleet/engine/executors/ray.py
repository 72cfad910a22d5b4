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

Task timeouts: Ray knows when an attempt was submitted, not when a worker started it, and
an attempt may wait in Ray's queue for long. So an attempt still running after half the
timeout (at most 5 s) tells a small named actor of the run (no CPU reserved) how long it
has run, a call it does not wait for (short attempts send nothing); the executor asks the
actor how long ago each of those started (the actor's clock measures that age, so no two
machines' clocks are compared), without waiting for the answer. The actor is a process
of its own, so it is started only once some attempt has been in flight for half that
while: a run of short attempts never starts it. An attempt running past the timeout is
stopped with ``ray.cancel(force=True)``, which kills the worker process running it (the
only way to stop a read blocked in C), and fails, retryable, "timed out after N s". The
other attempts go on; Ray starts a new worker for what is queued.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from tilefleet.engine.executors.base import (
    START_REPORT_AFTER_S,
    AttemptExecutor,
    Completion,
    ExecutorSettings,
    start_reported_if_long,
)
from tilefleet.engine.executors.worker_env import forwarded_environment
from tilefleet.engine.worker import execute
from tilefleet.errors import TaskTimeoutError
from tilefleet.task import Outcome, Task

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
        self._board = None  # the actor the attempts tell that they start (with a timeout)
        self._board_name = ""  # its name, set (and given to the attempts) with a timeout
        self._started: dict[tuple[str, int], float] = {}  # attempt -> start, monotonic here
        self._first_submitted: dict[Any, float] = {}  # ref -> when submitted, while in flight
        self._asked = 0.0  # when the board was last asked
        self._asking = None  # the ref of the board's answer, while it is awaited
        self._asking_since = 0.0
        self._cancelled: set[Any] = set()  # refs of attempts stopped past the timeout

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
        self._remote = ray.remote(_run_attempt).options(**resources)
        if self.task_timeout is not None:
            # Found by name by the attempts that need it: a handle in every attempt's
            # arguments would cost a serialisation each.
            self._board_name = f"tilefleet-starts-{uuid.uuid4().hex[:12]}"

    def submit(self, task: Task, attempt: int) -> None:
        board = self._board_name or None
        ref = self._remote.remote(task, attempt, self.max_task_memory, board, self.task_timeout)
        self._refs[ref] = (task.id, attempt)
        if board is not None:
            self._first_submitted[ref] = time.monotonic()

    def wait(self, timeout: float | None) -> list[Completion]:
        if not self._refs:
            return []
        if self._board_name:
            timeout = self._keep_board(timeout)
        if self._board is not None:
            timeout = self._until_next_deadline(timeout)
        refs = list(self._refs)
        # Wait for a quarter of what is in flight (the engine refills about then), or
        # whatever has finished by the timeout: few wait calls, each returning many.
        ready, _ = self._ray.wait(refs, num_returns=max(1, len(refs) // 4), timeout=timeout)
        if self._board is not None and self._stop_overdue(set(ready)):
            # A worker killed just now: collect its attempt in this call, not the next.
            ready += self._ray.wait(
                [ref for ref in self._cancelled if ref not in ready],
                num_returns=len(self._cancelled - set(ready)),
                timeout=_CANCEL_WAIT_S,
            )[0]
        try:  # one round trip for the whole batch, the usual case
            outcomes = self._ray.get(ready)
        except Exception:  # a lost attempt among them: fetch one by one to tell which
            return [self._completion(ref) for ref in ready]
        return [self._finished(ref, outcome) for ref, outcome in zip(ready, outcomes, strict=True)]

    def _finished(self, ref, outcome: Outcome) -> Completion:
        self._first_submitted.pop(ref, None)
        key = self._refs.pop(ref)
        self._started.pop(key, None)
        self._cancelled.discard(ref)  # finished before the cancel took: its outcome stands
        return Completion(*key, outcome=outcome)

    def _completion(self, ref) -> Completion:
        try:
            return self._finished(ref, self._ray.get(ref))
        except Exception as exc:  # WorkerCrashedError, RayActorError, NodeDiedError, …
            self._first_submitted.pop(ref, None)
            task_id, attempt = self._refs.pop(ref)
            self._started.pop((task_id, attempt), None)
            lost: BaseException = exc
            if ref in self._cancelled:  # its worker killed past the timeout
                self._cancelled.discard(ref)
                lost = TaskTimeoutError(f"timed out after {self.task_timeout:g} s")
            return Completion(task_id, attempt, lost=lost)

    def _keep_board(self, timeout: float | None) -> float | None:
        """Start the board when an attempt could soon report to it, ask it when due, take
        its answer once there; return ``timeout``, shortened to when to look again."""
        here = time.monotonic()
        oldest = min(self._first_submitted.values(), default=here)
        if self._board is None:
            # An attempt reports no sooner than ``report_after`` from its submission: the
            # board is up by then, with half of that to spare.
            needed = oldest + self._report_after() / 2
            if here < needed:
                return _shorter(timeout, needed - here)
            log.debug("ray: attempts in flight for a while: starting %s", self._board_name)
            board = self._ray.remote(num_cpus=0)(StartBoard).options(name=self._board_name)
            self._board = board.remote()
            self._asked = here
        if self._asking is not None:
            self._take_answer()
        elif self._board_due():
            self._asking = self._board.ages.remote()
            self._asking_since = here
        return _shorter(timeout, _ANSWER_POLL_S) if self._asking is not None else timeout

    def _report_after(self) -> float:
        return min(self.task_timeout / 2, START_REPORT_AFTER_S)

    def _board_due(self) -> bool:
        """Whether to ask the board now: an attempt cannot be overdue before it has been in
        flight for the timeout, so a run of short attempts asks only every
        ``_BOARD_EVERY_S`` (which keeps the board small), not at every wait."""
        here = time.monotonic()
        oldest = min(self._first_submitted.values(), default=here)
        return here - oldest >= self.task_timeout or here - self._asked >= _BOARD_EVERY_S

    def _take_answer(self) -> None:
        """Learn from the board's answer, once it has come, which attempts started since
        it was last asked, and when."""
        ready, _ = self._ray.wait([self._asking], timeout=0)
        waited = time.monotonic() - self._asking_since
        if not ready and waited < _BOARD_TIMEOUT_S:
            return
        try:
            if not ready:
                raise TimeoutError(f"the start board did not answer in {waited:.0f} s")
            ages = self._ray.get(ready[0])
        except Exception as exc:  # the attempts run on, without a deadline from now on
            log.warning("ray: task timeouts are off for the rest of this run: %s", exc)
            self._board_name, self._board, self._asking = "", None, None
            return
        self._asking = None
        here = self._asked = time.monotonic()
        in_flight = set(self._refs.values())
        for task_id, attempt, age in ages:
            if (task_id, attempt) in in_flight:  # not one that finished meanwhile
                self._started[(task_id, attempt)] = here - age

    def _until_next_deadline(self, timeout: float | None) -> float | None:
        running = [
            started
            for ref, key in self._refs.items()
            if ref not in self._cancelled and (started := self._started.get(key)) is not None
        ]
        if not running:
            return timeout
        left = max(0.0, min(running) + self.task_timeout - time.monotonic())
        return left if timeout is None else min(timeout, left)

    def _stop_overdue(self, ready: set) -> bool:
        """Cancel (killing their workers) the attempts past the timeout; whether any was."""
        here = time.monotonic()
        stopped = False
        for ref, key in self._refs.items():
            started = self._started.get(key)
            if ref in ready or ref in self._cancelled or started is None:
                continue
            if here - started >= self.task_timeout:
                try:
                    self._ray.cancel(ref, force=True)
                except Exception as exc:  # finished meanwhile: its outcome comes as usual
                    log.debug("ray: cancelling %s failed: %s", key, exc)
                    continue
                self._cancelled.add(ref)
                stopped = True
        return stopped

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            for ref in list(self._refs):
                try:
                    self._ray.cancel(ref, force=True)
                except Exception as exc:
                    log.debug("ray: cancelling an attempt failed: %s", exc)
        self._refs.clear()
        self._first_submitted.clear()
        self._started.clear()
        self._cancelled.clear()
        self._asking = None
        if self._board is not None:
            try:
                self._ray.kill(self._board)
            except Exception as exc:
                log.debug("ray: stopping the start board failed: %s", exc)
            self._board = None
        if self._started_here:
            self._ray.shutdown()
            self._started_here = False


#: Longest the board may take to answer, and a wait waits for the attempts it just
#: cancelled to end.
_BOARD_TIMEOUT_S = 10.0
_CANCEL_WAIT_S = 10.0
#: How often a wait looks for the board's answer while it is awaited.
_ANSWER_POLL_S = 0.05
#: How long an attempt keeps trying to find the board (started by the driver meanwhile).
_FIND_BOARD_S = 5.0
#: How often the board is asked while no attempt can be overdue yet.
_BOARD_EVERY_S = 10.0


class StartBoard:
    """A Ray actor of one run: attempts say when they start; the executor reads how long
    ago (on the actor's clock, so the ages hold whatever the machines' clocks say)."""

    def __init__(self):
        self._starts: dict[tuple[str, int], float] = {}

    def started(self, task_id: str, attempt: int, elapsed: float = 0.0) -> None:
        """An attempt that started ``elapsed`` seconds ago (by its worker's clock)."""
        self._starts[(task_id, attempt)] = time.monotonic() - elapsed

    def ages(self) -> list[tuple[str, int, float]]:
        """Seconds since each start reported since the last call (then forgotten here)."""
        here = time.monotonic()
        ages = [(task_id, attempt, here - t) for (task_id, attempt), t in self._starts.items()]
        self._starts.clear()
        return ages


def _run_attempt(
    task: Task, attempt: int, max_memory_mb: int | None, board: str | None, timeout: float | None
) -> Outcome:
    """In a Ray worker: run the attempt; one still running after a while tells the run's
    board (the actor named ``board``) when it started, a call it does not wait for."""
    if board is None or timeout is None:
        return execute(task, attempt, max_memory_mb)

    def report(elapsed: float) -> None:
        import ray

        since = time.monotonic()
        while True:
            try:
                found = ray.get_actor(board)
                break
            except ValueError:  # not started yet: the driver starts it as attempts grow old
                if time.monotonic() - since > _FIND_BOARD_S:
                    raise
                time.sleep(0.1)
        found.started.remote(task.id, attempt, elapsed + time.monotonic() - since)

    with start_reported_if_long(timeout, report):
        return execute(task, attempt, max_memory_mb)


def _shorter(timeout: float | None, most: float) -> float:
    return most if timeout is None else min(timeout, most)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("executor 'ray' needs Ray: pip install 'tilefleet[ray]'") from None
    return ray
