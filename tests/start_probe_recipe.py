"""A recipe that reports what its worker had imported when its task began, then reads a
raster through rasterio the way cogify does (for an s3:// path: through boto3). Its module
imports cogify's, so its worker starts as a cogify worker does."""

from __future__ import annotations

import json
import sys
from typing import Any

import rasterio
from rasterio.session import Session

import tilefleet.recipes.cogify  # noqa: F401  (a cogify worker's imports)
from tilefleet.recipes.base import Recipe, RecipeParams
from tilefleet.store.gdal_env import gdal_config
from tilefleet.store.objects import open_store
from tilefleet.task import Task


class ProbeParams(RecipeParams):
    raster: str
    dest: str


class StartProbeRecipe(Recipe):
    """Writes ``probe.json``: boto3's state at the task's start, the session rasterio
    picks for the raster, and the raster's checksums read through it."""

    name = "start-probe"
    Params = ProbeParams

    def plan(self, params: ProbeParams) -> list[Task]:
        values = params.model_dump()
        return [Task("probe", self.name, values, params.dest, "probe.json", {"tile": "probe"})]

    def run(self, task: Task) -> dict[str, Any]:
        seen: dict[str, Any] = {
            "boto3_imported_at_start": "boto3" in sys.modules,
            "boto3_executed_at_start": "botocore.session" in sys.modules,
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
        open_store(task.dest).put_bytes(json.dumps(seen).encode(), task.marker)
        return {}
