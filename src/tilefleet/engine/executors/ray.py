"""``ray``: Ray tasks, on a local Ray started here or a running cluster (``address``).

- default: ``ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)``.
  Its workers are started by this process and inherit its environment.
- ``address: ray://head:10001`` (or ``auto``): a running cluster. Its workers get the
  non-secret settings of this process (GDAL options, regions, endpoints) through the
  runtime environment's ``env_vars``; credentials come from the cluster itself.
- If Ray is already initialised in this process (a notebook, a test session), it is used
  as it is and left running: tilefleet only shuts down a Ray it started.

Each Ray task reserves ``cpus_per_task`` CPUs (default 1) and ``mem`` MB of memory, with
``max_retries=0``: retries are the engine's. Its one argument is its attempts (the run's
limits are in the function, sent once). It runs one attempt, or, once attempts prove
short (the median of the latest durations under a quarter of ``BATCH_S``), a batch of
first attempts worth about ``BATCH_S`` of work: Ray's own cost per task (a millisecond or
more of driver, raylet and worker time) is then paid once per batch, not per attempt. A
batch is never larger than keeps ``BATCHES_HELD`` batches a worker in flight, nor than
spreads one submission over every worker, so that no worker idles and a run does not end
on one long batch. Each attempt of a batch runs on its own (its own start, finish and
outcome) and the engine sees one completion per attempt. Retries (attempt 2 and later)
always go alone, so a task that kills its worker takes its batch-mates down once at most.

A worker that dies (``WorkerCrashedError``), an actor or node lost (``RayActorError``,
``NodeDiedError``) or an object lost with it loses every attempt of its Ray task, which
the engine retries, each alone.

Task timeouts: Ray knows when a task was submitted, not when a worker started an attempt,
and a task may wait in Ray's queue for long. So an attempt still running after half the
timeout (at most 5 s) tells a small named actor of the run (no CPU reserved) how long it
has run, a call it does not wait for (short attempts send nothing); in a batch, that call
carries the outcomes of the batch-mates that ended before it, and the long attempt tells
its own outcome when it ends, so the driver knows which attempt of a batch runs. The
executor asks the actor how long ago each of those started (the actor's clock measures
that age, so no two machines' clocks are compared), without waiting for the answer. The
actor is a process of its own, so it is started only once some Ray task has been in
flight for half that while: a run of short attempts never starts it. An attempt running
past the timeout is stopped with ``ray.cancel(force=True)`` on its Ray task, which kills
the worker process running it (the only way to stop a read blocked in C), and fails,
retryable, "timed out after N s". Its batch-mates that ended before it keep the outcomes
the actor was told; those queued behind it are lost and retried alone. The other Ray
tasks go on; Ray starts a new worker for what is queued.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
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
from tilefleet.errors import TaskTimeoutError, WorkerLostError
from tilefleet.task import Outcome, Task

log = logging.getLogger("tilefleet")

#: Seconds of work in one batch of short attempts; attempts are batched once the median
#: of the latest durations is under a quarter of it.
BATCH_S = 0.025
#: The most attempts in one batch.
MOST_PER_BATCH = 100
#: Batches in flight per worker: one running, the others queued in Ray, so that a worker
#: never waits on the driver for its next one.
BATCHES_HELD = 4
#: How many of the latest durations the median is taken of, and how many are seen
#: before any batch.
_DURATIONS_KEPT = 64
_SEEN_BEFORE_BATCHING = 8

#: What a run's executor says as it shuts down (benchmarks read it).
RAY_TASKS_LINE = "ray: %d attempts sent in %d Ray tasks"

#: An attempt: (task id, attempt number).
Key = tuple[str, int]


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
    in_flight_help = "32, more for short tasks"

    def __init__(self, workers: int | None = None, **settings: Any):
        super().__init__(workers, **settings)
        self._ray = _import_ray()
        self._started_here = False
        self._remote = None
        self._resources: dict[str, Any] = {}
        self._refs: dict[Any, tuple[Key, ...]] = {}  # Ray task -> its attempts, in run order
        self._in_flight = 0  # attempts in those Ray tasks
        self._durations: deque[float] = deque(maxlen=_DURATIONS_KEPT)  # the latest attempts'
        self._per_batch = 1  # attempts a batch holds, by those durations alone
        self._board = None  # the actor the attempts tell that they start (with a timeout)
        self._board_name = ""  # its name, set (and given to the attempts) with a timeout
        self._started: dict[Key, float] = {}  # attempt -> start, monotonic here
        self._early: dict[Key, Outcome] = {}  # ended in a batch still running, told by the board
        self._first_submitted: dict[Any, float] = {}  # ref -> when submitted, while in flight
        self._asked = 0.0  # when the board was last asked
        self._asking = None  # the ref of the board's answer, while it is awaited
        self._asking_since = 0.0
        self._cancelled: dict[Any, Key] = {}  # refs stopped -> the attempt past the timeout
        #: Ray tasks made, and the attempts they held (with batches, more than the tasks).
        self.ray_tasks = 0
        self.attempts_sent = 0

    @property
    def default_max_in_flight(self) -> int:
        """32 attempts a worker; with batches, ``BATCHES_HELD`` batches a worker."""
        return self.workers * max(self.in_flight_per_worker, BATCHES_HELD * self._per_batch)

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
        self._resources = {
            "num_cpus": self.config.cpus_per_task,
            "max_retries": 0,
            "retry_exceptions": False,
        }
        if self.config.mem:
            self._resources["memory"] = self.config.mem * 1024 * 1024
        if self.task_timeout is not None:
            # Found by name by the attempts that need it: a handle in every task's
            # arguments would cost a serialisation each.
            self._board_name = f"tilefleet-starts-{uuid.uuid4().hex[:12]}"
        self._remote = self._attempts_function()

    def _attempts_function(self):
        """The Ray function of this run's tasks, the run's limits in it (sent to Ray once):
        a task's one argument is its attempts. Measured on 2,000 calls: 0.16-0.29 ms of
        driver CPU each, against 0.27-0.37 ms with the limits as arguments of each call; a
        reference to them put once costs as much CPU and more time (Ray resolves it per
        task)."""
        run = _attempts_runner(self.max_task_memory, self._board_name or None, self.task_timeout)
        return self._ray.remote(run).options(**self._resources)

    def submit(self, task: Task, attempt: int) -> None:
        self.submit_many([(task, attempt)])

    def submit_many(self, attempts: Sequence[tuple[Task, int]]) -> None:
        firsts = [pair for pair in attempts if pair[1] == 1]
        size = self._batch_size(len(firsts))
        batches = [[pair] for pair in attempts if size == 1 or pair[1] > 1]  # retries alone
        if size > 1:
            batches += _split(firsts, size)
        for batch in batches:
            self._send(batch)

    def _batch_size(self, count: int) -> int:
        """Attempts per Ray task for ``count`` first attempts: ``_per_batch``, no more than
        makes ``BATCHES_HELD`` batches a worker of what will be in flight, nor than gives
        every worker some of these."""
        if self._per_batch == 1 or count < 2:
            return 1
        held = (self._in_flight + count) // (self.workers * BATCHES_HELD)
        return max(1, min(self._per_batch, held, -(-count // self.workers)))

    def _send(self, batch: list[tuple[Task, int]]) -> None:
        ref = self._remote.remote(batch)
        self._refs[ref] = tuple((task.id, attempt) for task, attempt in batch)
        self._in_flight += len(batch)
        self.ray_tasks += 1
        self.attempts_sent += len(batch)
        if self._board_name:
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
            # A worker killed just now: collect its attempts in this call, not the next.
            stopped = [ref for ref in self._cancelled if ref not in ready]
            if stopped:
                ended, _ = self._ray.wait(stopped, num_returns=len(stopped), timeout=_CANCEL_WAIT_S)
                ready += ended
        try:  # one round trip for all of them, the usual case
            batches = self._ray.get(ready)
        except Exception:  # a lost Ray task among them: fetch one by one to tell which
            done = [completion for ref in ready for completion in self._completions(ref)]
        else:
            done = [
                completion
                for ref, outcomes in zip(ready, batches, strict=True)
                for completion in self._finished(ref, outcomes)
            ]
        if done:
            self._learn_batch_size()
        return done

    def _learn_batch_size(self) -> None:
        """``_per_batch`` from the median of the latest durations: 1 while attempts are
        not short, else as many as make about ``BATCH_S`` of work."""
        if len(self._durations) < _SEEN_BEFORE_BATCHING:
            return
        typical = statistics.median(self._durations)
        if typical >= BATCH_S / 4:
            self._per_batch = 1
        else:
            self._per_batch = min(MOST_PER_BATCH, int(BATCH_S / max(typical, 1e-6)))

    def _finished(self, ref, outcomes: list[Outcome]) -> list[Completion]:
        self._cancelled.pop(ref, None)  # finished before the cancel took: its outcomes stand
        for key in self._drop(ref):
            self._early.pop(key, None)
        completions = []
        for outcome in outcomes:
            self._durations.append(outcome.duration)
            completions.append(Completion(outcome.task_id, outcome.attempt, outcome=outcome))
        return completions

    def _completions(self, ref) -> list[Completion]:
        try:
            outcomes = self._ray.get(ref)
        except Exception as exc:  # WorkerCrashedError, RayActorError, NodeDiedError, …
            return self._lost(ref, exc)
        return self._finished(ref, outcomes)

    def _lost(self, ref, exc: BaseException) -> list[Completion]:
        """The attempts of a Ray task that died: those the board said ended keep their
        outcome, the one stopped past the timeout timed out, the others are lost. In a
        batch, those are collateral (their tries do not count): the one that took the
        worker down is not known, and its retry, alone, will tell."""
        overdue = self._cancelled.pop(ref, None)
        keys = self._drop(ref)
        completions = []
        for key in keys:
            lost: BaseException = exc
            if (outcome := self._early.pop(key, None)) is not None:
                completions.append(Completion(*key, outcome=outcome))
                continue
            if key == overdue:
                lost = TaskTimeoutError(f"timed out after {self.task_timeout:g} s")
            elif overdue is not None:
                lost = WorkerLostError(f"stopped with its batch, as {overdue[0]} timed out")
            collateral = len(keys) > 1 and key != overdue
            completions.append(Completion(*key, lost=lost, collateral=collateral))
        return completions

    def _drop(self, ref) -> tuple[Key, ...]:
        """Forget a Ray task that has ended; its attempts."""
        keys = self._refs.pop(ref)
        self._in_flight -= len(keys)
        self._first_submitted.pop(ref, None)
        if self._started:
            for key in keys:
                self._started.pop(key, None)
        return keys

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
            self._asking = self._board.news.remote()
            self._asking_since = here
        return _shorter(timeout, _ANSWER_POLL_S) if self._asking is not None else timeout

    def _report_after(self) -> float:
        return min(self.task_timeout / 2, START_REPORT_AFTER_S)

    def _board_due(self) -> bool:
        """Whether to ask the board now: an attempt cannot be overdue before its task has
        been in flight for the timeout, so a run of short attempts asks only every
        ``_BOARD_EVERY_S`` (which keeps the board small), not at every wait."""
        here = time.monotonic()
        oldest = min(self._first_submitted.values(), default=here)
        return here - oldest >= self.task_timeout or here - self._asked >= _BOARD_EVERY_S

    def _take_answer(self) -> None:
        """Learn from the board's answer, once it has come, which attempts started since
        it was last asked, and when, and which attempts of batches ended."""
        ready, _ = self._ray.wait([self._asking], timeout=0)
        waited = time.monotonic() - self._asking_since
        if not ready and waited < _BOARD_TIMEOUT_S:
            return
        try:
            if not ready:
                raise TimeoutError(f"the start board did not answer in {waited:.0f} s")
            starts, ended = self._ray.get(ready[0])
        except Exception as exc:  # the attempts run on, without a deadline from now on
            log.warning("ray: task timeouts are off for the rest of this run: %s", exc)
            self._board_name, self._board, self._asking = "", None, None
            self._remote = self._attempts_function()  # later attempts tell no board
            return
        self._asking = None
        here = self._asked = time.monotonic()
        in_flight = {key for keys in self._refs.values() for key in keys}
        for outcome in ended:
            key = (outcome.task_id, outcome.attempt)
            if key in in_flight:  # not one whose batch finished meanwhile
                self._early[key] = outcome
                self._started.pop(key, None)
        for task_id, attempt, age in starts:
            key = (task_id, attempt)
            if key in in_flight and key not in self._early:
                self._started[key] = here - age

    def _until_next_deadline(self, timeout: float | None) -> float | None:
        if not self._started:
            return timeout
        running = [
            started
            for ref, keys in self._refs.items()
            if ref not in self._cancelled
            for key in keys
            if (started := self._started.get(key)) is not None
        ]
        if not running:
            return timeout
        left = max(0.0, min(running) + self.task_timeout - time.monotonic())
        return left if timeout is None else min(timeout, left)

    def _stop_overdue(self, ready: set) -> bool:
        """Cancel (killing their workers) the Ray tasks of attempts past the timeout;
        whether any was."""
        if not self._started:
            return False
        here = time.monotonic()
        stopped = False
        for ref, keys in self._refs.items():
            if ref in ready or ref in self._cancelled:
                continue
            overdue = next((key for key in keys if self._overdue(key, here)), None)
            if overdue is None:
                continue
            try:
                self._ray.cancel(ref, force=True)
            except Exception as exc:  # finished meanwhile: its outcomes come as usual
                log.debug("ray: cancelling %s failed: %s", overdue, exc)
                continue
            self._cancelled[ref] = overdue
            stopped = True
        return stopped

    def _overdue(self, key: Key, here: float) -> bool:
        started = self._started.get(key)
        return started is not None and here - started >= self.task_timeout

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            for ref in list(self._refs):
                try:
                    self._ray.cancel(ref, force=True)
                except Exception as exc:
                    log.debug("ray: cancelling an attempt failed: %s", exc)
        log.debug(RAY_TASKS_LINE, self.attempts_sent, self.ray_tasks)
        self._refs.clear()
        self._in_flight = 0
        self._first_submitted.clear()
        self._started.clear()
        self._early.clear()
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
    """A Ray actor of one run: long attempts say when they start (and, in a batch, how
    they ended); the executor reads how long ago (on the actor's clock, so the ages hold
    whatever the machines' clocks say)."""

    def __init__(self):
        self._starts: dict[Key, float] = {}
        self._ended: list[Outcome] = []

    def started(
        self, task_id: str, attempt: int, elapsed: float = 0.0, ended: Sequence[Outcome] = ()
    ) -> None:
        """An attempt that started ``elapsed`` seconds ago (by its worker's clock);
        ``ended``: the outcomes of its batch-mates that ran before it, not told yet."""
        self._starts[(task_id, attempt)] = time.monotonic() - elapsed
        self._ended += ended

    def ended(self, outcome: Outcome) -> None:
        """The outcome of a long attempt of a batch, which runs on."""
        self._starts.pop((outcome.task_id, outcome.attempt), None)  # no need to read it now
        self._ended.append(outcome)

    def news(self) -> tuple[list[tuple[str, int, float]], list[Outcome]]:
        """Seconds since each start reported since the last call, and the outcomes told
        since then (both then forgotten here)."""
        here = time.monotonic()
        ages = [(task_id, attempt, here - t) for (task_id, attempt), t in self._starts.items()]
        ended, self._starts, self._ended = self._ended, {}, []
        return ages, ended


def _attempts_runner(
    max_memory_mb: int | None, board: str | None, timeout: float | None
) -> Callable[[list[tuple[Task, int]]], list[Outcome]]:
    """The function each Ray task of a run runs, the run's limits in it."""

    def run_attempts(attempts: list[tuple[Task, int]]) -> list[Outcome]:
        return _run_attempts(attempts, max_memory_mb, board, timeout)

    return run_attempts


def _run_attempts(
    attempts: list[tuple[Task, int]],
    max_memory_mb: int | None,
    board: str | None,
    timeout: float | None,
) -> list[Outcome]:
    """In a Ray worker: run ``attempts`` one after the other; one still running after a
    while tells the run's board (the actor named ``board``) when it started."""
    if board is None or timeout is None:
        return [execute(task, attempt, max_memory_mb) for task, attempt in attempts]
    reports = _BoardReports(board, batched=len(attempts) > 1)
    return [reports.run(task, attempt, max_memory_mb, timeout) for task, attempt in attempts]


class _BoardReports:
    """In a worker, what the attempts of one Ray task tell the run's board, in calls they
    do not wait for. An attempt still running after a while tells its start; in a batch,
    with the outcomes of the batch-mates that ended before it and were not told yet, and
    it tells its own outcome when it ends: the driver knows which attempt runs, and keeps
    those that ended if it stops the batch."""

    def __init__(self, board: str, batched: bool):
        self._board_name = board
        self._batched = batched
        self._lock = threading.Lock()  # the attempt's end and the watcher thread's report
        self._running: Key | None = None
        self._told = None  # the board, once the running attempt told it its start
        self._untold: list[Outcome] = []  # ended in this batch, not told yet

    def run(self, task: Task, attempt: int, max_memory_mb: int | None, timeout: float) -> Outcome:
        key = (task.id, attempt)
        with self._lock:
            self._running, self._told = key, None
        with start_reported_if_long(timeout, lambda elapsed: self._tell_start(key, elapsed)):
            outcome = execute(task, attempt, max_memory_mb)
        with self._lock:
            self._running = None
            if self._batched and self._told is not None:
                self._told.ended.remote(outcome)
            elif self._batched:
                self._untold.append(outcome)
        return outcome

    def _tell_start(self, key: Key, elapsed: float) -> None:
        since = time.monotonic()
        board = _find_board(self._board_name)
        with self._lock:
            if self._running != key:  # it ended meanwhile: nothing to tell
                return
            elapsed += time.monotonic() - since
            board.started.remote(*key, elapsed, self._untold)
            self._told, self._untold = board, []


def _find_board(name: str):
    """The run's board, waiting a while for the driver to start it."""
    import ray

    since = time.monotonic()
    while True:
        try:
            return ray.get_actor(name)
        except ValueError:  # not started yet: the driver starts it as attempts grow old
            if time.monotonic() - since > _FIND_BOARD_S:
                raise
            time.sleep(0.1)


def _split(attempts: list[tuple[Task, int]], size: int) -> list[list[tuple[Task, int]]]:
    """``attempts`` in runs of at most ``size``, as even as can be (no short last one)."""
    count = -(-len(attempts) // size)
    total = len(attempts)
    return [attempts[i * total // count : (i + 1) * total // count] for i in range(count)]


def _shorter(timeout: float | None, most: float) -> float:
    return most if timeout is None else min(timeout, most)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("executor 'ray' needs Ray: pip install 'tilefleet[ray]'") from None
    return ray
