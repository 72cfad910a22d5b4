"""What a run will take before it starts: tasks to run, wall time, and money."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from tilefleet.engine.executors.base import Billing
from tilefleet.engine.history import median_duration, median_rate

# USD per GB-second of the serverless platforms tilefleet can bill against.
PRICE_PER_GB_S = {
    "aws-lambda-x86": 0.0000166667,
    "aws-lambda-arm": 0.0000133334,
}


@dataclass(frozen=True)
class Estimate:
    tasks: int
    skipped: int
    task_s: float
    task_s_source: str  # "history", "history, scaled by task size" or "default"
    workers: int
    wall_s: float
    cost_usd: float | None

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        text = (
            f"{self.tasks} task(s) to run, {self.skipped} already done; "
            f"~{_duration(self.wall_s)} on {self.workers} worker(s) "
            f"(~{self.task_s:.1f} s per task, from {self.task_s_source})"
        )
        if self.cost_usd is not None:
            text += f"; estimated cost ${self.cost_usd:.4f}"
        return text


def estimate_run(
    recipe: str,
    default_task_s: float,
    to_run: int,
    skipped: int,
    workers: int,
    billing: Billing | None,
    sizes: Sequence[float] = (),
) -> Estimate:
    """``sizes``: the tasks' sizes in the recipe's unit of work, when it gives them; with a
    remembered rate the estimate scales with them, else it is the median task duration."""
    rate = median_rate(recipe) if sizes and len(sizes) == to_run else None
    if rate is not None:
        total_s = rate * sum(sizes)
        task_s = total_s / to_run
        # Tasks spread over the workers, but no run is shorter than its biggest task.
        wall_s = max(total_s / max(workers, 1), rate * max(sizes))
        source = "history, scaled by task size"
    else:
        measured = median_duration(recipe)
        task_s = measured if measured is not None else default_task_s
        total_s = task_s * to_run
        wall_s = math.ceil(to_run / max(workers, 1)) * task_s
        source = "history" if measured is not None else "default"
    cost = billing.cost(total_s) if billing else None
    return Estimate(to_run, skipped, task_s, source, workers, wall_s, cost)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
