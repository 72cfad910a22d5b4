"""The ``s1`` product of a TTC tile: Sentinel-1 RTC quarterly VV/VH composites of one year.

The year's scenes over the tile are sorted into the four windows (Jan 15-Mar 15, Apr
15-Jun 15, Jul 15-Sep 15, Oct 15-Dec 15); one orbit direction is used (``s1_orbit``, or
with ``AUTO`` the one with more days that cover the tile fully); per quarter the (up to)
three scenes covering most of the tile (at least 95 %, else the single best) are read
bilinearly onto the tile's EPSG:4326 grid (``s1_resolution``), and their per-pixel median
(nodata ignored) is clipped to [0, 1] and scaled to uint16 (0 = nodata): an 8-band COG,
or with ``format: hkl`` the seed's hickle files (:mod:`.hkl`).

A quarter without a scene is neither zero-filled silently nor dropped: its two bands are
nodata, the item lists the quarters present and missing, and the task succeeds with a
warning naming the missing quarter(s) (listed in the run's reports). A year with no scene
at all fails with the reason.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from shapely.geometry import box

from tilefleet.errors import PermanentError
from tilefleet.ops.s1_composite import (
    S1Scene,
    choose_orbit,
    quarter_composite,
    quarter_window,
    select_quarters,
)
from tilefleet.recipes.ttc_ard.inputs import degree_grid, grid_record, read_settings
from tilefleet.recipes.ttc_ard.inputs import search as search_inputs
from tilefleet.recipes.ttc_ard.items import item_bytes, product_item
from tilefleet.recipes.ttc_ard.layout import TileYearKeys
from tilefleet.sources.grid_read import BandSource, GridReader
from tilefleet.sources.stac.bands import band_assets
from tilefleet.sources.stac.query import item_datetime, item_footprint
from tilefleet.sources.stac.signing import load_signer
from tilefleet.store.cog import cog_options, write_cog
from tilefleet.store.objects import open_store
from tilefleet.task import Task

POLARISATIONS = ("vv", "vh")


def _declared_nodata(item, key: str) -> float | None:
    bands = item.assets[key].extra_fields.get("raster:bands") or []
    if bands and isinstance(bands[0], dict) and isinstance(bands[0].get("nodata"), int | float):
        return float(bands[0]["nodata"])
    return None


def _scenes(items, footprint) -> dict[str, tuple[S1Scene, Any]]:
    scenes = {}
    for item in items:
        orbit = str(item.properties.get("sat:orbit_state", "")).upper()
        coverage = item_footprint(item).intersection(footprint).area / footprint.area
        scene = S1Scene(item.id, item_datetime(item).date(), orbit, coverage)
        scenes[item.id] = (scene, item)
    return scenes


def band_names() -> list[str]:
    """``VV_Q1 .. VV_Q4, VH_Q1 .. VH_Q4``: the output's bands, in order."""
    return [f"{pol.upper()}_Q{q}" for pol in POLARISATIONS for q in range(1, 5)]


def run_s1(task: Task) -> dict[str, Any]:
    p = task.params
    tile, year = p["tile"], p["year"]
    keys = TileYearKeys("s1", year, tile["X_tile"], tile["Y_tile"], p.get("format", "native"))
    footprint = box(*tile["bounds"])
    items = search_inputs(p, footprint, date(year, 1, 1), date(year, 12, 31))
    scenes = _scenes(items, footprint)
    orbit = choose_orbit([s for s, _ in scenes.values()], p["s1_orbit"])
    quarters = select_quarters([s for s, _ in scenes.values()], year, orbit)
    present = [q for q, chosen in quarters.items() if chosen]
    if not present:
        raise PermanentError(
            f"tile {keys.tile_id} {year}: no {orbit} {p['collection']} scene in any quarter"
        )
    grid = degree_grid(tile["bounds"], p["s1_resolution"])
    out = np.zeros((8, *grid.shape.yx), dtype=np.uint16)
    rows = slice(0, grid.shape.y)
    with (
        rasterio.Env(**read_settings(p)),
        GridReader(grid, sign=load_signer(p["sign"])) as reader,
    ):
        for quarter in present:
            chosen = [scenes[s.id][1] for s in quarters[quarter]]
            for index, pol in enumerate(POLARISATIONS):
                stack, valid = [], []
                for item in chosen:
                    ((href, band),) = band_assets(item, [pol]).values()
                    source = BandSource(href, band, _declared_nodata(item, pol))
                    values, ok = reader.read(source, rows, Resampling.bilinear)
                    stack.append(values.astype(np.float32))
                    valid.append(ok)
                out[index * 4 + quarter - 1] = quarter_composite(np.stack(stack), np.stack(valid))
    missing = [q for q in range(1, 5) if q not in present]
    return _publish(task, keys, out, grid, orbit, quarters, missing)


