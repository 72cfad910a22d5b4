"""A recipe that reports what its worker had imported when its task began, then reads a
raster through rasterio the way cogify does (for an s3:// path: through boto3) and, when
given one, runs a task of a built-in recipe. Its module imports cogify's, and names its
model as cogify does, so its worker starts as a cogify worker does."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import rasterio
from rasterio.session import Session

import tilefleet.recipes.cogify  # noqa: F401  (a cogify worker's imports)
from tilefleet.recipes import get_recipe
from tilefleet.recipes.base import ParamsModel, Recipe
from tilefleet.store.gdal_env import gdal_config
from tilefleet.store.objects import open_store
from tilefleet.task import Task

if TYPE_CHECKING:
    from start_probe_params import ProbeParams


def _pydantic_loaded() -> bool:
    return any(name.partition(".")[0] in ("pydantic", "pydantic_core") for name in sys.modules)


class StartProbeRecipe(Recipe):
    """Writes ``probe.json``: boto3's and pydantic's state at the task's start, the
    session rasterio picks for the raster, the raster's checksums read through it, and
    pydantic's state after the task it was given (if any) ran."""

    name = "start-probe"
    Params = ParamsModel("start_probe_params:ProbeParams")

    def plan(self, params: ProbeParams) -> list[Task]:
        values = params.model_dump()
        return [Task("probe", self.name, values, params.dest, "probe.json", {"tile": "probe"})]

    def run(self, task: Task) -> dict[str, Any]:
        seen: dict[str, Any] = {
            "boto3_imported_at_start": "boto3" in sys.modules,
            "boto3_executed_at_start": "botocore.session" in sys.modules,
            "pydantic_at_start": _pydantic_loaded(),
        }
        path = task.params["raster"]
        with rasterio.Env(**gdal_config()), rasterio.open(path) as src:
            seen["checksums"] = [src.checksum(band) for band in src.indexes]
        session = Session.from_path(path)
        boto3_session = sys.modules["boto3"].Session  # what rasterio's AWSSession makes
        seen.update(
            session=type(session).__name__,
            boto3_session=f"{boto3_session.__module__}.{boto3_session.__qualname__}",
            boto3_executed_at_end="botocore.session" in sys.modules,
        )
        if task.params["task"] is not None:
            given = Task(**task.params["task"])
            seen["metrics"] = get_recipe(given.recipe).run(given)
            seen["pydantic_after_task"] = _pydantic_loaded()
        open_store(task.dest).put_bytes(json.dumps(seen).encode(), task.marker)
        return {}
