"""The scheduler of one session: attempts out to an executor, outcomes into the ledger.

It keeps at most ``max_in_flight`` attempts submitted, retries what is retryable with
backoff, and does the driver's per-attempt work, which is what bounds how many tasks a
second one driver can keep going.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import replace

from tilefleet.engine.callbacks import AttemptEnd, RunCallback
from tilefleet.engine.executors import AttemptExecutor, Completion
from tilefleet.engine.job import Job
from tilefleet.engine.ledger import Ledger
from tilefleet.engine.secrets import SecretKeeper
from tilefleet.engine.spool import TaskFeed
from tilefleet.errors import RETRYABLE, TaskTimeoutError, one_line
from tilefleet.task import FAILED, PENDING, SUCCEEDED, Outcome, Task, now

log = logging.getLogger("tilefleet")

MAX_BACKOFF_S = 120.0
#: The scheduler refills once 1/REFILL_FRACTION of ``max_in_flight`` is free.
REFILL_FRACTION = 4
#: Longest the records of a run (attempts started, outcomes) stay uncommitted. A driver
#: killed outright (SIGKILL, a power cut) loses at most so much of its record: those tasks
#: run again on resume, or are found done by their markers.
COMMIT_EVERY_S = 0.1


class Scheduler:
    """Keeps at most ``max_in_flight`` attempts submitted, retries retryable failures with
    exponential backoff and jitter, and records outcomes as they arrive.

    Work goes out in batches: once at least a quarter of the slots is free, every attempt
    that fits is handed over in one ``submit_many``. Records go into one open ledger
    transaction, committed at most every :data:`COMMIT_EVERY_S` (and when the scheduler
    ends), not once per wake-up: outcomes that arrive fast cost one commit per tenth of a
    second, not one per few attempts. The driver's work per attempt stays small, and
    engines with a bulk call pay their round trip per batch."""

    def __init__(
        self,
        tasks: Iterable[Task] | TaskFeed,
        executor: AttemptExecutor,
        ledger: Ledger,
        session: int,
        job: Job,
        durations: list[tuple[str, float]],
        lost: dict[str, Task],
        follow: RunCallback,
        secrets: SecretKeeper | None = None,
    ):
        self.executor, self.ledger, self.session, self.job = executor, ledger, session, job
        self.durations, self.lost, self.follow = durations, lost, follow
        self.secrets = secrets
        self.fixed_in_flight = job.max_in_flight
        # A feed takes the run's tasks from the plan spool page by page (driver memory
        # flat in the plan's size); any other iterable is queued whole.
        self.ready: deque[Task] | TaskFeed = tasks if isinstance(tasks, TaskFeed) else deque(tasks)
        self.delayed: list[tuple[float, int, Task]] = []  # (due, tie-breaker, task)
        self.tie = itertools.count()
        self.in_flight: dict[str, tuple[Task, float]] = {}
        self.tries: dict[str, int] = {}
        self.opened: float | None = None  # when the open ledger transaction began
        self.unwritten: list[tuple[Outcome, str]] = []  # outcomes recorded, not yet written

    def run(self) -> None:
        completions: list[Completion] = []
        try:
            while self.ready or self.delayed or self.in_flight or completions:
                clock = time.monotonic()
                while self.delayed and self.delayed[0][0] <= clock:
                    self.ready.append(heapq.heappop(self.delayed)[2])
                self._record_and_submit(completions)
                completions = []
                if self.opened is not None and clock - self.opened >= COMMIT_EVERY_S:
                    self._commit()
                if self.in_flight:
                    due = self.delayed[0][0] - clock if self.delayed else 1.0
                    if self.opened is not None:  # back in time to commit
                        due = min(due, self.opened + COMMIT_EVERY_S - clock)
                    completions = self.executor.wait(max(0.01, min(1.0, due)))
                elif self.delayed:
                    self._commit()
                    time.sleep(max(0.0, self.delayed[0][0] - time.monotonic()))
        finally:  # also when interrupted: what was recorded holds
            self._commit()

    def _commit(self) -> None:
        if self.opened is None:
            return
        self.opened = None
        try:
            self._write_outcomes()
            self.ledger.commit()
        except BaseException:  # the run cannot go on (a full disk): nothing is left open
            self.ledger.rollback()
            raise

    def _write_outcomes(self) -> None:
        if self.unwritten:
            self.ledger.finish_attempts(self.unwritten)
            self.unwritten = []

    def _record_and_submit(self, completions: list[Completion]) -> None:
        """Record ``completions`` and start the next batch, if one is due, in the open
        ledger transaction; the batch is handed to the executor once it is recorded."""
        if not completions and not self._batch_due():
            return
        if self.opened is None:
            self.ledger.begin()
            self.opened = time.monotonic()
        self._record(completions)
        if not self._batch_due():
            return
        free = self.max_in_flight - len(self.in_flight)
        batch = [self.ready.popleft() for _ in range(min(free, len(self.ready)))]
        submitted = now()
        written = self.unwritten
        try:
            with self.ledger.step():  # cut short, none of it holds: the batch is not sent
                self._write_outcomes()  # first: a retry's start follows the outcome before it
                attempts = self.ledger.start_attempts(
                    [t.id for t in batch], self.session, submitted
                )
        except BaseException:
            self.unwritten = written  # undone with the step, if written: at the commit again
            raise
        if self.secrets is not None:  # in memory with each attempt, never in the ledger
            shared = self.secrets.current()
            batch = [replace(task, secrets=shared) for task in batch]
        for task in batch:
            self.tries[task.id] = self.tries.get(task.id, 0) + 1
            self.in_flight[task.id] = (task, submitted)
        self.executor.submit_many(list(zip(batch, attempts, strict=True)))

    @property
    def max_in_flight(self) -> int:
        """The job's ``max_in_flight``, else the executor's, which may follow the tasks
        (the local executor holds more of them as they turn out short)."""
        return self.fixed_in_flight or self.executor.default_max_in_flight

    def _batch_due(self) -> bool:
        if not self.ready:
            return False
        most = self.max_in_flight
        free = most - len(self.in_flight)
        return free >= min(max(1, most // REFILL_FRACTION), len(self.ready))

    def _record(self, completions: list[Completion]) -> None:
        finished: list[tuple[Outcome, str]] = []
        for completion in completions:
            task, submitted = self.in_flight.pop(completion.task_id)
            if completion.lost is not None:
                self.lost[task.id] = task
                if completion.collateral:  # not this task's doing: the try is given back
                    self.tries[task.id] -= 1
            outcome = _outcome_of(completion, submitted)
            finished.append((outcome, self._status_after(task, outcome)))
        if finished:
            self.unwritten += finished  # written with the next batch or commit, whichever first
            for outcome, status in finished:
                self.follow.on_attempt_end(AttemptEnd(outcome, status))

    def _status_after(self, task: Task, outcome: Outcome) -> str:
        """The task's status after ``outcome``; schedules its retry when there is one."""
        tries = self.tries[task.id]
        if outcome.ok:
            del self.tries[task.id]  # settled: a run of millions keeps only the unsettled
            self.durations.append((task.id, outcome.duration))
            return SUCCEEDED
        if outcome.error_kind == RETRYABLE and tries <= self.job.retries:
            delay = _backoff(self.job.backoff_s, tries)
            heapq.heappush(self.delayed, (time.monotonic() + delay, next(self.tie), task))
            log.info("retrying %s in %.1f s (attempt %d of %d): %s", task.id, delay,
                     tries + 1, self.job.retries + 1, outcome.error)  # fmt: skip
            return PENDING
        del self.tries[task.id]
        log.warning("FAILED %s: %s", task.id, outcome.error)
        return FAILED


def _outcome_of(completion: Completion, submitted: float) -> Outcome:
    if completion.outcome is not None:
        return completion.outcome
    error = one_line(completion.lost)  # a timed-out attempt says so; others lost a worker
    return Outcome(
        completion.task_id,
        completion.attempt,
        False,
        "lost",
        submitted,
        now(),
        error=error if isinstance(completion.lost, TaskTimeoutError) else f"worker lost: {error}",
        error_kind=RETRYABLE,
    )


def _backoff(base: float, attempt: int) -> float:
    """Exponential backoff with equal jitter: half fixed, half random."""
    ceiling = min(MAX_BACKOFF_S, base * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
