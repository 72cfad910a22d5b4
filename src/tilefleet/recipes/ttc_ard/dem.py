"""The ``dem`` product of a TTC tile: slope in degrees from the Copernicus GLO-30 DEM.

The DEM tiles covering the tile plus a one-pixel border are read bilinearly onto the
EPSG:4326 grid of 1/3 arc-second (~10 m, 600 x 600 pixels a tile: the seed's x3 zoom of
the 1 arc-second grid), slope comes from 3x3 central differences at the true ground
spacing of each row (``slope_spacing: seed``: a fixed 10 m, as the seed pipeline), values
in (0, 0.02) are raised to 0.02, and the border is cropped. The result is a float32 COG
with its STAC item. Pixels no DEM tile covers are sea (GLO-30 has no tile over open water)
and count as 0 m, with a warning; a tile no DEM tile touches, or a slope that is not
finite, fails with the reason.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from shapely.geometry import box

from tilefleet.errors import PermanentError
from tilefleet.ops.slope import floor_small_slopes, geographic_spacing, slope_degrees
from tilefleet.recipes.ttc_ard.inputs import ALL_TIME, degree_grid, grid_record, read_settings
from tilefleet.recipes.ttc_ard.inputs import search as search_inputs
from tilefleet.recipes.ttc_ard.items import item_bytes, product_item
from tilefleet.recipes.ttc_ard.layout import TileYearKeys
from tilefleet.sources.grid_read import BandSource, GridReader
from tilefleet.sources.stac.bands import MissingBandError, band_assets
from tilefleet.sources.stac.signing import load_signer
from tilefleet.store.cog import cog_options, write_cog
from tilefleet.store.objects import open_store
from tilefleet.task import Task

RESOLUTION = 1 / 10800  # degrees: 1/3 arc-second
SEED_SPACING_M = 10.0
DEM_ASSETS = ("data", "elevation", "dem")


def elevation(p: dict[str, Any], grid) -> tuple[np.ndarray, list[str], float]:
    """(elevation in m on ``grid``, ids of the DEM items read, fraction filled as sea)."""
    west, south, east, north = grid.boundingbox
    items = search_inputs(p, box(west, south, east, north), *ALL_TIME)
    tile = p["tile"]
    if not items:
        raise PermanentError(
            f"tile {tile['X_tile']}X{tile['Y_tile']}Y: no {p['collection']} item covers it"
        )
    rows = slice(0, grid.shape.y)
    z = np.zeros(grid.shape.yx, dtype=np.float64)
    seen = np.zeros(grid.shape.yx, dtype=bool)
    used = []
    with rasterio.Env(**read_settings(p)), GridReader(grid, sign=load_signer(p["sign"])) as reader:
        for item in items:
            href, index = _dem_asset(item)
            values, valid = reader.read(BandSource(href, index), rows, Resampling.bilinear)
            new = valid & ~seen
            if new.any():
                z[new] = values[new]
                seen |= new
                used.append(item.id)
            if seen.all():
                break
    return z, used, 1.0 - float(seen.mean())


def _dem_asset(item) -> tuple[str, int]:
    for name in DEM_ASSETS:
        try:
            ((href, index),) = band_assets(item, [name]).values()
            return href, index
        except MissingBandError:
            continue
    raise PermanentError(f"DEM item {item.id} has no asset {' or '.join(DEM_ASSETS)}")


def tile_slope(z: np.ndarray, grid, spacing: str) -> np.ndarray:
    """Slope (degrees, float32) of the interior of ``z`` on ``grid`` (border cropped)."""
    if spacing == "seed":
        dx = dy = SEED_SPACING_M
    else:
        res_x, res_y = grid.affine.a, -grid.affine.e
        top = grid.affine.f
        latitudes = top - (np.arange(grid.shape.y) + 0.5) * res_y
        dx, dy = geographic_spacing(latitudes, res_x, res_y)
    return floor_small_slopes(slope_degrees(z, dx, dy))


def run_dem(task: Task) -> dict[str, Any]:
    p = task.params
    tile = p["tile"]
    keys = TileYearKeys("dem", p["year"], tile["X_tile"], tile["Y_tile"])
    grid = degree_grid(tile["bounds"], RESOLUTION, border=1)
    z, used, sea = elevation(p, grid)
    slope = tile_slope(z, grid, p["slope_spacing"])
    if not np.isfinite(slope).all():
        bad = int((~np.isfinite(slope)).sum())
        raise PermanentError(f"tile {keys.tile_id}: slope has {bad} non-finite value(s)")
    out_grid = degree_grid(tile["bounds"], RESOLUTION)
    with tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp:
        raw, cog = Path(tmp) / "slope.tif", Path(tmp) / "slope-cog.tif"
        profile = {
            "driver": "GTiff",
            "width": out_grid.shape.x,
            "height": out_grid.shape.y,
            "count": 1,
            "dtype": "float32",
            "crs": "EPSG:4326",
            "transform": out_grid.affine,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
        }
        with rasterio.open(raw, "w", **profile) as dst:
            dst.write(slope, 1)
            dst.set_band_description(1, "slope")
            dst.update_tags(AREA_OR_POINT="Area")
        write_cog(str(raw), cog, cog_options("deflate", blocksize=256))
        spacing = (
            "a fixed 10 m spacing (slope_spacing: seed)"
            if p["slope_spacing"] == "seed"
            else "the WGS84 ground spacing of each row"
        )
        item = product_item(
            keys,
            tuple(tile["bounds"]),
            grid=grid_record(out_grid),
            bands=[{"name": "slope", "data_type": "float32", "unit": "deg"}],
            lineage=(
                f"Slope in degrees from 3x3 central differences at {spacing}, of "
                f"{p['collection']} ({', '.join(used)}) read bilinearly onto a 1/3 arc-second "
                "grid; values in (0, 0.02) set to 0.02"
                + (
                    f"; {sea:.1%} of the tile outside every DEM tile, taken as sea (0 m)"
                    if sea
                    else ""
                )
            ),  # fmt: skip
            sources=used,
            properties={"tilefleet:slope_spacing": p["slope_spacing"]},
        )
        store = open_store(task.dest)
        size = cog.stat().st_size
        store.put_file(cog, keys.data_key, move=True)
        store.put_bytes(item_bytes(item), task.marker)  # last: marks the task done
    metrics: dict[str, Any] = {"bytes_out": size, "dem_items": len(used)}
    if sea:
        metrics["warning"] = f"{sea:.1%} of the tile has no DEM tile: taken as sea (0 m)"
    return metrics
