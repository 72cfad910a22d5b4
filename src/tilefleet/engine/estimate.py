"""What a run will take before it starts: tasks to run, wall time, and money."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from tilefleet.engine.executors.base import Billing
from tilefleet.engine.history import median_duration

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
    task_s_source: str  # "history" or "default"
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
) -> Estimate:
    measured = median_duration(recipe)
    task_s = measured if measured is not None else default_task_s
    waves = math.ceil(to_run / max(workers, 1))
    cost = billing.cost(task_s * to_run) if billing else None
    return Estimate(
        to_run,
        skipped,
        task_s,
        "history" if measured is not None else "default",
        workers,
        waves * task_s,
        cost,
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
