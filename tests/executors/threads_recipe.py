"""A test recipe whose tasks report the thread pools of the process they ran in: how many
threads OpenBLAS (numpy's BLAS) runs, as threadpoolctl reads it from the library."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine_recipes import FlakyRecipe
from tilefleet.task import Task


class ThreadsRecipe(FlakyRecipe):
    name = "threads"

    def plan(self, params) -> list[Task]:
        recipe = "executors.threads_recipe:ThreadsRecipe"
        return [replace(task, recipe=recipe) for task in super().plan(params)]

    def run(self, task: Task) -> dict[str, Any]:
        import numpy  # noqa: F401  (loads OpenBLAS, which starts its threads)
        from threadpoolctl import threadpool_info

        return {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}
