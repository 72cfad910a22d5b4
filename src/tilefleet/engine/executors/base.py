"""The two interfaces an execution engine can implement, and what they share.

- :class:`AttemptExecutor` moves attempts: ``submit_many`` hands it attempts of tasks,
  ``wait`` returns the attempts that have finished, ``shutdown`` releases the engine. The
  engine drives it: retries, backoff, skipping, the ledger and the reports live there, so
  every such executor gets them the same way. The engine submits in batches (whenever a
  good share of ``max_in_flight`` is free), so engines with a bulk call (one scheduler
  message, one FaaS job) pay their round trip once per batch. The function it runs is
  :func:`tilefleet.engine.worker.execute`, which returns failures as data: an exception
  reaching the executor means the worker was lost.
- :class:`PlanExecutor` takes the whole plan at once and runs it without a driver waiting
  (an HTCondor DAG: DAGMan is the driver); ``launch`` returns what it did.

Each executor declares its settings once, as a pydantic :class:`ExecutorSettings` model
(fields, defaults, checks, help): job files, ``tilefleet schema`` and the command-line
options are made from it. An executor is one module plus one entry point in the
``tilefleet.executors`` group (see :mod:`tilefleet.plugins`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tilefleet.task import Outcome, Task

log = logging.getLogger("tilefleet")


@dataclass(frozen=True)
class Completion:
    """A finished attempt: the worker's outcome, or the infrastructure error that lost it."""

    task_id: str
    attempt: int
    outcome: Outcome | None = None
    lost: BaseException | None = None
    #: Lost with the attempts it was sent with (a batch whose worker another one of them
    #: took down, or stopped past the timeout): its try does not count, its retry goes alone.
    collateral: bool = False


@dataclass(frozen=True)
class Billing:
    """How an executor is billed: memory per task and price per GB-second of it."""

    memory_gb: float
    usd_per_gb_s: float

    def cost(self, task_seconds: float) -> float:
        return task_seconds * self.memory_gb * self.usd_per_gb_s


class ExecutorSettings(BaseModel):
    """Base of each executor's settings (beyond ``workers``): the job-file keys and
    command-line options it takes. A setting of another executor is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Settings holding local paths that a job file may give relative to itself.
    path_fields: ClassVar[tuple[str, ...]] = ()


class Executor(ABC):
    """What every executor has: a name, its settings, its workers, how it is billed."""

    name: ClassVar[str]
    Settings: ClassVar[type[ExecutorSettings]] = ExecutorSettings
    #: Attempts kept submitted per worker when the job sets no ``max_in_flight``: enough
    #: queued work to hide the engine's round trip, few enough not to flood a scheduler.
    in_flight_per_worker: ClassVar[int] = 2
    #: How the default of ``max_in_flight`` is shown where it is not ``in_flight_per_worker``.
    in_flight_help: ClassVar[str | None] = None

    def __init__(self, workers: int | None = None, **settings: Any):
        try:
            self.config = self.Settings.model_validate(settings)
        except ValidationError as exc:
            raise ValueError(f"executor {self.name!r}: {settings_problems(exc)}") from None
        self.workers = workers or self.default_workers()
        #: The settings that were given, as given (the run record shows them).
        self.settings = self.config.model_dump(exclude_unset=True)

    @staticmethod
    def default_workers() -> int:
        return os.cpu_count() or 1

    @property
    def billing(self) -> Billing | None:
        """None for executors that cost nothing per task (local processes, own clusters)."""
        return None

    @property
    def default_max_in_flight(self) -> int:
        return self.in_flight_per_worker * self.workers

    def describe(self) -> dict[str, Any]:
        """Settings for the run record; never includes secrets."""
        return {"name": self.name, "workers": self.workers, **self.settings}


class AttemptExecutor(Executor):
    """An executor the engine drives attempt by attempt: ``start``, then
    ``submit_many``/``wait``, then ``shutdown``."""

    #: Seconds an attempt may run, set by the engine before ``start`` (None: no limit). An
    #: executor that can stop an attempt stops it and reports it lost with a
    #: :class:`~tilefleet.errors.TaskTimeoutError`; docs/executors.md says what each does.
    task_timeout: float | None = None
    #: The job's ``max_task_memory`` (MB), set by the engine before ``start``: passed to
    #: every attempt, which checks its recipe's estimate against it before it runs.
    max_task_memory: int | None = None
    #: Whether ``start`` is cheap and idempotent enough to call before planning, so that
    #: workers import their modules while the driver plans (local processes: yes; a
    #: cluster or a cloud pool is not started for a run that may be declined).
    starts_while_planning: bool = False

    def start(self, preload: Sequence[str] = ()) -> None:  # noqa: B027 - optional hook
        """Bring the engine up, before the first submit. ``preload`` names modules the
        tasks will import, so engines that keep workers warm can import them once."""

    @abstractmethod
    def submit(self, task: Task, attempt: int) -> None:
        """Start one attempt of ``task``; must not block for long."""

    def submit_many(self, attempts: Sequence[tuple[Task, int]]) -> None:
        """Start several attempts, as ``(task, attempt number)`` pairs; what the engine
        calls. Engines with a bulk call override it; by default, one ``submit`` each."""
        for task, attempt in attempts:
            self.submit(task, attempt)

    @abstractmethod
    def wait(self, timeout: float | None) -> list[Completion]:
        """Block up to ``timeout`` seconds for at least one finished attempt; return all
        that have finished (possibly none on timeout)."""

    @abstractmethod
    def shutdown(self, cancel: bool = False) -> None:
        """Release the engine; with ``cancel``, drop attempts that have not finished."""


@dataclass(frozen=True)
class Launch:
    """What a :class:`PlanExecutor` did with a plan: whether it was handed to the engine,
    one line saying what happened (and how to follow or submit it), and the files made."""

    submitted: bool
    message: str
    files: Any = None
    handle: str | None = None


class PlanExecutor(Executor):
    """An executor that takes the whole plan and runs it on its own; its nodes report
    outcomes that ``tilefleet task finish`` merges into the ledger."""

    def check_plan(self, tasks: Sequence[Task]) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~tilefleet.errors.JobError` for a plan this engine cannot run
        (called before anything is written, so a refused plan leaves no run behind)."""

    @abstractmethod
    def launch(
        self, tasks: Sequence[Task], run_dir: Path, *, retries: int, submit: bool = True
    ) -> Launch:
        """Prepare the plan of ``tasks`` in ``run_dir`` and hand it to the engine (unless
        ``submit`` is off); retries, where the engine does them, are ``retries``."""


