"""One task of the ``mosaic`` recipe: the median mosaic of one tile and one month.

Strip by strip over the tile's grid: read each scene's mask and bands, merge the scenes of
one solar day (first valid pixel first), take the median over days per band, and write the
strip into local GeoTIFFs; then turn them into COGs (one per band, and the rendering),
describe them with a STAC item and upload, the item last (the done marker).

Peak memory is bounded by ``block_memory_mb`` (the strip arrays) plus GDAL's block cache,
whatever the number of scenes: strips get fewer rows as scenes get more.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from tilefleet.errors import PermanentError
from tilefleet.ops.clear_sky import clear_sky
from tilefleet.ops.day_merge import merge_first_valid
from tilefleet.ops.median import masked_median
from tilefleet.ops.true_color import true_color
from tilefleet.recipes.base import FINISH_METRIC
from tilefleet.recipes.mosaic.layout import (
    CATALOG_HREF_FROM_ITEM,
    COLLECTION_HREF_FROM_ITEM,
    VISUAL_SUFFIX,
    TileMonthKeys,
    band_suffix,
)
from tilefleet.recipes.mosaic.months import month_interval
from tilefleet.sources.grid_read import BandSource, GridReader
from tilefleet.sources.stac.bands import S2_BAND_ALIASES
from tilefleet.sources.stac.signing import load_signer
from tilefleet.store.cog import cog_options, write_cog
from tilefleet.store.gdal_env import gdal_config, is_missing_file
from tilefleet.store.objects import open_store
from tilefleet.store.stac_item import (
    eo_band,
    item_bytes,
    item_extent,
    raster_asset,
    raster_item,
    stac_datetime,
)
from tilefleet.task import Task
from tilefleet.tiles.tile import Tile

log = logging.getLogger("tilefleet")

_BLOCK = 512  # block size of the intermediate GeoTIFFs (and of the COGs)


def run_mosaic_task(task: Task) -> dict[str, Any]:
    """Compute and publish the mosaic of ``task``'s tile and month; return its metrics."""
    p = task.params
    tile = Tile.from_record(p["tile"])
    if not p["scenes"]:
        return {"warning": f"no scene covers tile {tile.id} in {p['month']}: nothing written"}
    geobox = tile.geobox(p["resolution"], p["crs"])
    days = _by_solar_day(p["scenes"])
    unmasked = [s["id"] for s in p["scenes"] if s["mask"] is None]
    sign = load_signer(p["sign"])
    with (
        rasterio.Env(**_gdal_settings(p["block_memory_mb"])),
        GridReader(geobox, sign=sign) as reader,
        tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp,
    ):
        try:
            composite = _Composite(p, reader, days, Path(tmp))
            valid = composite.write()
        except RasterioIOError as exc:
            raise _read_error(exc) from exc
        if valid == 0:
            raise PermanentError(
                f"no valid pixel in {p['month']} for tile {tile.id}: "
                f"{len(p['scenes'])} scene(s), all masked or outside the tile"
            )
        return _publish(task, composite, valid, unmasked)


