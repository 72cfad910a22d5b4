"""The function every executor runs: one attempt of one task, on whatever machine.

Failures are returned as data (an :class:`Outcome` with its error classified) rather than
raised, so that every executor reports them the same way; an exception that escapes an
executor therefore always means infrastructure trouble (a lost worker).

With a memory limit, the recipe's estimate of what the task needs (:meth:`Recipe.task_memory`,
made before any pixel is read) is checked first: a task above the limit fails permanently
with the reason, instead of growing until the machine kills its worker and whatever else
that worker was running.
"""

from __future__ import annotations

import logging

from tilefleet import secrets
from tilefleet.errors import PermanentError, classify, one_line
from tilefleet.recipes import get_recipe
from tilefleet.recipes.base import Recipe
from tilefleet.task import Outcome, Task, now, worker_name

log = logging.getLogger(__name__)

MB = 1024 * 1024


def execute(task: Task, attempt: int, max_memory_mb: int | None = None) -> Outcome:
    """Run ``task`` once and describe how it went; ``max_memory_mb`` is the job's
    ``max_task_memory`` (None: no limit)."""
    started = now()
    # What the run shares with its workers, refreshed with each attempt; none of another
    # run's (a Dask or Ray worker outlives a run) is kept.
    secrets.install(task.secrets or {})
    try:
        recipe = get_recipe(task.recipe)
        if max_memory_mb is not None:
            check_memory(recipe, task, max_memory_mb)
        metrics = recipe.run(task)
    except Exception as exc:  # every failure becomes a recorded outcome, never a crash
        return Outcome(
            task.id,
            attempt,
            False,
            worker_name(),
            started,
            now(),
            error=one_line(exc),
            error_kind=classify(exc),
        )
    return Outcome(task.id, attempt, True, worker_name(), started, now(), metrics=metrics or {})


def check_memory(recipe: Recipe, task: Task, max_memory_mb: int) -> None:
    """Raise :class:`PermanentError` if the recipe estimates ``task`` needs more than
    ``max_memory_mb``; a task the recipe cannot estimate runs."""
    needed = recipe.task_memory(task)
    if needed is not None and needed > max_memory_mb * MB:
        raise PermanentError(
            f"needs about {needed / MB:,.0f} MB of memory, more than max_task_memory "
            f"({max_memory_mb:,} MB)"
        )
