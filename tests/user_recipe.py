"""A user's own recipe, as a notebook or a package of theirs would write it: named ``ndi``,
loaded by its import path, with tasks that name it by that short name only."""

from __future__ import annotations

from typing import Any

import numpy as np
import rasterio

from tilefleet.recipes.base import ParamsModel, Recipe, RecipeParams
from tilefleet.store.objects import open_store
from tilefleet.task import Task


class NdiParams(RecipeParams):
    raster: str
    dest: str
    first: int = 1
    second: int = 2


class NdiRecipe(Recipe):
    """Normalised difference of two bands of a raster, written as a small JSON summary."""

    name = "ndi"
    Params = NdiParams

    def plan(self, params: NdiParams) -> list[Task]:
        values = params.model_dump()
        return [Task("ndi", self.name, values, params.dest, "ndi.json", source={"tile": "ndi"})]

    def run(self, task: Task) -> dict[str, Any]:
        p = task.params
        with rasterio.open(p["raster"]) as src:
            a, b = (src.read(p[key]).astype("float64") for key in ("first", "second"))
        total = a + b
        ndi = np.divide(a - b, total, out=np.zeros_like(total), where=total != 0)
        summary = f'{{"mean": {float(ndi.mean())!r}}}'
        open_store(task.dest).put_bytes(summary.encode(), task.marker)
        return {"mean": float(ndi.mean())}


class MarkerParams(RecipeParams):
    dest: str
    ids: list[str]


class MarkerRecipe(Recipe):
    """Writes one small marker per task id it is given: ids as odd as users' inputs."""

    name = "markers"
    Params = MarkerParams

    def plan(self, params: MarkerParams) -> list[Task]:
        return [
            Task(i, self.name, {}, params.dest, f"m{n}.json", {"tile": i})
            for n, i in enumerate(params.ids)
        ]

    def run(self, task: Task) -> dict[str, Any]:
        open_store(task.dest).put_bytes(b"{}", task.marker)
        return {}


class EchoParams(RecipeParams):
    dest: str


class EchoRecipe(Recipe):
    """Fails as a storage service does when a credential expires: its answer echoes the
    session token, and a library adds a password it was given to its message."""

    name = "echo"
    Params = EchoParams

    def plan(self, params: EchoParams) -> list[Task]:
        return [Task("t", self.name, {}, params.dest, "t.json", {"tile": "t"})]

    def run(self, task: Task) -> dict[str, Any]:
        import os

        token = os.environ["AWS_SESSION_TOKEN"]
        raise RuntimeError(
            "An error occurred (ExpiredToken): <Error><Code>ExpiredToken</Code><Token>"
            f"{token}</Token></Error> retry with password {os.environ['SERVICE_PASSWORD']}"
        )


class _NoTasks(Recipe):
    def plan(self, params: RecipeParams) -> list[Task]:
        return []

    def run(self, task: Task) -> dict[str, Any]:
        return {}


class MissingModelRecipe(_NoTasks):
    """Names a parameters model in a module that is not there."""

    name = "missing-model"
    Params = ParamsModel("no_such_module:Params")


class WrongModelRecipe(_NoTasks):
    """Names a class that is not a parameters model."""

    name = "wrong-model"
    Params = ParamsModel("json:JSONDecoder")
