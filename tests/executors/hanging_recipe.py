"""A test recipe whose chosen tasks hang: each of their attempts sleeps far longer than
the tests' task timeout (as a read blocked on a stalled socket would), the others write
their output and marker at once."""

from __future__ import annotations

import time
from dataclasses import replace
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


class RayBoardsRecipe(HangingRecipe):
    """Hanging tasks that also say, as their metric ``boards``, which start boards of
    tilefleet runs (named Ray actors) are up while they run."""

    name = "ray-boards"

    def plan(self, params: HangingParams) -> list[Task]:
        recipe = "executors.hanging_recipe:RayBoardsRecipe"
        return [replace(task, recipe=recipe) for task in super().plan(params)]

    def run(self, task: Task) -> dict[str, Any]:
        import ray

        return {**super().run(task), "boards": start_boards(ray)}


def start_boards(ray) -> list[str]:
    """The names of the start boards of tilefleet runs up in this Ray."""
    actors = ray.util.list_named_actors(all_namespaces=True)
    return sorted(a["name"] for a in actors if a["name"].startswith("tilefleet-starts-"))