def settings_problems(exc: ValidationError) -> str:
    """One line naming each problem of some settings: those not taken, then bad values."""
    foreign, problems = [], []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            foreign.append(where)
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
    if foreign:
        problems.insert(0, f"does not take: {', '.join(sorted(foreign))}")
    return "; ".join(problems)


#: An attempt says it started only once it has run this long (at most): most attempts
#: end sooner and cost no message, and a long one is known well before its deadline.
START_REPORT_AFTER_S = 5.0


@contextmanager
def start_reported_if_long(timeout_s: float, report: Callable[[float], object]) -> Iterator[None]:
    """In a worker: run the body; if it is still running after
    ``min(timeout_s / 2, START_REPORT_AFTER_S)``, call ``report(seconds since it started)``
    once, from a thread of this process that watches every attempt. An executor that
    stops overdue attempts learns when the long ones started, without a message per
    attempt, and an attempt costs no thread of its own (starting one takes about a
    millisecond on a busy machine: a third of a short task)."""
    started = time.monotonic()
    due = started + min(timeout_s / 2, START_REPORT_AFTER_S)
    token = _LONG_ATTEMPTS.watch(due, started, report)
    try:
        yield
    finally:
        _LONG_ATTEMPTS.forget(token)


class _LongAttempts:
    """The attempts of this process that report their start once they have run a while:
    one thread calls each report when it falls due, unless its attempt ended before."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._due: list[tuple[float, int]] = []  # (when due, token), a heap
        self._reports: dict[int, tuple[float, Callable[[float], object]]] = {}  # live ones
        self._tokens = itertools.count()
        self._running = False  # the thread, started with the first attempt
        # A forked child has no thread, and maybe a lock held by a thread of its parent.
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._lock = threading.Condition()
        self._due, self._reports, self._running = [], {}, False

    def watch(self, due: float, started: float, report: Callable[[float], object]) -> int:
        with self._lock:
            if not self._running:
                self._running = True
                name = "tilefleet-long-attempts"
                threading.Thread(target=self._run, name=name, daemon=True).start()
            token = next(self._tokens)
            earliest = not self._due or due < self._due[0][0]
            heapq.heappush(self._due, (due, token))
            self._reports[token] = (started, report)
            if earliest:  # all attempts wait alike: the thread is rarely woken for a new one
                self._lock.notify()
            return token

    def forget(self, token: int) -> None:
        with self._lock:
            self._reports.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    while self._due and self._due[0][1] not in self._reports:
                        heapq.heappop(self._due)  # its attempt ended
                    if not self._due:
                        self._lock.wait()
                    elif (left := self._due[0][0] - time.monotonic()) > 0:
                        self._lock.wait(left)
                    else:
                        started, report = self._reports.pop(heapq.heappop(self._due)[1])
                        break
            try:
                report(time.monotonic() - started)
            except Exception as exc:  # the attempt runs on; only its deadline is unknown
                log.warning("could not report the start of a long attempt: %s", exc)


_LONG_ATTEMPTS = _LongAttempts()
