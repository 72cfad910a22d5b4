"""A test recipe whose chosen tasks hang: each of their attempts sleeps far longer than
the tests' task timeout (as a read blocked on a stalled socket would), the others write
their output and marker at once."""

from __future__ import annotations

import time
from typing import Any

from engine_recipes import FlakyParams, FlakyRecipe
from tilefleet.store.objects import open_store
from tilefleet.task import Task


class HangingParams(FlakyParams):
    hang_s: float = 30.0


class HangingRecipe(FlakyRecipe):
    name = "hanging"
    Params = HangingParams

    def plan(self, params: HangingParams) -> list[Task]:
        return [
            Task(
                t.id, "executors.hanging_recipe:HangingRecipe", t.params, t.dest, t.marker, t.source
            )
            for t in super().plan(params)
        ]

    def run(self, task: Task) -> dict[str, Any]:
        if task.id in (task.params["fail_ids"] or []):
            time.sleep(task.params["hang_s"])  # not stopped: the attempt succeeds late
        store = open_store(task.dest)
        store.put_bytes(f"{task.id} done".encode(), f"out/{task.id}.txt")
        store.put_bytes(b"{}", task.marker)
        return {}
