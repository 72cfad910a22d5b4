"""The ``s2`` product of a TTC tile: a cloud-screened Sentinel-2 L2A series of one year.

Stage 1 (which dates): the year's scenes with ``eo:cloud_cover`` below
``s2_max_cloud_cover`` over a box 15 times the tile, their Scene Classification Layer read
at 640 m in the tile's UTM zone (granules of one solar day merged), a global and a centre
cloud fraction per day, and the rules of :func:`~tilefleet.ops.s2_screening.select_dates`
(at most 2 a month and 24 in all, topped up to 24).

Stage 2 (the images): every scene over the tile that year, each kept date matched to one
within 3 days (full coverage first), the SCL read at 160 m on the tile, images more than
20 % bad dropped, then the 10 m bands B02 B03 B04 B08 and the 20 m bands B05 B06 B07 B8A B11
B12 read by nearest neighbour in the scenes' native UTM zone (that of the first image),
scaled to uint16 (DN / 10000 clipped to [0, 1], x 65535), with the cirrus mask (SCL 10,
despeckled) at 20 m.

Output: one Zarr v3 store with a real ``time`` coordinate (the acquisition times: 31
December is a date like any other), ``s2_10`` (time, band, y, x), ``s2_20`` (time, band,
y20, x20), ``cirrus`` (time, y20, x20) and ``day_of_year``, then its STAC item (or, with
``format: hkl``, the seed's hickle files: :mod:`.hkl`).
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.enums import Resampling
from shapely.geometry import box

from tilefleet.errors import PermanentError
from tilefleet.ops.day_merge import merge_first_valid
from tilefleet.ops.s2_screening import (
    BAD_CLASSES,
    MAX_TILE_BAD,
    Candidate,
    ScreenedScene,
    bad_fraction,
    centre_window,
    cirrus_mask,
    day_of_year,
    match_items,
    scale_reflectance,
    select_dates,
)
from tilefleet.recipes.ttc_ard.inputs import grid_record, read_settings
from tilefleet.recipes.ttc_ard.inputs import search as search_inputs
from tilefleet.recipes.ttc_ard.items import ZARR, item_bytes, product_item
from tilefleet.recipes.ttc_ard.layout import TileYearKeys
from tilefleet.recipes.ttc_ard.overviews import read_classes
from tilefleet.sources.grid_read import BandSource, GridReader
from tilefleet.sources.stac.bands import band_assets
from tilefleet.sources.stac.query import item_datetime, item_footprint
from tilefleet.sources.stac.signing import load_signer
from tilefleet.store.objects import open_store
from tilefleet.task import Task
from tilefleet.tiles.tile import aligned_geobox, transform_geometry

BANDS_10 = ("B02", "B03", "B04", "B08")
BANDS_20 = ("B05", "B06", "B07", "B8A", "B11", "B12")
SCREEN_BOX_TILES = 15  # stage 1 looks at a box this many tiles wide
SCREEN_RESOLUTION = 640.0
TILE_SCL_RESOLUTION = 160.0


def utm_epsg(lon: float, lat: float) -> int:
    zone = min(60, int((lon + 180) // 6) + 1)
    return (32600 if lat >= 0 else 32700) + zone


def _item_epsg(item) -> int | None:
    props = item.properties
    code = props.get("proj:code") or (
        f"EPSG:{props['proj:epsg']}" if props.get("proj:epsg") else None
    )
    return CRS.from_user_input(code).to_epsg() if code else None


def _solar_day(item) -> date:
    when = item_datetime(item)
    return (when + timedelta(hours=item_footprint(item).centroid.x / 15.0)).date()


class _Reader:
    """The task's reads: SCL and bands of STAC items onto a grid, hrefs signed."""

    def __init__(self, p: dict[str, Any]):
        self.sign = load_signer(p["sign"])

    def scl(self, items, grid, coarse: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """SCL of ``items`` (one solar day) merged on ``grid``: (classes, covered).
        ``coarse``: a grid much coarser than the SCL, read from its overviews where they
        hold true classes (:mod:`.overviews`)."""
        out = np.zeros(grid.shape.yx, dtype=np.uint8)
        seen = np.zeros(grid.shape.yx, dtype=bool)
        if coarse:
            reads = (read_classes(*_asset(item, "SCL"), grid, self.sign) for item in items)
            merge_first_valid(reads, out=out, filled=seen)
            return out, seen
        with GridReader(grid, sign=self.sign) as reader:
            reads = (
                reader.read(BandSource(*_asset(item, "SCL")), slice(0, grid.shape.y))
                for item in items
            )
            merge_first_valid(reads, out=out, filled=seen)
        return out, seen

    def bands(self, item, names, grid) -> tuple[np.ndarray, np.ndarray]:
        """(uint16 scaled stack (band, y, x), valid of all bands) of one item on ``grid``."""
        stack = np.zeros((len(names), *grid.shape.yx), dtype=np.uint16)
        valid_all = np.ones(grid.shape.yx, dtype=bool)
        with GridReader(grid, sign=self.sign) as reader:
            for index, name in enumerate(names):
                source = BandSource(*_asset(item, name), nodata=0)
                values, valid = reader.read(source, slice(0, grid.shape.y), Resampling.nearest)
                stack[index] = scale_reflectance(values, valid)
                valid_all &= valid
        return stack, valid_all


def _asset(item, band: str) -> tuple[str, int]:
    ((href, index),) = band_assets(item, [band]).values()
    return href, index


def screen_dates(
    p: dict[str, Any], reader: _Reader, tile: dict
) -> tuple[list[ScreenedScene], np.ndarray]:
    """Stage 1: the kept days of the year, by the cloud fractions around the tile, and the
    bad-pixel mask of every day looked at (day, y, x; the seed's ``clouds`` file)."""
    x, y, year = tile["X"], tile["Y"], p["year"]
    half = SCREEN_BOX_TILES / 36
    area = box(x - half, y - half, x + half, y + half)
    items = search_inputs(p, area, date(year, 1, 1), date(year, 12, 31), p["s2_max_cloud_cover"])
    if not items:
        raise PermanentError(
            f"tile {tile['X_tile']}X{tile['Y_tile']}Y {year}: no {p['collection']} scene with "
            f"cloud cover below {p['s2_max_cloud_cover']:g} % around it"
        )
    epsg = utm_epsg(x, y)
    grid = aligned_geobox(transform_geometry(area, 4326, epsg).bounds, SCREEN_RESOLUTION, epsg)
    days: dict[date, list] = defaultdict(list)
    for item in items:
        days[_solar_day(item)].append(item)
    scenes, bad = [], np.zeros((len(days), *grid.shape.yx), dtype=bool)
    for index, (day, day_items) in enumerate(sorted(days.items())):
        classes, covered = reader.scl(day_items, grid, coarse=True)
        classes[~covered] = 0  # outside every granule: no data, a bad class
        bad[index] = np.isin(classes, BAD_CLASSES)
        scenes.append(
            ScreenedScene(day, float(bad[index].mean()), bad_fraction(centre_window(classes)))
        )
    return select_dates(scenes), bad


def _tile_grids(bounds, epsg: int):
    area = transform_geometry(box(*bounds), 4326, epsg).bounds
    return aligned_geobox(area, 10.0, epsg), aligned_geobox(area, 20.0, epsg)


def run_s2(task: Task) -> dict[str, Any]:
    p = task.params
    tile = p["tile"]
    keys = TileYearKeys("s2", p["year"], tile["X_tile"], tile["Y_tile"], p.get("format", "native"))
    with rasterio.Env(**read_settings(p)):
        reader = _Reader(p)
        kept, stage1_bad = screen_dates(p, reader, tile)
        footprint = box(*tile["bounds"])
        year = p["year"]
        items = search_inputs(p, footprint, date(year, 1, 1), date(year, 12, 31))
        candidates = [
            Candidate(i, _solar_day(item), item_footprint(item).intersection(footprint).area
                      / footprint.area)
            for i, item in enumerate(items)
        ]  # fmt: skip
        chosen = [items[i] for i in match_items([s.day for s in kept], candidates) if i is not None]
        if not chosen:
            raise PermanentError(f"tile {keys.tile_id} {year}: no scene matches a clear date")
        epsg = _item_epsg(chosen[0]) or utm_epsg(tile["X"], tile["Y"])
        grid10, grid20 = _tile_grids(tile["bounds"], epsg)
        scl_grid = aligned_geobox(grid20.boundingbox, TILE_SCL_RESOLUTION, epsg)
        images, dropped = [], []
        for item in chosen:
            classes, covered = reader.scl([item], scl_grid, coarse=True)
            classes[~covered] = 0
            fraction = bad_fraction(classes, BAD_CLASSES)
            if fraction > MAX_TILE_BAD:
                dropped.append(f"{item.id} ({fraction:.0%} bad)")
                continue
            s10, _ = reader.bands(item, BANDS_10, grid10)
            s20, valid20 = reader.bands(item, BANDS_20, grid20)
            scl20, covered20 = reader.scl([item], grid20)
            images.append((item, s10, s20, cirrus_mask(scl20, covered20 & valid20)))
    if not images:
        raise PermanentError(
            f"tile {keys.tile_id} {year}: every matched image is more than "
            f"{MAX_TILE_BAD:.0%} cloudy on the tile ({', '.join(dropped)})"
        )
    times = [item_datetime(item).replace(tzinfo=None) for item, *_ in images]
    store = open_store(task.dest)
    if keys.format == "hkl":
        from tilefleet.recipes.ttc_ard.hkl import s2_arrays, write_hkl

        stacks = [np.stack([image[i] for image in images]) for i in (1, 2, 3)]
        kept_days = [scene.day for scene in kept]
        arrays = s2_arrays(*stacks, [t.date() for t in times], kept_days, stage1_bad, year)
        size = write_hkl(store, keys, arrays)
    else:
        size = _write_zarr(store, keys, images, times, grid10, grid20)
    return _publish(task, keys, store, size, images, times, dropped, kept, grid10)


def _write_zarr(store, keys, images, times, grid10, grid20) -> int:
    """The series as one Zarr v3 store at ``keys.data_key``; its size in bytes."""
    import xarray as xr

    days = [t.date() for t in times]
    x10, y10 = _centres(grid10)
    x20, y20 = _centres(grid20)
    dataset = xr.Dataset(
        {
            "s2_10": (("time", "band10", "y", "x"), np.stack([i[1] for i in images])),
            "s2_20": (("time", "band20", "y20", "x20"), np.stack([i[2] for i in images])),
            "cirrus": (("time", "y20", "x20"), np.stack([i[3] for i in images])),
            "day_of_year": (("time",), np.array([day_of_year(d) for d in days], np.int16)),
        },
        coords={
            "time": np.array(times, dtype="datetime64[ns]"),
            # Variable-length strings: fixed-width ones are not in the Zarr v3 spec yet.
            "band10": np.array(BANDS_10, dtype=object),
            "band20": np.array(BANDS_20, dtype=object),
            "x": x10, "y": y10, "x20": x20, "y20": y20,
            "scene": (("time",), np.array([item.id for item, *_ in images], dtype=object)),
        },
        attrs={
            "crs": f"EPSG:{grid10.crs.epsg}",
            "transform_10m": list(grid10.affine)[:6],
            "transform_20m": list(grid20.affine)[:6],
            "scale": "reflectance = value / 65535 (0 = no data)",
            "tile": keys.tile_id,
            "year": keys.year,
        },
    )  # fmt: skip
    for name in ("s2_10", "s2_20"):
        dataset[name].attrs.update(nodata=0, scale_factor_to_reflectance=1 / 65535)
    with tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp:
        local = Path(tmp) / "s2.zarr"
        encoding = {"time": {"units": "milliseconds since 1970-01-01", "dtype": "int64"}}
        dataset.to_zarr(local, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
        size = 0
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            size += path.stat().st_size
            key = f"{keys.data_key}/{path.relative_to(local).as_posix()}"
            store.put_file(path, key, move=True)
    return size


def _publish(task, keys, store, size, images, times, dropped, kept, grid10) -> dict[str, Any]:
    days = [t.date() for t in times]
    sources = [item.id for item, *_ in images]
    item = product_item(
        keys,
        tuple(task.params["tile"]["bounds"]),
        grid=grid_record(grid10),
        bands=[{"name": b, "data_type": "uint16", "nodata": 0, "gsd": 10} for b in BANDS_10]
        + [{"name": b, "data_type": "uint16", "nodata": 0, "gsd": 20} for b in BANDS_20],
        lineage=(
            f"{len(images)} cloud-screened {task.params['collection']} image(s) "
            f"({', '.join(sources)}) chosen from {len(kept)} clear date(s); "
            f"DN/10000 clipped to [0, 1] x 65535; nearest neighbour in their native UTM zone"
            + (f"; dropped as cloudy on the tile: {', '.join(dropped)}" if dropped else "")
        ),
        sources=sources,
        properties={
            "tilefleet:dates": [d.isoformat() for d in days],
            "tilefleet:day_of_year": [day_of_year(d) for d in days],
        },
        media_type=ZARR,
        start=min(days),
        end=max(days),
        files=keys.hkl_files() if keys.format == "hkl" else None,
    )
    store.put_bytes(item_bytes(item), task.marker)  # last: marks the task done
    return {"bytes_out": size, "dates": len(images), "dropped": len(dropped)}


def _centres(grid) -> tuple[np.ndarray, np.ndarray]:
    a = grid.affine
    cols = a.c + (np.arange(grid.shape.x) + 0.5) * a.a
    rows = a.f + (np.arange(grid.shape.y) + 0.5) * a.e
    return cols, rows


__all__ = ["BANDS_10", "BANDS_20", "run_s2", "screen_dates"]