def strip_rows(width: int, height: int, per_pixel_bytes: int, budget_mb: int) -> int:
    """Rows per strip so that ``per_pixel_bytes`` per grid pixel fit ``budget_mb``; whole
    multiples of 512 rows (a COG block) when the budget allows."""
    rows = max(1, (budget_mb << 20) // max(1, width * per_pixel_bytes))
    if rows >= 512:
        rows -= rows % 512
    return min(rows, height)


class _Composite:
    """The median of a tile-month, computed strip by strip into local GeoTIFFs."""

    def __init__(self, p: dict[str, Any], reader: GridReader, days: list[list[dict]], tmp: Path):
        self.p, self.reader, self.days, self.tmp = p, reader, days, tmp
        self.bands: list[str] = p["bands"]
        self.resampling = Resampling[p["resampling"]]
        first = BandSource(*p["scenes"][0]["bands"][self.bands[0]])
        self.stack_dtype = reader.dtype(first)
        source_nodata = reader.nodata(first)
        if p["dtype"] == "float32":
            self.dtype, self.nodata = np.dtype("float32"), math.nan
        else:
            self.dtype = self.stack_dtype
            self.nodata = source_nodata if source_nodata is not None else 0
        self.data_path = tmp / "data.tif"
        self.visual_path = tmp / "visual.tif" if p["visual"] else None
        self.invalid_classes = np.array(p["scl_mask"], dtype=np.int64)

    def write(self) -> int:
        """Write the composite; return how many pixels have at least one valid value."""
        geobox = self.reader.geobox
        height, width = geobox.shape.y, geobox.shape.x
        scenes = sum(len(day) for day in self.days)
        # Per grid pixel: the stack and its sorted copy, the valid flags, one mask per scene.
        per_pixel = len(self.days) * (2 * self.stack_dtype.itemsize + 1) + scenes + 16
        rows_per_strip = strip_rows(width, height, per_pixel, self.p["block_memory_mb"])
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "crs": geobox.crs.to_wkt(),
            "transform": geobox.affine,
            "tiled": True,
            "blockxsize": _BLOCK,
            "blockysize": _BLOCK,
            "BIGTIFF": "IF_SAFER",
        }
        valid_pixels = 0
        with rasterio.open(
            self.data_path,
            "w",
            count=len(self.bands),
            dtype=self.dtype,
            nodata=self.nodata,
            **profile,
        ) as data:
            visual = None
            if self.visual_path is not None:
                visual = rasterio.open(
                    self.visual_path,
                    "w",
                    count=4,
                    dtype="uint8",
                    photometric="RGB",
                    alpha="YES",  # band 4 is an alpha band, not a fourth colour
                    **profile,
                )
            try:
                for row0 in range(0, height, rows_per_strip):
                    rows = slice(row0, min(height, row0 + rows_per_strip))
                    window = Window(0, rows.start, width, rows.stop - rows.start)
                    medians, covered = self._strip(rows)
                    for index, median in enumerate(medians, start=1):
                        data.write(median, index, window=window)
                    if visual is not None:
                        rgba = true_color(*medians[:3], covered, scale=self.p["visual_scale"])
                        visual.write(rgba, window=window)
                    valid_pixels += int(covered.sum())
            finally:
                if visual is not None:
                    visual.close()
            data.update_tags(AREA_OR_POINT="Area")
            for index, band in enumerate(self.bands, start=1):
                data.set_band_description(index, band)
        return valid_pixels

    def _strip(self, rows: slice) -> tuple[list[np.ndarray], np.ndarray]:
        """The median of each band over one strip, and where any observation was valid."""
        masks: dict[int, np.ndarray | None] = {}  # per scene read: where it sees clear ground
        width = self.reader.geobox.shape.x
        shape = (len(self.days), rows.stop - rows.start, width)
        medians, covered = [], None
        for band in self.bands:
            stack = np.zeros(shape, dtype=self.stack_dtype)
            valid = np.zeros(shape, dtype=bool)
            for index, day in enumerate(self.days):
                scenes = self._observations(day, band, rows, masks)
                merge_first_valid(scenes, out=stack[index], filled=valid[index])
            medians.append(masked_median(stack, valid, dtype=self.dtype, nodata=self.nodata))
            seen = valid.any(axis=0)
            covered = seen if covered is None else covered & seen
        return medians, covered

    def _observations(
        self, day: list[dict], band: str, rows: slice, masks: dict[int, np.ndarray | None]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Each scene's values of ``band`` over ``rows`` and where they are valid and clear,
        read only when drawn (the merge stops drawing once the day is whole); each scene's
        mask is read once per strip and kept in ``masks`` for the other bands."""
        for scene in day:
            values, ok = self.reader.read(BandSource(*scene["bands"][band]), rows, self.resampling)
            if id(scene) not in masks:
                masks[id(scene)] = self._clear(scene, rows)
            clear = masks[id(scene)]
            if clear is not None:
                ok &= clear
            yield values, ok

    def _clear(self, scene: dict, rows: slice) -> np.ndarray | None:
        if scene["mask"] is None:
            return None
        href, index = scene["mask"]
        classes, ok = self.reader.read(BandSource(href, index), rows, Resampling.nearest)
        return ok & clear_sky(classes, self.invalid_classes)


def _gdal_settings(block_memory_mb: int) -> dict[str, Any]:
    """The worker's GDAL settings, with a block cache sized from the task's memory budget
    unless the user set ``GDAL_CACHEMAX``: strips follow the sources' blocks, so a large
    cache (GDAL's default is 5 % of RAM) mostly holds blocks never read again."""
    settings: dict[str, Any] = dict(gdal_config())
    if "GDAL_CACHEMAX" not in os.environ:
        settings["GDAL_CACHEMAX"] = max(16, block_memory_mb // 4)  # MB
    return settings


def _by_solar_day(scenes: list[dict]) -> list[list[dict]]:
    """The scenes grouped by local solar day, days and scenes in time order (then id)."""
    days: dict[str, list[dict]] = defaultdict(list)
    for scene in sorted(scenes, key=lambda s: (s["datetime"], s["id"])):
        days[scene["solar_day"]].append(scene)
    return list(days.values())


def _publish(task: Task, composite: _Composite, valid: int, unmasked: list[str]) -> dict:
    """Turn the composite into one COG per band (and the rendering) and upload them with
    their STAC item, the item last."""
    p = task.params
    keys = TileMonthKeys.of_task(task.id)
    files: dict[str, tuple[Path, str]] = {}  # asset key -> (local COG, key below dest)
    assets: dict[str, dict[str, Any]] = {}
    for index, band in enumerate(composite.bands, start=1):
        path = composite.tmp / f"band-{index}.tif"
        # GDAL's vrt:// names one band of the strip-written file: no copy of the others.
        write_cog(f"vrt://{composite.data_path}?bands={index}", path, cog_options(p["profile"]))
        files[band] = path, keys.key(band_suffix(band))
        assets[band] = raster_asset(
            str(path),
            keys.href(band_suffix(band)),
            title=band,
            eo_bands=[eo_band(band, S2_BAND_ALIASES.get(band.lower()))],
        )
    if composite.visual_path is not None:
        path = composite.tmp / "visual-cog.tif"
        write_cog(str(composite.visual_path), path, cog_options("deflate"))
        files["visual"] = path, keys.key(VISUAL_SUFFIX)
        assets["visual"] = raster_asset(
            str(path), keys.href(VISUAL_SUFFIX), roles=["visual"], title="8-bit RGBA rendering"
        )
    start, end = month_interval(p["month"])
    scenes = p["scenes"]
    properties = {
        "start_datetime": stac_datetime(start),
        "end_datetime": stac_datetime(end),
        "processing:lineage": (
            f"Per-pixel median of {len(scenes)} scene(s) on {len(composite.days)} day(s) "
            f"({', '.join(s['id'] for s in scenes)}), Scene Classification Layer classes "
            f"{p['scl_mask']} masked"
            + (f"; used unmasked (no mask band): {', '.join(unmasked)}" if unmasked else "")
        ),
        "processing:software": {"tilefleet": _version()},
        "tilefleet:tile": keys.tile_id,
        "tilefleet:scenes": len(scenes),
    }
    links = (
        [
            {"rel": rel, "href": COLLECTION_HREF_FROM_ITEM, "type": "application/json"}
            for rel in ("collection", "parent")
        ]
        + [{"rel": "root", "href": CATALOG_HREF_FROM_ITEM, "type": "application/json"}]
        + [
            {"rel": "derived_from", "href": s["href"], "type": "application/geo+json"}
            for s in scenes
            if s["href"]
        ]
    )
    item = raster_item(
        str(files[composite.bands[0]][0]),
        item_id=keys.item_id,
        assets=assets,
        properties=properties,
        collection=p["collection_id"],
        links=links,
    )
    dest = open_store(task.dest)
    size = sum(files[band][0].stat().st_size for band in composite.bands)
    for path, key in files.values():
        dest.put_file(path, key, move=True)
    dest.put_bytes(item_bytes(item), task.marker)  # last: marks the task done
    shape = composite.reader.geobox.shape
    metrics: dict[str, Any] = {
        "bytes_out": size,
        "scenes": len(scenes),
        "days": len(composite.days),
        "valid_fraction": round(valid / (shape.x * shape.y), 4),
        FINISH_METRIC: item_extent(item),  # the collection's extents, without a read back
    }
    if unmasked:
        metrics["warning"] = f"{len(unmasked)} scene(s) without a mask band used unmasked"
    return metrics


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tilefleet")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _read_error(exc: RasterioIOError) -> Exception:
    """A missing or unreadable input is bad input (permanent); anything else may pass."""
    if is_missing_file(exc) or "not recognized" in str(exc):  # absent, or not a raster
        return PermanentError(f"cannot read input: {' '.join(str(exc).split())}")
    return exc
