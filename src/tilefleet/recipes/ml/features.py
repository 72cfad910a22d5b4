"""``features``: per-patch features from the ``patch-data`` cubes: normalised-difference
indices (NDVI from B08/B04, NDWI from B03/B08, NDBI from B11/B08 by default, any pair of
bands by name), optionally raw bands, per date or aggregated over time.

The output is a float32 cube per patch, NaN where invalid. Per date (``dates``) it keeps
the input's time steps and valid mask; aggregated (``mean``, ``median``, ``min``, ``max``,
``std``, percentiles ``pNN``), it has one time step, named ``all``, and one band per
feature and statistic (``NDVI_mean``), valid where any date was.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from tilefleet.fields import CommaList
from tilefleet.ops.indices import DEFAULT_INDICES, PER_DATE, check_statistic
from tilefleet.recipes.ml.common import PatchInputParams, patch_task, write_marker
from tilefleet.recipes.tiled import TiledRecipe
from tilefleet.task import Task
from tilefleet.tiles.tile import Tile

AGGREGATE_TIME = "all"


class FeaturesParams(PatchInputParams):
    indices: dict[str, tuple[str, str]] = Field(
        default_factory=lambda: dict(DEFAULT_INDICES),
        description="Normalised differences NAME: [A, B], (A - B) / (A + B)",
    )
    bands: CommaList[str] = Field(
        default_factory=list, description="Input bands also kept as features (reflectances)"
    )
    aggregation: CommaList[str] = Field(
        default_factory=lambda: [PER_DATE],
        description="dates (one set per date), or statistics over time: mean, median, pNN…",
    )

    @field_validator("aggregation")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return [check_statistic(name) for name in value]

    @model_validator(mode="after")
    def _check(self) -> FeaturesParams:
        if PER_DATE in self.aggregation and len(self.aggregation) > 1:
            raise ValueError(f"aggregation: {PER_DATE} cannot be combined with statistics")
        if not self.indices and not self.bands:
            raise ValueError("no feature: give indices or bands")
        return self


class FeaturesRecipe(TiledRecipe):
    name = "features"
    summary = "Spectral indices (NDVI, NDWI, NDBI, any pair) per patch, per date or over time."
    Params = FeaturesParams
    default_task_s = 1.0

    def task_for(self, tile: Tile, params: FeaturesParams) -> Task:
        payload = {
            "input": str(params.input),
            "indices": {k: list(v) for k, v in params.indices.items()},
            "bands": list(params.bands),
            "aggregation": list(params.aggregation),
        }
        return patch_task(self.name, tile, params, payload)

    def run(self, task: Task) -> dict[str, Any]:
        from tilefleet.store.patch_cube import read_cube, write_cube

        p = task.params
        tile_id = p["tile"]["id"]
        cube = read_cube(p["input"], tile_id, what="patch data")
        features = compute_features(cube, p["indices"], p["bands"], p["aggregation"])
        written = write_cube(task.dest, tile_id, features)
        write_marker(task, {"tile": tile_id, "features": features.bands})
        return {"bytes_out": written, "features": len(features.bands)}


def compute_features(cube, indices: dict, bands: list[str], aggregation: list[str]):
    """The features cube of one patch-data cube."""
    from tilefleet.errors import PermanentError
    from tilefleet.ops.indices import aggregate_over_time, normalized_difference
    from tilefleet.store.patch_cube import PatchCube

    tile_id = cube.attrs.get("tile", {}).get("id", "?")
    wanted = {b for pair in indices.values() for b in pair} | set(bands)
    missing = sorted(wanted - set(cube.bands))
    if missing:
        raise PermanentError(
            f"patch {tile_id}: band(s) {', '.join(missing)} not in its cube "
            f"({', '.join(cube.bands)})"
        )
    names, layers = [], []
    for name, (a, b) in indices.items():
        names.append(name)
        layers.append(normalized_difference(cube.band(a), cube.band(b), cube.valid))
    for band in bands:
        names.append(band)
        layers.append(np.where(cube.valid, cube.band(band).astype(np.float32), np.nan))
    per_date = np.stack(layers, axis=1).astype(np.float32)  # (time, feature, y, x)
    attrs = {**cube.attrs, "source_bands": cube.bands}
    if aggregation == [PER_DATE]:
        return PatchCube(per_date, cube.valid, names, cube.times, cube.epsg, cube.transform, attrs)
    out_names, out = [], []
    for f, name in enumerate(names):
        for statistic in aggregation:
            out_names.append(f"{name}_{statistic}")
            out.append(aggregate_over_time(per_date[:, f], statistic))
    valid = cube.valid.any(axis=0, keepdims=True)
    data = np.stack(out, axis=0)[np.newaxis]
    return PatchCube(data, valid, out_names, [AGGREGATE_TIME], cube.epsg, cube.transform, attrs)
