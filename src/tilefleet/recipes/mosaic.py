"""``mosaic``: monthly cloud-free median mosaics of Sentinel-2 (or any STAC imagery).

Planning searches the STAC source once, cuts the area into tiles (UTM patches, or one CRS)
and makes one task per tile and calendar month, holding the scenes that cover it: their
band hrefs, resolved on the client so a worker needs no STAC access. A task reads every
scene onto the tile's pixel grid strip by strip, masks clouds with the Scene
Classification Layer, takes the per-pixel median of the valid observations (scenes of the
same solar day are merged first, so overlapping granules of one pass count once) and
writes a COG, optionally an 8-bit RGBA rendering, and a STAC item (the done marker).
``finish`` publishes a STAC collection linking every item written.

Peak memory of a task is bounded by ``block_memory_mb`` (the strip arrays) plus GDAL's
block cache, whatever the number of scenes: strips get fewer rows as scenes get more.
"""

from __future__ import annotations

import calendar
import json
import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from tilefleet.task import Task
from tilefleet.errors import JobError
from tilefleet.recipes.base import Recipe, RecipeParams
from tilefleet.store.cog import COG_PROFILES, LOSSY_PROFILES
from tilefleet.tiles.tile import Tile

log = logging.getLogger("tilefleet")

#: Scene Classification Layer classes that are not clear ground: no data, saturated or
#: defective, cloud shadow, cloud medium and high probability, thin cirrus.
DEFAULT_SCL_MASK = (0, 1, 3, 8, 9, 10)
MASK_BANDS = ("scl",)  # asset keys (or band names) of a pixel classification, any case
OUTPUT_PREFIX = "monthly-mosaic-"
DEFAULT_TILE_PIXELS = 2048
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
RESAMPLING = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode")


