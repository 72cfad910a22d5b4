"""Recipes for the engine's scale tests: plans that are generators (never lists), tasks
spread over many output folders, and tasks of two kinds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tilefleet.recipes.base import Recipe
from tilefleet.recipes.params import RecipeParams
from tilefleet.store.objects import open_store
from tilefleet.task import Task


class ManyParams(RecipeParams):
    dest: str
    count: int
    folders: int = 10
    #: A file that counts how many times the plan was read (it must be read once).
    plan_reads: str | None = None


class ManyRecipe(Recipe):
    """``count`` tasks writing one small marker each, over ``folders`` folders; the plan is
    a generator, as a plan of millions of tasks would be."""

    name = "many"
    Params = ManyParams
    default_task_s = 0.001
    source_columns = ("n",)

    def plan(self, params: ManyParams) -> Iterator[Task]:
        if params.plan_reads:
            reads = Path(params.plan_reads)
            reads.write_text(str(int(reads.read_text() or 0) + 1 if reads.exists() else 1))
        ref = f"{__name__}:{type(self).__name__}"
        for i in range(params.count):
            marker = f"{i % params.folders:03d}/t{i:06d}.json"
            yield Task(f"t{i:06d}", ref, {}, params.dest, marker, source={"n": str(i)})

    def run(self, task: Task) -> dict[str, Any]:
        open_store(task.dest).put_bytes(b"{}", task.marker)
        return {"bytes_out": 2}


class KindedRecipe(ManyRecipe):
    """The same, with tasks of two kinds (``even``, ``odd``), the odd ones 3 s by default,
    and every fifth task failing for good."""

    name = "kinded"
    default_task_s_by_kind = {"even": 0.001, "odd": 3.0}

    def task_kind(self, task: Task) -> str | None:
        return "even" if int(task.source["n"]) % 2 == 0 else "odd"

    def run(self, task: Task) -> dict[str, Any]:
        from tilefleet.errors import PermanentError

        if int(task.source["n"]) % 5 == 4:
            raise PermanentError(f"{task.id}: bad on purpose")
        return super().run(task)
