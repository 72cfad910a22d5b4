"""A test recipe whose tasks each fill a fresh 96 MB array, as a raster task fills its
pixels, and report the page faults that took: none where the worker reuses the memory
the task before it freed, one per page where every block is mapped afresh."""

from __future__ import annotations

import resource
from dataclasses import replace
from typing import Any

from engine_recipes import FlakyRecipe
from tilefleet.task import Task

BLOCK_BYTES = 96 << 20


class PagesRecipe(FlakyRecipe):
    name = "pages"

    def plan(self, params) -> list[Task]:
        recipe = "executors.pages_recipe:PagesRecipe"
        return [replace(task, recipe=recipe) for task in super().plan(params)]

    def run(self, task: Task) -> dict[str, Any]:
        import numpy as np

        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = np.ones(BLOCK_BYTES, dtype=np.uint8)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        del block
        return {"faults": faults}
