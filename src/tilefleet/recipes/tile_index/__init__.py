"""``tile-index``: publish the tiles of a grid over an area as STAC items.

One item per tile at ``{dest}/{tile_id}.json``: the tile's footprint and attributes (TTC
indices and year, UTM zone, HEALPix order and cell), and, with ``resolution``, the pixel
grid a recipe would write for it (projection extension: code, shape, transform). A tile of
a year (TTC tiles from a request or a tiles CSV) is dated by that year (``start_datetime``
to ``end_datetime``, ``datetime`` null); other tiles by when their item was written. It is the
cheapest way to see, in any STAC browser or GIS, exactly what a tiled job will cover, and to
check that neighbouring tiles line up. ``finish`` writes ``{dest}/collection.json`` linking
every item.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pystac
from pystac.extensions.projection import ProjectionExtension
from shapely.geometry import mapping

from tilefleet.recipes.base import FINISH_METRIC, ParamsModel
from tilefleet.recipes.tiled import TiledRecipe
from tilefleet.store.objects import open_store
from tilefleet.store.stac_item import collection_links, item_extent, publish_collection
from tilefleet.task import Task
from tilefleet.tiles.tile import Tile

if TYPE_CHECKING:
    from tilefleet.recipes.tile_index.params import TileIndexParams


class TileIndexRecipe(TiledRecipe):
    name = "tile-index"
    summary = "Publish the tiles of a grid over an area as STAC items, one per tile."
    Params = ParamsModel("tilefleet.recipes.tile_index.params:TileIndexParams")
    default_task_s = 0.05

    def task_for(self, tile: Tile, params: TileIndexParams) -> Task:
        key = f"{tile.id}.json"
        payload = {
            "tile": tile.as_record(),
            "grid": params.tiles.grid,
            "resolution": params.resolution,
            "crs": params.crs,
            "collection_id": params.collection_id,
        }
        # By its import path already: the engine need not copy a million tasks to say it.
        return Task(tile.id, self.reference(), payload, params.dest, key, {"tile": tile.id})

    def run(self, task: Task) -> dict[str, Any]:
        p = task.params
        tile = Tile.from_record(p["tile"])
        footprint = tile.footprint
        properties = {
            "tilefleet:grid": p["grid"],
            **{f"tilefleet:{k}": v for k, v in tile.attrs.items()},
        }
        year = tile.attrs.get("year")
        if year is not None:  # a TTC tile of a year stands for that year, not for today
            properties["start_datetime"] = f"{year:04d}-01-01T00:00:00Z"
            properties["end_datetime"] = f"{year:04d}-12-31T23:59:59Z"
        # A grid has no acquisition time: without a year, the item is dated when written.
        when = None if year is not None else datetime.now(UTC)
        item = pystac.Item(tile.id, mapping(footprint), list(footprint.bounds), when, properties)
        if p["resolution"]:
            geobox = tile.geobox(p["resolution"], p["crs"])
            projection = ProjectionExtension.ext(item, add_if_missing=True)
            projection.code = f"EPSG:{geobox.crs.epsg}" if geobox.crs.epsg else None
            projection.shape = [geobox.shape.y, geobox.shape.x]
            projection.transform = list(geobox.transform)[:6]
        item.collection_id = p.get("collection_id", "tile-index")
        payload = item.to_dict(include_self_link=False)
        payload["links"] = collection_links(task.marker)
        body = json.dumps(payload, indent=1).encode()
        open_store(task.dest).put_bytes(body, task.marker)
        return {"bytes_out": len(body), FINISH_METRIC: item_extent(payload)}

    def finish(self, params: TileIndexParams, done: list[Task], notes: Mapping[str, Any]) -> None:
        """Write ``{dest}/collection.json`` linking every tile's item (its extents from
        what the tasks returned; the items of tiles found done by their markers are read)."""
        publish_collection(
            open_store(params.dest),
            params.collection_id,
            f"The tiles of the {params.tiles.grid} grid over an area, written by tilefleet.",
            [task.marker for task in done],
            extents={task.marker: notes[task.id] for task in done if task.id in notes},
            title="Tile index",
        )
