"""One pass over a recipe's plan, streamed: what the engine needs of it, never the whole list.

The recipe's ``plan`` may yield millions of tasks. Each is fitted for the workers (its
recipe by import path, an id a ledger can hold), checked against the outputs of the tasks
before it (one writer per output), selected or not for this session (rejected, done in this
run, outside ``--only``) and spooled to disk, a batch at a time. Nothing stays in memory
per task: the one-writer check claims a batch's markers in the spool, and the skip listing
reads the markers' folders back from it. The sizes and kinds the estimate
wants are taken after the skip, of the tasks left to run only (:func:`sizes_and_kinds`).
"""

from __future__ import annotations

import gc
import itertools
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from tilefleet.engine.spool import BATCH, PlanMarkers, PlanSpool, Writers
from tilefleet.errors import JobError, one_line
from tilefleet.recipes.base import Recipe
from tilefleet.recipes.params import RecipeParams
from tilefleet.task import DONE_STATES, Task

log = logging.getLogger("tilefleet")

#: A dry run keeps the tasks of a plan this small for its map (a larger one is planned again).
KEPT_FOR_MAP = 100_000


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while millions of small records pile up (tasks, ids,
    report rows): none of them holds a cycle, yet every collection of the oldest generation
    would walk them all again, about a tenth of a million-task plan's time."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass
class PlanDigest:
    """What one pass over a plan leaves."""

    planned: int = 0
    #: Tasks the plan already knows to be bad (or that another task's outputs shadow).
    rejected: list[Task] = field(default_factory=list)
    #: Every planned task, for a dry run's map; None when not kept (too many, or no dry run).
    kept: list[Task] | None = None


@collector_paused()
def digest_plan(
    recipe: Recipe,
    params: RecipeParams,
    *,
    known: dict[str, str],
    only: list[str] | None,
    spool: PlanSpool | PlanMarkers,
    keep: bool,
) -> PlanDigest:
    """Stream ``recipe``'s plan once: count it, keep its rejected tasks, select what this
    session may run (not rejected, not done in this run per ``known``, within ``only``),
    and append every task to ``spool`` with its selection (the spool then knows the
    candidates of the skip listing). Raises :class:`JobError` when
    ``only`` names a task the plan lacks."""
    digest = PlanDigest(kept=[] if keep else None)
    wanted = set(only) if only else None
    found_wanted: set[str] = set()
    for task in checked_plan(recipe, recipe.plan(params), spool):
        digest.planned += 1
        if digest.kept is not None:
            digest.kept.append(task)
            if len(digest.kept) > KEPT_FOR_MAP:
                digest.kept = None
        if task.rejected is not None:
            digest.rejected.append(task)
        in_only = wanted is None or task.id in wanted
        if wanted is not None and in_only:
            found_wanted.add(task.id)
        selected = task.rejected is None and in_only and known.get(task.id) not in DONE_STATES
        spool.add(task, selected)
    spool.flush()
    if wanted is not None:
        unknown = [i for i in only if i not in found_wanted]
        if unknown:
            raise JobError(f"--only names unknown task id(s): {', '.join(unknown[:5])}")
    return digest


def sizes_and_kinds(
    recipe: Recipe, params: RecipeParams, tasks: Iterable[Task]
) -> tuple[list[str], dict[str, float], dict[str, str | None]]:
    """The ids of ``tasks`` (those left to run, after the skip: sizing a done task may cost
    a listing of its inputs) with the estimate's sizes and kinds of them, a batch at a
    time; all empty for a recipe that has neither (most: then ``tasks`` is not even read)."""
    ids: list[str] = []
    sizes: dict[str, float] = {}
    kinds: dict[str, str | None] = {}
    has_sizes = type(recipe).task_sizes is not Recipe.task_sizes
    has_kinds = type(recipe).task_kind is not Recipe.task_kind
    if not (has_sizes or has_kinds):
        return ids, sizes, kinds
    tasks = iter(tasks)
    while batch := list(itertools.islice(tasks, BATCH)):
        ids.extend(task.id for task in batch)
        if has_sizes:
            sizes.update(task_sizes(recipe, params, batch))
        if has_kinds:
            kinds.update(recipe.task_kinds(batch))
    return ids, sizes, kinds


def task_sizes(recipe: Recipe, params: RecipeParams, tasks: list[Task]) -> dict[str, float]:
    """The recipe's task sizes, for the estimate; a recipe that cannot tell costs nothing."""
    try:
        return {k: float(v) for k, v in recipe.task_sizes(params, tasks).items() if v > 0}
    except Exception as exc:  # an estimate is never worth failing a run for
        log.debug("task sizes of %s unknown: %s", recipe.name, one_line(exc))
        return {}


def checked_plan(
    recipe: Recipe, tasks: Iterable[Task], spool: PlanSpool | PlanMarkers | None = None
) -> Iterator[Task]:
    """``tasks`` naming their recipe by its import path, so that any worker finds it without
    the registry (a user's recipe included, whatever its ``name``); a task whose id no
    ledger can hold (a NUL in it) is rejected under its escaped id, and a task whose done
    marker is an earlier task's (``x.tif`` and ``x.tiff``, ``y.img`` beside ``y.tif``: one
    would silently replace the other's outputs) is rejected naming that task. The others
    go on.

    With a ``spool``, each batch's markers are claimed in it (each yielded task must then
    be added to it, in order), and only a batch whose markers were taken holds their
    first writers here. Without one, every writer is held (a plan already in memory)."""
    reference = recipe.reference()
    writers: Writers = {}  # dest -> marker -> the task writing it
    fitted = (_fitted(task, reference) for task in tasks)
    while batch := list(itertools.islice(fitted, BATCH)):
        if spool is not None:
            writers = spool.claim(batch)
        for task in batch:
            if task.rejected is None and task.marker:
                mine = writers.get(task.dest)
                if mine is None:
                    mine = writers[task.dest] = {}
                first = mine.setdefault(task.marker, task.id)
                if first != task.id:
                    reason = f"its outputs ({task.marker}) are also those of {first}"
                    task = replace(task, rejected=reason)
            yield task


def _fitted(task: Task, reference: str) -> Task:
    if "\x00" not in task.id:
        return task if task.recipe == reference else replace(task, recipe=reference)
    escaped = task.id.encode("unicode_escape").decode("ascii")
    return replace(task, id=escaped, recipe=reference, rejected=f"task id {escaped} holds a NUL")
