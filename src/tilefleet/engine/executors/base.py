"""The small interface every execution engine implements.

An executor only moves work: ``submit_many`` hands it attempts of tasks (``submit`` one),
``wait`` returns the attempts that have finished, ``shutdown`` releases the engine. The
engine submits in batches: whenever a good share of ``max_in_flight`` is free, it hands
over every attempt that fits, so engines with a bulk call (one scheduler message, one
FaaS job) pay their round trip once per batch rather than once per attempt. Retries, backoff,
skipping, the ledger and reports live in the engine, so every executor gets them the same
way. The function an executor runs is :func:`tilefleet.engine.worker.execute`; it returns
failures as data, so an exception reaching the executor means the worker was lost.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tilefleet.task import Outcome, Task


@dataclass(frozen=True)
class Completion:
    """A finished attempt: the worker's outcome, or the infrastructure error that lost it."""

    task_id: str
    attempt: int
    outcome: Outcome | None = None
    lost: BaseException | None = None


@dataclass(frozen=True)
class Billing:
    """How an executor is billed: memory per task and price per GB-second of it."""

    memory_gb: float
    usd_per_gb_s: float

    def cost(self, task_seconds: float) -> float:
        return task_seconds * self.memory_gb * self.usd_per_gb_s


class Executor(ABC):
    """Base of all executors: ``start``, then ``submit_many``/``wait``, then ``shutdown``."""

    name: ClassVar[str]
    #: Attempts kept submitted per worker when the job sets no ``max_in_flight``: enough
    #: queued work to hide the engine's round trip, few enough not to flood a scheduler.
    in_flight_per_worker: ClassVar[int] = 2
    #: Job-file keys (beyond ``workers``) this executor takes; others are refused.
    setting_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, workers: int | None = None, **settings: Any):
        self.workers = workers or self.default_workers()
        self.settings = settings

    @staticmethod
    def default_workers() -> int:
        import os

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
