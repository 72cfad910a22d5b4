"""The plan of a ``mosaic`` job, made once on the client: search the STAC source, cut the
area into tiles (UTM patches, or one CRS) and make one task per tile and calendar month.

A task holds the scenes that cover its tile that month, reduced to plain records: band
hrefs resolved here, so that a worker needs no STAC access, and each scene's local solar
day, so that the task can merge the granules of one satellite pass.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from tilefleet.errors import JobError
from tilefleet.recipes.mosaic.layout import ITEM_SUFFIX, TileMonthKeys
from tilefleet.recipes.mosaic.months import month_label, months_between
from tilefleet.recipes.mosaic.params import DEFAULT_TILE_PIXELS, MosaicParams
from tilefleet.recipes.scene_search import search_scenes
from tilefleet.sources.stac.bands import MissingBandError, band_assets
from tilefleet.sources.stac.query import item_datetime, item_footprint
from tilefleet.sources.stac.signing import SignerError, load_signer
from tilefleet.store.stac_item import stac_datetime
from tilefleet.task import Task
from tilefleet.tiles.aoi import bbox_geometry, read_aoi
from tilefleet.tiles.tile import WGS84_EPSG, Tile, TileInputError, transform_geometry
from tilefleet.tiles.utm import patches_in_crs, utm_patches

log = logging.getLogger("tilefleet")

MASK_BANDS = ("scl",)  # asset keys (or band names) of a pixel classification, any case
#: Parameters every task of a job carries (the rest only plans).
TASK_PARAMS = {
    "resolution",
    "crs",
    "resampling",
    "scl_mask",
    "dtype",
    "visual",
    "visual_scale",
    "sign",
    "block_memory_mb",
    "profile",
    "collection_id",
}


def plan_tasks(params: MosaicParams, recipe: str) -> list[Task]:
    """The tasks of a job, tile by tile and month by month, for the recipe named ``recipe``."""
    try:
        load_signer(params.sign)  # fail now, not in every task, if it cannot be imported
    except SignerError as exc:
        raise JobError(str(exc)) from None
    area = search_area(params)
    items = search_scenes(params, area)
    if not items:
        raise JobError(
            f"the search found no scene from {params.start_date} to {params.end_date} "
            f"over the area ({_source(params)})"
        )
    scenes = [_Scene(item, params.bands) for item in items]
    tiles = _tiles(area, params)
    log.info("mosaic: %d scene(s) over %d tile(s)", len(scenes), len(tiles))
    # What every task carries alike, made once.
    shared = {"bands": params.bands, **params.model_dump(mode="json", include=TASK_PARAMS)}
    months = months_between(params.start_date, params.end_date)
    tasks = []
    for tile in tiles:
        footprint, record = tile.footprint, tile.as_record()
        covering = [s for s in scenes if s.geometry.intersects(footprint)]
        for month in months:
            mine = [s for s in covering if s.month == month]
            tasks.append(_task(recipe, tile.id, record, month, mine, shared, params.dest))
    return tasks


def _task(
    recipe: str,
    tile_id: str,
    tile_record: dict[str, Any],
    month: tuple[int, int],
    mine: list[_Scene],
    shared: dict[str, Any],
    dest: str,
) -> Task:
    """The task of one tile and month, given the scenes that cover it then."""
    label = month_label(month)
    keys = TileMonthKeys.of(tile_id, label)
    source = {"tile": tile_id, "month": label, "scenes": str(len(mine))}
    problems = sorted({s.problem for s in mine if s.problem})
    # A tile-month no scene covers is no failure (a winter month, the edge of a swath): its
    # task succeeds at once with a warning and writes nothing.
    rejected = f"tile {tile_id} {label}: {problems[0]}" if problems else None
    payload = {
        "tile": tile_record,
        "month": label,
        "scenes": [s.record for s in mine],
        **shared,
    }
    return Task(keys.task_id, recipe, payload, dest, keys.key(ITEM_SUFFIX), source, rejected)


class _Scene:
    """A search result reduced to what a task needs: hrefs per band, time, footprint."""

    def __init__(self, item, bands: list[str]):
        when = item_datetime(item)
        self.geometry = item_footprint(item)  # search results always have one
        self.month = (when.year, when.month)
        self.problem: str | None = None
        resolved: dict[str, list[Any]] = {}
        try:
            for band, (href, index) in band_assets(item, bands).items():
                resolved[band] = [href, index, _declared_nodata(item, href, index)]
        except MissingBandError as exc:
            self.problem = str(exc)
        mask = None
        for name in MASK_BANDS:
            try:
                ((href, index),) = band_assets(item, [name]).values()
            except MissingBandError:
                continue
            mask = [href, index]
            break
        centre = self.geometry.centroid.x
        self.record = {
            "id": item.id,
            "collection": item.collection_id,
            "datetime": stac_datetime(when),
            # Local solar date: scenes of one satellite pass share it, whatever their granule.
            "solar_day": (when + timedelta(hours=centre / 15.0)).date().isoformat(),
            "href": item.get_self_href(),
            "bands": resolved,
            "mask": mask,
        }


def _declared_nodata(item, href: str, index: int) -> float | None:
    """The nodata a STAC item declares for one band (raster extension), if any."""
    for asset in item.assets.values():
        if asset.get_absolute_href() != href and asset.href != href:
            continue
        bands = asset.extra_fields.get("raster:bands") or asset.extra_fields.get("bands") or []
        if len(bands) >= index and isinstance(bands[index - 1], dict):
            value = bands[index - 1].get("nodata", bands[index - 1].get("raster:nodata"))
            if isinstance(value, int | float) or value == "nan":
                return float(value)
    return None


def search_area(params: MosaicParams) -> BaseGeometry:
    """The job's area in lon/lat, from its bbox or its AOI file."""
    try:
        return bbox_geometry(params.bbox) if params.bbox is not None else read_aoi(params.aoi)
    except (TileInputError, OSError) as exc:
        raise JobError(f"aoi: {exc}") from None


