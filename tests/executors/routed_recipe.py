"""A test recipe whose tasks name the pool they belong to, for the routed executor."""

from __future__ import annotations

from engine_recipes import FlakyParams, FlakyRecipe
from tilefleet.task import Task


class PooledFlakyParams(FlakyParams):
    pools: list[str]


class PooledFlakyRecipe(FlakyRecipe):
    """FlakyRecipe whose task i carries ``pool = pools[i % len(pools)]``."""

    name = "pooled-flaky"
    Params = PooledFlakyParams

    def plan(self, params: PooledFlakyParams) -> list[Task]:
        tasks = super().plan(params)
        return [
            Task(
                t.id,
                "executors.routed_recipe:PooledFlakyRecipe",
                {**t.params, "pool": params.pools[i % len(params.pools)]},
                t.dest,
                t.marker,
                source=t.source,
            )
            for i, t in enumerate(tasks)
        ]
