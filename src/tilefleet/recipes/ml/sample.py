"""``sample``: labelled pixels of each patch as a Parquet table, seeded per patch.

A pixel is eligible where every feature is valid (all dates) and the reference labels
it. ``fraction`` takes that share of the eligible pixels, evenly split over the classes
with ``balanced``; ``blocks`` takes every eligible pixel of that many square blocks of
``block_size`` pixels placed at random. The generator is seeded by ``seed`` and the patch
id, so a rerun, on any worker, takes the same pixels.

Columns: ``tile``, ``row``, ``col`` (pixel), ``x``, ``y`` (its centre, patch CRS), one
float32 column per feature (``NDVI``, or ``NDVI@2020-02-19`` for per-date features of
several dates), and ``label``. The table is the task's only output, so it is its marker.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator

from tilefleet.errors import PermanentError
from tilefleet.recipes.ml.common import PatchParams, patch_task
from tilefleet.recipes.tiled import TiledRecipe
from tilefleet.store.location import StoreURL
from tilefleet.task import Task
from tilefleet.tiles.tile import Tile

SAMPLE_SUFFIX = ".parquet"
LABEL = "label"


class SampleParams(PatchParams):
    path_fields = (*PatchParams.path_fields, "features", "reference")

    features: StoreURL = Field(description="Folder of the features cubes")
    reference: StoreURL = Field(description="Folder of the reference label cubes")
    seed: int = Field(42, description="Seed of the random draws (with the patch id)")
    fraction: float | None = Field(
        None, gt=0, le=1, description="Share of the eligible pixels to take"
    )
    balanced: bool = Field(False, description="With fraction: the same count for every class")
    blocks: int | None = Field(None, ge=1, description="Number of random square blocks to take")
    block_size: int = Field(8, ge=1, description="Side of a block, pixels")

    @model_validator(mode="after")
    def _check(self) -> SampleParams:
        if (self.fraction is None) == (self.blocks is None):
            raise ValueError("give exactly one of fraction or blocks")
        if self.balanced and self.fraction is None:
            raise ValueError("balanced goes with fraction")
        return self


class SampleRecipe(TiledRecipe):
    name = "sample"
    summary = "Seeded samples of labelled, valid pixels per patch, as Parquet."
    Params = SampleParams
    default_task_s = 0.5

    def task_for(self, tile: Tile, params: SampleParams) -> Task:
        payload = params.model_dump(
            mode="json",
            include={
                "features",
                "reference",
                "seed",
                "fraction",
                "balanced",
                "blocks",
                "block_size",
            },
        )
        task = patch_task(self.name, tile, params, payload)
        return Task(
            task.id, task.recipe, task.params, task.dest, f"{tile.id}{SAMPLE_SUFFIX}", task.source
        )

    def run(self, task: Task) -> dict[str, Any]:
        return run_sample(task)


def feature_columns(cube) -> list[str]:
    """Column names of a features cube's values, time-major (``NDVI@2020-02-19``)."""
    if len(cube.times) == 1:
        return list(cube.bands)
    return [f"{band}@{time}" for time in cube.times for band in cube.bands]


def run_sample(task: Task) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tilefleet.ops import sampling
    from tilefleet.store.objects import open_store
    from tilefleet.store.patch_cube import read_cube

    p = task.params
    tile_id = p["tile"]["id"]
    features = read_cube(p["features"], tile_id, what="features")
    reference = read_cube(p["reference"], tile_id, what="reference labels")
    if features.shape != reference.shape or features.transform != reference.transform:
        raise PermanentError(
            f"patch {tile_id}: features grid {features.shape} and reference grid "
            f"{reference.shape} differ (same resolution in both steps?)"
        )
    t, b, rows, cols = features.data.shape
    values = features.data.transpose(2, 3, 0, 1).reshape(rows, cols, t * b)  # time-major
    labels = reference.data[0, 0]
    eligible = reference.valid[0] & features.valid.all(axis=0) & np.isfinite(values).all(axis=2)
    rng = sampling.patch_rng(p["seed"], tile_id)
    if p["blocks"]:
        picked = sampling.sample_blocks(eligible, p["blocks"], p["block_size"], rng)
    elif p["balanced"]:
        picked = sampling.sample_balanced(eligible, labels, p["fraction"], rng)
    else:
        picked = sampling.sample_fraction(eligible, p["fraction"], rng)
    row, col = np.divmod(picked, cols)
    a, _b, c, _d, e, f = features.transform
    columns: dict[str, Any] = {
        "tile": pa.array([tile_id] * len(picked), pa.string()),
        "row": row.astype(np.int32),
        "col": col.astype(np.int32),
        "x": c + (col + 0.5) * a,
        "y": f + (row + 0.5) * e,
    }
    flat = values.reshape(rows * cols, t * b)[picked]
    for index, name in enumerate(feature_columns(features)):
        columns[name] = flat[:, index].astype(np.float32)
    columns[LABEL] = labels.ravel()[picked]
    table = pa.table(columns)
    with tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp:
        path = Path(tmp) / "samples.parquet"
        pq.write_table(table, path, compression="zstd")
        size = path.stat().st_size
        open_store(task.dest).put_file(path, task.marker, move=True)  # the marker itself
    metrics: dict[str, Any] = {"samples": len(picked), "eligible": int(eligible.sum())}
    metrics["bytes_out"] = size
    if not len(picked):
        metrics["warning"] = f"patch {tile_id}: no eligible pixel to sample"
    return metrics