def _tiles(area, params: MosaicParams) -> list[Tile]:
    """The output tiles: squares of the tile lattice, cut to the area's extent (an area
    smaller than a tile does not make a file mostly empty), or one tile for an area that
    fits in one, wherever it lies on the lattice."""
    size = params.tile_size or params.resolution * DEFAULT_TILE_PIXELS
    try:
        if params.crs is None:
            patches = utm_patches(area, size)
        else:
            epsg = CRS.from_user_input(params.crs).to_epsg()
            if epsg is None:
                raise TileInputError(f"crs {params.crs!r} has no EPSG code")
            patches = patches_in_crs(area, epsg, size)
    except (TileInputError, ValueError) as exc:
        raise JobError(f"tiles: {exc}") from None
    tiles = list(patches.tiles())
    extents = {
        epsg: transform_geometry(area, WGS84_EPSG, epsg).bounds for epsg in {t.epsg for t in tiles}
    }
    if len(extents) == 1:
        ((epsg, (minx, miny, maxx, maxy)),) = extents.items()
        if maxx - minx <= size and maxy - miny <= size:
            return [_projected_tile(tiles[0], (minx, miny, maxx, maxy))]
    return [_projected_tile(tile, _overlap(tile.bounds, extents[tile.epsg])) for tile in tiles]


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float, float]:
    return max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])


def _projected_tile(tile: Tile, bounds: tuple[float, float, float, float]) -> Tile:
    """``tile`` (its id and CRS) over ``bounds``, with its lon/lat outline (edges densified:
    they are curves in lon/lat)."""
    edge = max(bounds[2] - bounds[0], bounds[3] - bounds[1]) / 16 or 1.0
    square = shapely.segmentize(shapely.box(*bounds), edge)
    outline = shapely.to_wkb(transform_geometry(square, tile.epsg, WGS84_EPSG))
    return Tile(tile.id, bounds, tile.epsg, outline, tile.attrs)


def _source(params: MosaicParams) -> str:
    where = f"STAC API {params.stac_url}" if params.stac_url else f"catalog {params.catalog}"
    if params.collections:
        where += f", collections {','.join(params.collections)}"
    if params.max_cloud_cover is not None:
        where += f", cloud cover <= {params.max_cloud_cover:g}%"
    return where
