"""What a run will take before it starts: tasks to run, wall time, and money."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

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
    #: Per kind of task (``Recipe.task_kind``), when the recipe has kinds: kind ->
    #: ``{tasks, task_s, task_s_source, cost_usd}``.
    by_kind: dict[str, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def breakdown(self) -> list[str]:
        """One line per kind: tasks, seconds per task and where they come from, cost."""
        lines = []
        for kind, part in self.by_kind.items():
            line = (
                f"  {kind}: {part['tasks']} task(s) x ~{part['task_s']:.1f} s "
                f"(from {part['task_s_source']})"
            )
            if part["cost_usd"] is not None:
                line += f", ${part['cost_usd']:.4f}"
            lines.append(line)
        return lines

    def describe(self) -> str:
        text = (
            f"{self.tasks} task(s) to run, {self.skipped} already done; "
            f"~{_duration(self.wall_s)} on {self.workers} worker(s) "
            f"(~{self.task_s:.1f} s per task, from {self.task_s_source})"
        )
        if self.cost_usd is not None:
            text += f"; estimated cost ${self.cost_usd:.4f}"
        if self.by_kind:
            text += "\n" + "\n".join(self.breakdown())
        return text


def estimate_run(
    recipe: str,
    default_task_s: float,
    to_run: int,
    skipped: int,
    workers: int,
    billing: Billing | None,
    sizes: Sequence[float] = (),
    kinds: Sequence[str | None] = (),
    kind_defaults: Mapping[str, float] | None = None,
) -> Estimate:
    """``sizes``: the tasks' sizes in the recipe's unit of work, when it gives them; with a
    remembered rate the estimate scales with them, else it is the median task duration.
    ``kinds``: each task's kind, when the recipe has kinds; each kind is then estimated
    from its own history (or its default in ``kind_defaults``) and costed apart."""
    if any(kinds) and len(kinds) == to_run:
        return _estimate_by_kind(
            recipe, default_task_s, kinds, kind_defaults or {}, skipped, workers, billing
        )
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


def _estimate_by_kind(
    recipe: str,
    default_task_s: float,
    kinds: Sequence[str | None],
    kind_defaults: Mapping[str, float],
    skipped: int,
    workers: int,
    billing: Billing | None,
) -> Estimate:
    counts = Counter(kind or "other" for kind in kinds)
    by_kind, total_s, longest = {}, 0.0, 0.0
    for kind in sorted(counts):
        measured = median_duration(recipe, kind)
        task_s = measured if measured is not None else kind_defaults.get(kind, default_task_s)
        kind_s = task_s * counts[kind]
        total_s += kind_s
        longest = max(longest, task_s)
        by_kind[kind] = {
            "tasks": counts[kind],
            "task_s": task_s,
            "task_s_source": "history" if measured is not None else "default",
            "cost_usd": billing.cost(kind_s) if billing else None,
        }
    to_run = len(kinds)
    sources = {part["task_s_source"] for part in by_kind.values()}
    source = sources.pop() if len(sources) == 1 else "history and defaults"
    wall_s = max(total_s / max(workers, 1), longest)
    cost = billing.cost(total_s) if billing else None
    return Estimate(to_run, skipped, total_s / to_run, source, workers, wall_s, cost, by_kind)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
