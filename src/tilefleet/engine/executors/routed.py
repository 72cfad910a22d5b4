"""``routed``: several executors in one run, each task sent to one of them by a key in it.

The TTC pattern: DEM and Sentinel-1 tasks on a Lithops config in eu-central-1 (next to
their data), Sentinel-2 tasks on another in us-west-2. In a job file::

    executor: routed
    executors:                       # pool name -> an executor and its own settings
      euc1: {executor: lithops, lithops_config: lithops-euc1.yaml, mem: 4096, workers: 300}
      usw2: {executor: lithops, lithops_config: lithops-usw2.yaml, mem: 4096, workers: 300}
    route_by: stage                  # the task parameter that decides (default: pool)
    routes: {dem: euc1, s1: euc1, s2: usw2}   # its value -> pool ('*': any other value)

Without ``routes`` the parameter's value is the pool's name. The recipe only says what a
task is (its stage); the job file says where each kind runs. The engine is unchanged: this
is one executor to it, with the pools' workers added up, and retries, the ledger and
backpressure (``max_in_flight`` over all pools) stay the engine's. Each attempt's worker
name says where it ran (one timeline lane per worker), and ``describe()`` records every
pool's settings. A task whose value names no pool fails at once, permanently, with the
reason.

Billing, when some pools bill per GB-second, uses the dearest pool's memory and price for
every task: an upper bound, since which share of the work goes where is only known after.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from tilefleet.engine.executors.base import (
    AttemptExecutor,
    Billing,
    Completion,
    ExecutorSettings,
    PlanExecutor,
)
from tilefleet.errors import PERMANENT
from tilefleet.fields import Cli, KeyValues, YamlMapping
from tilefleet.task import Outcome, Task, now

DEFAULT_ROUTE_KEY = "pool"
ANY_VALUE = "*"
#: Slice of a wait given to each pool in turn when none has anything finished.
WAIT_SLICE_S = 0.02


class RoutedSettings(ExecutorSettings):
    executors: Annotated[YamlMapping | None, Cli(metavar="YAML")] = Field(
        None,
        description="The pools: pool name -> {executor: NAME, its settings}, e.g. "
        "'{a: {executor: dask}, b: {executor: lithops}}'",
    )
    route_by: str = Field(DEFAULT_ROUTE_KEY, description="The task parameter naming its pool")
    routes: Annotated[KeyValues | None, Cli(flag="--route", metavar="VALUE=POOL")] = Field(
        None, description="Value of route_by -> pool name ('*': any other value)"
    )


class RoutedExecutor(AttemptExecutor):
    name = "routed"
    Settings = RoutedSettings
    in_flight_help = "its pools' added up"

    def __init__(self, workers: int | None = None, **settings: Any):
        from tilefleet.engine.executors import create_executor

        super().__init__(workers, **settings)
        specs = self.config.executors or {}
        if not specs:
            raise ValueError(
                "executor 'routed' needs executors: a mapping of pool name to "
                "{executor: NAME, …settings}"
            )
        self.pools: dict[str, AttemptExecutor] = {}
        for pool, spec in specs.items():
            spec = dict(spec or {})
            kind = spec.pop("executor", None)
            if not kind:
                raise ValueError(f"routed pool {pool!r} names no executor")
            if kind == self.name:
                raise ValueError(f"routed pool {pool!r}: pools cannot be routed themselves")
            try:
                executor = create_executor(kind, spec.pop("workers", None) or workers, **spec)
            except ValueError as exc:
                raise ValueError(f"routed pool {pool!r}: {exc}") from None
            if isinstance(executor, PlanExecutor):
                raise ValueError(f"routed pool {pool!r}: {kind} runs a whole plan, not tasks")
            self.pools[pool] = executor
        self.route_by = self.config.route_by
        self.routes = {str(k): v for k, v in (self.config.routes or {}).items()}
        unknown = sorted(set(self.routes.values()) - set(self.pools))
        if unknown:
            raise ValueError(f"routes name unknown pool(s): {', '.join(unknown)}")
        self.workers = sum(executor.workers for executor in self.pools.values())
        self._refused: list[Completion] = []

    def pool_of(self, task: Task) -> str | None:
        """The pool a task goes to, or None when its routing value names none."""
        value = str(task.params.get(self.route_by))
        pool = self.routes.get(value, self.routes.get(ANY_VALUE))
        if pool is None and not self.routes:
            pool = value
        return pool if pool in self.pools else None

    @property
    def billing(self) -> Billing | None:
        billed = [e.billing for e in self.pools.values() if e.billing is not None]
        if not billed:
            return None
        return Billing(
            memory_gb=max(b.memory_gb for b in billed),
            usd_per_gb_s=max(b.usd_per_gb_s for b in billed),
        )

    @property
    def default_max_in_flight(self) -> int:
        return sum(executor.default_max_in_flight for executor in self.pools.values())

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "workers": self.workers,
            "route_by": self.route_by,
            "routes": self.routes,
            "executors": {pool: e.describe() for pool, e in self.pools.items()},
        }

    def start(self, preload: Sequence[str] = ()) -> None:
        for executor in self.pools.values():
            executor.task_timeout = self.task_timeout
            executor.max_task_memory = self.max_task_memory
            executor.start(preload)

    def submit(self, task: Task, attempt: int) -> None:
        self.submit_many([(task, attempt)])

    def submit_many(self, attempts: Sequence[tuple[Task, int]]) -> None:
        by_pool: dict[str, list[tuple[Task, int]]] = {}
        for task, attempt in attempts:
            pool = self.pool_of(task)
            if pool is None:
                self._refuse(task, attempt)
            else:
                by_pool.setdefault(pool, []).append((task, attempt))
        for pool, batch in by_pool.items():  # each pool gets its share as one batch
            self.pools[pool].submit_many(batch)

    def _refuse(self, task: Task, attempt: int) -> None:
        stamp = now()
        reason = (
            f"no executor for {self.route_by}={task.params.get(self.route_by)!r} "
            f"(pools: {', '.join(self.pools)})"
        )
        outcome = Outcome(task.id, attempt, False, "routed", stamp, stamp, reason, PERMANENT)
        self._refused.append(Completion(task.id, attempt, outcome=outcome))

    def wait(self, timeout: float | None) -> list[Completion]:
        completions, self._refused = self._refused, []
        for executor in self.pools.values():
            completions += executor.wait(0)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not completions and (deadline is None or time.monotonic() < deadline):
            for executor in self.pools.values():
                left = WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
                completions += executor.wait(max(0.0, min(WAIT_SLICE_S, left)))
                if completions:
                    break
        return completions

    def shutdown(self, cancel: bool = False) -> None:
        for executor in self.pools.values():
            executor.shutdown(cancel)
