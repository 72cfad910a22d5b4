"""The function every executor runs: one attempt of one task, on whatever machine.

Failures are returned as data (an :class:`Outcome` with its error classified) rather than
raised, so that every executor reports them the same way; an exception that escapes an
executor therefore always means infrastructure trouble (a lost worker).
"""

from __future__ import annotations

import logging

from tilefleet.errors import classify, one_line
from tilefleet.recipes import get_recipe
from tilefleet.task import Outcome, Task, now, worker_name

log = logging.getLogger(__name__)


def execute(task: Task, attempt: int) -> Outcome:
    """Run ``task`` once and describe how it went."""
    started = now()
    try:
        metrics = get_recipe(task.recipe).run(task)
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