def _publish(task, keys, out, grid, orbit, quarters, missing) -> dict[str, Any]:
    p = task.params
    names = band_names()
    store = open_store(task.dest)
    if keys.format == "hkl":
        from tilefleet.recipes.ttc_ard.hkl import s1_arrays, write_hkl

        size = write_hkl(store, keys, s1_arrays(out))
    else:
        size = _write_cog(store, keys, out, grid, names, missing)
    sources = [s.id for q in sorted(quarters) for s in quarters[q]]
    dates = {f"Q{q}": sorted({s.day.isoformat() for s in quarters[q]}) for q in sorted(quarters)}
    item = product_item(
        keys,
        tuple(p["tile"]["bounds"]),
        grid=grid_record(grid),
        bands=[
            {
                "name": name,
                "data_type": "uint16",
                "nodata": 0,
                "tilefleet:present": int(name[-1]) not in missing,
            }
            for name in names
        ],  # fmt: skip
        lineage=(
            f"Per-quarter median of {orbit} {p['collection']} gamma naught (at most 3 "
            f"scenes a quarter, by tile coverage: {', '.join(sources)}), read bilinearly, "
            "clipped to [0, 1] x 65535 (0 = no data)"
            + (
                f"; quarter(s) {', '.join(f'Q{q}' for q in missing)} had no scene: "
                "their bands are nodata"
                if missing
                else ""
            )
        ),  # fmt: skip
        sources=sources,
        properties={
            "sat:orbit_state": orbit.lower(),
            "tilefleet:quarters_present": [q for q in range(1, 5) if q not in missing],
            "tilefleet:quarters_missing": missing,
            "tilefleet:quarter_dates": dates,
        },
        files=keys.hkl_files() if keys.format == "hkl" else None,
    )
    store.put_bytes(item_bytes(item), task.marker)  # last: marks the task done
    metrics: dict[str, Any] = {"bytes_out": size, "quarters": 4 - len(missing)}
    if missing:
        windows = ", ".join(f"Q{q} ({_window_text(keys.year, q)})" for q in missing)
        metrics["warning"] = (
            f"no {orbit} Sentinel-1 scene in {windows}: those quarters' bands are nodata"
        )
    return metrics


def _write_cog(store, keys, out, grid, names, missing) -> int:
    """The composites as an 8-band uint16 COG at ``keys.data_key``; its size in bytes."""
    with tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp:
        raw, cog = Path(tmp) / "s1.tif", Path(tmp) / "s1-cog.tif"
        profile = {
            "driver": "GTiff", "width": grid.shape.x, "height": grid.shape.y, "count": 8,
            "dtype": "uint16", "nodata": 0, "crs": "EPSG:4326", "transform": grid.affine,
            "tiled": True, "blockxsize": 256, "blockysize": 256,
        }  # fmt: skip
        with rasterio.open(raw, "w", **profile) as dst:
            dst.write(out)
            for index, name in enumerate(names, start=1):
                quarter = int(name[-1])
                dst.set_band_description(index, name + (" (missing)" if quarter in missing else ""))
        write_cog(str(raw), cog, cog_options("deflate", blocksize=256))
        size = cog.stat().st_size
        store.put_file(cog, keys.data_key, move=True)
    return size


def _window_text(year: int, quarter: int) -> str:
    first, last = quarter_window(year, quarter)
    return f"{first:%b %d}-{last:%b %d}"
