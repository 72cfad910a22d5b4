"""``patch-data``: Sentinel-2 bands and the Scene Classification Layer from STAC onto each
UTM patch's grid (buffer included), one Zarr cube per patch with a valid-data mask.

Planning searches the STAC source once for the whole area and gives each patch's task the
band hrefs of the scenes that cover it, so a worker needs no STAC access. A task reads
every band of every scene onto the patch grid, merges the scenes of one solar day (first
valid pixel first: overlapping granules of one pass count once) and writes the cube: one
time step per day, the bands then ``SCL``. A pixel is valid where every band has data and
its SCL class is not in ``scl_mask``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date, timedelta
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import Field, field_validator, model_validator

from tilefleet.errors import JobError, PermanentError
from tilefleet.fields import Cli, CommaList
from tilefleet.recipes.ml.common import PatchParams, patch_geobox, patch_task, write_marker
from tilefleet.recipes.tiled import TiledRecipe
from tilefleet.task import Task
from tilefleet.tiles.tile import Tile

DEFAULT_BANDS = ("B02", "B03", "B04", "B08", "B11")
MASK_BAND = "SCL"
RESAMPLING = ("nearest", "bilinear", "cubic", "average")


class PatchDataParams(PatchParams):
    path_fields: ClassVar[tuple[str, ...]] = (*PatchParams.path_fields, "catalog")

    stac_url: str | None = Field(None, description="STAC API root URL to search")
    catalog: str | None = Field(None, description="Static STAC catalog or item collection")
    collections: Annotated[list[str], Cli(flag="--collection")] = Field(
        default_factory=list, description="Collection ids to search (repeatable, or ID,ID)"
    )
    start_date: date = Field(description="First day, YYYY-MM-DD")
    end_date: date = Field(description="Last day, YYYY-MM-DD (inclusive)")
    bands: CommaList[str] = Field(
        default_factory=lambda: list(DEFAULT_BANDS),
        description="Bands by asset key or eo:bands name (B02, red…)",
    )
    scl_mask: CommaList[int] = Field(
        default_factory=lambda: [0, 1, 3, 8, 9, 10],
        description="SCL classes marked invalid (no data, saturated, shadows, clouds)",
    )
    max_cloud_cover: float | None = Field(
        None, ge=0, le=100, description="Keep scenes with eo:cloud_cover at most this (%)"
    )
    max_items: int | None = Field(None, ge=1, description="At most this many scenes in all")
    resampling: str = Field("nearest", description=f"Band resampling: {', '.join(RESAMPLING)}")

    @field_validator("collections", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return value.split(",") if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> PatchDataParams:
        if (self.stac_url is None) == (self.catalog is None):
            raise ValueError("give exactly one of stac_url (a STAC API) or catalog (static STAC)")
        if self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        if self.resampling not in RESAMPLING:
            raise ValueError(f"resampling {self.resampling!r}: choose from {', '.join(RESAMPLING)}")
        if MASK_BAND in self.bands:
            raise ValueError(f"{MASK_BAND} is always read; leave it out of bands")
        return self


class PatchDataRecipe(TiledRecipe):
    name = "patch-data"
    summary = (
        "Sentinel-2 bands and SCL from STAC onto each UTM patch: one Zarr cube per patch "
        "(time x band x y x x) with a valid mask."
    )
    Params = PatchDataParams
    default_task_s = 5.0

    def plan(self, params: PatchDataParams) -> list[Task]:
        self._scenes = _search_scenes(params)
        return super().plan(params)

    def task_for(self, tile: Tile, params: PatchDataParams) -> Task:
        footprint = tile.footprint
        mine = [record for geometry, record in self._scenes if geometry.intersects(footprint)]
        payload = {
            "bands": list(params.bands),
            "scl_mask": list(params.scl_mask),
            "resampling": params.resampling,
            "scenes": mine,
        }
        task = patch_task(self.name, tile, params, payload)
        if not mine:
            period = f"{params.start_date} to {params.end_date}"
            return replace(task, rejected=f"patch {tile.id}: no scene covers it from {period}")
        return task

    def run(self, task: Task) -> dict[str, Any]:
        return run_patch_data(task)


def _search_scenes(params: PatchDataParams) -> list[tuple[Any, dict[str, Any]]]:
    """Every scene over the area in the period, as (footprint, plain record)."""
    import shapely

    from tilefleet.recipes.scene_search import search_scenes
    from tilefleet.sources.stac import (
        MissingBandError,
        band_assets,
        item_datetime,
        item_footprint,
    )
    from tilefleet.store.stac_item import stac_datetime
    from tilefleet.tiles.tile import TileInputError

    try:
        area = params.tiles.area_geometry()
    except (TileInputError, OSError, AttributeError) as exc:
        raise JobError(f"tiles: {exc}") from None
    items = search_scenes(params, area)
    scenes = []
    for item in items:
        try:
            hrefs = band_assets(item, [*params.bands, MASK_BAND])
        except MissingBandError as exc:
            raise JobError(str(exc)) from None
        when = item_datetime(item)
        footprint = item_footprint(item)
        solar = when + timedelta(hours=shapely.centroid(footprint).x / 15.0)
        record = {
            "id": item.id,
            "datetime": stac_datetime(when),
            "solar_day": solar.date().isoformat(),
            "bands": {band: list(hrefs[band]) for band in params.bands},
            "mask": list(hrefs[MASK_BAND]),
        }
        scenes.append((footprint, record))
    return scenes


def run_patch_data(task: Task) -> dict[str, Any]:
    """Read the patch's scenes onto its grid and write its cube, then the marker."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioIOError

    from tilefleet.sources.grid_read import GridReader
    from tilefleet.store.gdal_env import gdal_config, is_missing_file
    from tilefleet.store.patch_cube import PatchCube, write_cube

    p = task.params
    tile, geobox = patch_geobox(p)
    rows = slice(0, geobox.shape.y)
    resampling = Resampling[p["resampling"]]
    days: dict[str, list[dict]] = defaultdict(list)
    for scene in sorted(p["scenes"], key=lambda s: (s["datetime"], s["id"])):
        days[scene["solar_day"]].append(scene)
    names = [*p["bands"], "SCL"]
    data = np.zeros((len(days), len(names), *geobox.shape.yx), dtype=np.uint16)
    valid = np.zeros((len(days), *geobox.shape.yx), dtype=bool)
    invalid = np.array(p["scl_mask"], dtype=np.int64)
    try:
        with rasterio.Env(**gdal_config()), GridReader(geobox) as reader:
            for t, scenes in enumerate(days.values()):
                for scene in scenes:
                    _merge_scene(
                        reader, scene, p["bands"], resampling, rows, data[t], valid[t], invalid
                    )
    except RasterioIOError as exc:
        if is_missing_file(exc) or "not recognized" in str(exc):
            raise PermanentError(f"patch {tile.id}: cannot read input: {exc}") from None
        raise
    cube = PatchCube(
        data,
        valid,
        names,
        list(days),
        tile.epsg,
        tuple(geobox.affine)[:6],
        {"tile": p["tile"], "scenes": [s["id"] for s in p["scenes"]]},
    )
    written = write_cube(task.dest, tile.id, cube)
    fraction = round(float(valid.mean()), 4) if valid.size else 0.0
    write_marker(task, {"tile": tile.id, "days": list(days), "valid_fraction": fraction})
    metrics: dict[str, Any] = {"bytes_out": written, "days": len(days), "valid_fraction": fraction}
    if not valid.any():
        metrics["warning"] = f"patch {tile.id}: no valid pixel (all masked or outside the scenes)"
    return metrics


def _merge_scene(reader, scene, bands, resampling, rows, data_t, valid_t, invalid) -> None:
    """Fill the pixels of one day that no earlier scene of that day filled. Masked pixels
    (clouds) keep their values and class too, only flagged invalid, so that a recipe
    labelling them still sees them."""
    from rasterio.enums import Resampling

    from tilefleet.sources.grid_read import BandSource

    ok, values = None, []
    for band in bands:
        href, index = scene["bands"][band]
        band_values, band_ok = reader.read(BandSource(href, index), rows, resampling)
        values.append(band_values)
        ok = band_ok if ok is None else ok & band_ok
    href, index = scene["mask"]
    classes, mask_ok = reader.read(BandSource(href, index), rows, Resampling.nearest)
    empty = ok & mask_ok & (data_t[-1] == 0)  # SCL 0 is "no data": nothing filled yet
    for b, band_values in enumerate(values):
        data_t[b][empty] = band_values[empty]
    data_t[-1][empty] = classes[empty]
    valid_t |= empty & ~np.isin(classes, invalid)
