"""Test recipes whose tasks report on the worker process they ran in: how many threads
OpenBLAS (numpy's BLAS) runs, as threadpoolctl reads it from the library; and the page
faults of filling a fresh 96 MB array, as a raster task fills its pixels (none where the
worker reuses the memory the task before it freed, one per page where every block is
mapped afresh)."""

from __future__ import annotations

import resource
from dataclasses import replace
from typing import Any

from engine_recipes import FlakyRecipe
from tilefleet.task import Task

BLOCK_BYTES = 96 << 20


class _WorkerReportRecipe(FlakyRecipe):
    def plan(self, params) -> list[Task]:
        recipe = f"executors.threads_recipe:{type(self).__name__}"
        return [replace(task, recipe=recipe) for task in super().plan(params)]


class ThreadsRecipe(_WorkerReportRecipe):
    name = "threads"

    def run(self, task: Task) -> dict[str, Any]:
        import numpy  # noqa: F401  (loads OpenBLAS, which starts its threads)
        from threadpoolctl import threadpool_info

        return {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}


class PagesRecipe(_WorkerReportRecipe):
    name = "pages"

    def run(self, task: Task) -> dict[str, Any]:
        import numpy as np

        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = np.ones(BLOCK_BYTES, dtype=np.uint8)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        del block
        return {"faults": faults}