class MosaicParams(RecipeParams):
    path_fields: ClassVar[tuple[str, ...]] = ("dest", "catalog", "aoi")

    stac_url: str | None = Field(None, description="STAC API root URL to search")
    catalog: str | None = Field(
        None, description="Static STAC catalog, collection or item collection (path or s3://)"
    )
    collections: list[str] = Field(default_factory=list, description="Collection ids to search")
    bbox: tuple[float, float, float, float] | None = Field(
        None, description="Area as lon/lat W,S,E,N (give bbox or aoi)"
    )
    aoi: str | None = Field(None, description="Area as a GeoJSON file, any CRS")
    start_date: date = Field(description="First day, YYYY-MM-DD")
    end_date: date = Field(description="Last day, YYYY-MM-DD (inclusive)")
    bands: list[str] = Field(
        min_length=1, description="Bands by asset key or eo:bands name/common name (red,nir…)"
    )
    max_cloud_cover: float | None = Field(
        None, ge=0, le=100, description="Keep scenes with eo:cloud_cover at most this (%)"
    )
    max_items: int | None = Field(None, ge=1, description="At most this many scenes in all")
    resolution: float = Field(10.0, gt=0, description="Pixel size in metres (CRS units)")
    crs: str | None = Field(None, description="One CRS for all tiles [default: UTM per zone]")
    tile_size: float | None = Field(
        None, gt=0, description=f"Tile side in CRS units [default: {DEFAULT_TILE_PIXELS} pixels]"
    )
    dest: str = Field(description="Folder or s3:// prefix for the outputs")
    resampling: Literal[RESAMPLING] = Field(  # type: ignore[valid-type]
        "nearest", description="Resampling of the bands (the mask always uses nearest)"
    )
    scl_mask: list[int] = Field(
        default_factory=lambda: list(DEFAULT_SCL_MASK),
        description="Scene Classification Layer classes treated as invalid",
    )
    dtype: Literal["float32"] | None = Field(
        None, description="Output data type [default: the input's, with its nodata]"
    )
    visual: bool = Field(False, description="Also write an 8-bit RGBA rendering of bands 1-3")
    visual_scale: float = Field(
        1e-4, gt=0, description="Factor from band values to reflectance for the rendering"
    )
    sign: str | None = Field(
        None, description="URL-signing hook package.module:function, applied before each read"
    )
    block_memory_mb: int = Field(
        256, ge=16, description="Memory for the pixel arrays of one task (strips shrink to fit)"
    )
    profile: str = Field("deflate", description="COG compression profile of the data")
    collection_id: str = Field("monthly-mosaic", description="Id of the output STAC collection")

    @field_validator("bbox", mode="before")
    @classmethod
    def _parse_bbox(cls, value: Any) -> Any:
        from tilefleet.tiles.aoi import parse_bbox
        from tilefleet.tiles.tile import TileInputError

        try:
            return None if value is None else parse_bbox(value)
        except (TileInputError, TypeError) as exc:
            raise ValueError(str(exc)) from None

    @field_validator("bands", "collections", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            return [v.strip() for item in value for v in str(item).split(",") if v.strip()]
        return value

    @field_validator("scl_mask", mode="before")
    @classmethod
    def _split_classes(cls, value: Any) -> Any:
        return value.split(",") if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> MosaicParams:
        if (self.stac_url is None) == (self.catalog is None):
            raise ValueError("give exactly one of stac_url (a STAC API) or catalog (static STAC)")
        if (self.bbox is None) == (self.aoi is None):
            raise ValueError("give exactly one of bbox (W,S,E,N) or aoi (a GeoJSON file)")
        if self.end_date < self.start_date:
            raise ValueError(
                f"end_date {self.end_date} is before start_date {self.start_date}: dates reversed?"
            )
        if self.profile not in COG_PROFILES or self.profile in LOSSY_PROFILES:
            lossless = ", ".join(p for p in COG_PROFILES if p not in LOSSY_PROFILES)
            raise ValueError(f"profile {self.profile!r}: choose a lossless one ({lossless})")
        if self.visual and len(self.bands) < 3:
            raise ValueError("visual needs three bands (red, green, blue) first in bands")
        return self


class MosaicRecipe(Recipe):
    name = "mosaic"
    Params = MosaicParams
    default_task_s = 20.0
    source_columns = ("tile", "month", "scenes")

    # planning -----------------------------------------------------------------------------

    def plan(self, params: MosaicParams) -> list[Task]:
        from tilefleet.sources.stac import (
            SignerError,
            StacQuery,
            StacSearchError,
            load_signer,
            search_items,
        )

        try:
            load_signer(params.sign)  # fail now, not in every task, if it cannot be imported
        except SignerError as exc:
            raise JobError(str(exc)) from None
        area = _area(params)
        query = StacQuery(
            area,
            params.start_date,
            params.end_date,
            tuple(params.collections),
            params.max_cloud_cover,
            params.max_items,
        )
        try:
            items = search_items(query, stac_url=params.stac_url, catalog=params.catalog)
        except StacSearchError as exc:
            raise JobError(str(exc)) from None
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
                tasks.append(self._task(tile.id, record, month, mine, shared, params.dest))
        return tasks

    def _task(
        self,
        tile_id: str,
        tile_record: dict[str, Any],
        month: tuple[int, int],
        mine: list[_Scene],
        shared: dict[str, Any],
        dest: str,
    ) -> Task:
        """The task of one tile and month, given the scenes that cover it then."""
        label = f"{month[0]:04d}-{month[1]:02d}"
        folder = f"{OUTPUT_PREFIX}{label}"
        source = {"tile": tile_id, "month": label, "scenes": str(len(mine))}
        task_id, marker = f"{folder}/{tile_id}", f"{folder}/{tile_id}.json"
        problems = sorted({s.problem for s in mine if s.problem})
        rejected = None
        if not mine:
            rejected = f"no scene covers tile {tile_id} in {label}"
        elif problems:
            rejected = f"tile {tile_id} {label}: {problems[0]}"
        payload = {
            "tile": tile_record,
            "month": label,
            "scenes": [s.record for s in mine],
            **shared,
        }
        return Task(task_id, self.name, payload, dest, marker, source, rejected)

    # running ------------------------------------------------------------------------------

    def run(self, task: Task) -> dict[str, Any]:
        from tilefleet.recipes.mosaic_task import run_mosaic_task

        return run_mosaic_task(task)

    def finish(self, params: MosaicParams, done: list[Task]) -> None:
        """Write ``{dest}/collection.json`` linking the item of every tile-month done."""
        import pystac

        from tilefleet.store.objects import open_store

        area = _area(params)
        # The searched days, both included (the end day is never past its month's end).
        start = datetime.combine(params.start_date, time.min, UTC)
        end = datetime.combine(params.end_date, time.max, UTC)
        collection = pystac.Collection(
            params.collection_id,
            f"Monthly per-pixel median mosaics of {', '.join(params.bands)} from "
            f"{params.start_date} to {params.end_date}, clouds masked with the Scene "
            "Classification Layer where scenes have one; written by tilefleet.",
            pystac.Extent(
                pystac.SpatialExtent([list(area.bounds)]),
                pystac.TemporalExtent([[start, end]]),
            ),
            title="Monthly mosaics",
            license="other",
        )
        payload = collection.to_dict(include_self_link=False, transform_hrefs=False)
        payload["links"] += [
            {"rel": "item", "href": f"./{task.marker}", "type": "application/geo+json"}
            for task in sorted(done, key=lambda t: t.marker)
        ]
        open_store(params.dest).put_bytes(json.dumps(payload, indent=1).encode(), COLLECTION_KEY)

    def outputs_url(self, params: MosaicParams) -> str:
        from tilefleet.store.location import Location

        return Location.parse(params.dest).join(COLLECTION_KEY)


COLLECTION_KEY = "collection.json"


class _Scene:
    """A search result reduced to what a task needs: hrefs per band, time, footprint."""

    def __init__(self, item, bands: list[str]):
        from tilefleet.sources.stac import (
            MissingBandError,
            band_assets,
            item_datetime,
            item_footprint,
        )
        from tilefleet.store.stac_item import stac_datetime

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


def _area(params: MosaicParams):
    from tilefleet.tiles.aoi import bbox_geometry, read_aoi
    from tilefleet.tiles.tile import TileInputError

    try:
        return bbox_geometry(params.bbox) if params.bbox is not None else read_aoi(params.aoi)
    except (TileInputError, OSError) as exc:
        raise JobError(f"aoi: {exc}") from None


def _tiles(area, params: MosaicParams) -> list[Tile]:
    from pyproj import CRS

    from tilefleet.tiles.tile import TileInputError
    from tilefleet.tiles.utm import patches_in_crs, utm_patches

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
    return list(patches.tiles())


def _source(params: MosaicParams) -> str:
    where = f"STAC API {params.stac_url}" if params.stac_url else f"catalog {params.catalog}"
    if params.collections:
        where += f", collections {','.join(params.collections)}"
    if params.max_cloud_cover is not None:
        where += f", cloud cover <= {params.max_cloud_cover:g}%"
    return where


def months_between(start: date, end: date) -> list[tuple[int, int]]:
    """Every calendar month (year, month) from the month of ``start`` to that of ``end``."""
    first, last = start.year * 12 + start.month - 1, end.year * 12 + end.month - 1
    return [(index // 12, index % 12 + 1) for index in range(first, last + 1)]


def month_end(year: int, month: int) -> datetime:
    """The last instant of a month (its last day included, 31 December too)."""
    last_day = calendar.monthrange(year, month)[1]
    return datetime(year, month, last_day, 23, 59, 59, 999999, tzinfo=UTC)


def strip_rows(width: int, height: int, per_pixel_bytes: int, budget_mb: int) -> int:
    """Rows per strip so that ``per_pixel_bytes`` per grid pixel fit ``budget_mb``; whole
    multiples of 512 rows (a COG block) when the budget allows."""
    rows = max(1, (budget_mb << 20) // max(1, width * per_pixel_bytes))
    if rows >= 512:
        rows -= rows % 512
    return min(rows, height)
