"""``mosaic``: monthly cloud-free median mosaics of Sentinel-2 (or any STAC imagery).

Planning (:mod:`.planning`) searches the STAC source once, cuts the area into tiles (UTM
patches, or one CRS) and makes one task per tile and calendar month (:mod:`.months`),
holding the scenes that cover it: their band hrefs, resolved on the client so a worker
needs no STAC access. A task (:mod:`.task`) reads every scene onto the tile's pixel grid
strip by strip, masks clouds with the Scene Classification Layer, takes the per-pixel
median of the valid observations (scenes of the same solar day are merged first, so
overlapping granules of one pass count once) and writes one COG per band (as Earth
Search publishes Sentinel-2, so that odc-stac and stackstac load them by band or common
name), optionally an 8-bit RGBA rendering, and a STAC item (the done marker), where
:mod:`.layout` says. ``finish`` publishes a STAC collection linking every item written.

The recipe imports planning and the task where it first needs them, so that a worker
loads only what running a task takes, and a client what planning takes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tilefleet.ops.clear_sky import DEFAULT_SCL_MASK
from tilefleet.recipes.base import ParamsModel, Recipe
from tilefleet.recipes.mosaic.layout import CATALOG_KEY, COLLECTION_KEY, OUTPUT_PREFIX
from tilefleet.recipes.mosaic.months import month_end, months_between
from tilefleet.task import Task

if TYPE_CHECKING:
    from tilefleet.recipes.mosaic.params import MosaicParams


# No class docstring: ``Recipe.describe`` would turn it into the recipe's one-line summary.
class MosaicRecipe(Recipe):
    name = "mosaic"
    summary = (
        "Monthly cloud-free median mosaics from a STAC search: one COG per tile and month, "
        "with a STAC collection."
    )
    Params = ParamsModel("tilefleet.recipes.mosaic.params:MosaicParams")
    default_task_s = 20.0
    source_columns = ("tile", "month", "scenes")

    def plan(self, params: MosaicParams) -> list[Task]:
        from tilefleet.recipes.mosaic.planning import plan_tasks

        return plan_tasks(params, self.name)

    def task_sizes(self, params: MosaicParams, tasks: list[Task]) -> dict[str, float]:
        """Pixels read per task: the tile's pixels times its scenes."""
        sizes = {}
        for task in tasks:
            minx, miny, maxx, maxy = task.params["tile"]["bounds"]
            pixels = (maxx - minx) * (maxy - miny) / params.resolution**2
            sizes[task.id] = pixels * len(task.params["scenes"])
        return sizes

    def run(self, task: Task) -> dict[str, Any]:
        from tilefleet.recipes.mosaic.task import run_mosaic_task

        return run_mosaic_task(task)

    def finish(self, params: MosaicParams, done: list[Task], notes: Mapping[str, Any]) -> None:
        """Write ``{dest}/collection.json`` linking the item of every tile-month done, its
        extents those of the items (their footprints and months: what the tasks returned,
        else read back) and its ``item_assets`` those of the first item, and
        ``{dest}/catalog.json``, the root catalog linking it."""
        from tilefleet.store.objects import open_store
        from tilefleet.store.stac_item import (
            declared_extensions,
            extents_collection,
            item_extents,
        )

        store = open_store(params.dest)
        with_item = [task for task in done if task.params.get("scenes")]  # else none written
        written = sorted(task.marker for task in with_item)
        known = {task.marker: notes[task.id] for task in with_item if task.id in notes}
        collection = extents_collection(
            params.collection_id,
            f"Monthly per-pixel median mosaics of {', '.join(params.bands)} from "
            f"{params.start_date} to {params.end_date}, clouds masked with the Scene "
            "Classification Layer where scenes have one; one COG per band, written by "
            "tilefleet.",
            item_extents(store, written, known),
            [f"./{key}" for key in written],
            title="Monthly mosaics",
        )
        if written:
            collection["item_assets"] = _item_assets(json.loads(store.get_bytes(written[0])))
        else:  # nothing written: the extents of what was asked
            from tilefleet.recipes.mosaic.planning import search_area

            collection["extent"] = {
                "spatial": {"bbox": [list(search_area(params).bounds)]},
                "temporal": {
                    "interval": [[f"{params.start_date}T00:00:00Z", f"{params.end_date}T23:59:59Z"]]
                },
            }
        collection["stac_extensions"] = declared_extensions(collection)
        for link in collection["links"]:
            if link["rel"] == "root":
                link["href"] = f"./{CATALOG_KEY}"
        collection["links"].insert(
            1, {"rel": "parent", "href": f"./{CATALOG_KEY}", "type": "application/json"}
        )
        store.put_bytes(json.dumps(collection, indent=1).encode(), COLLECTION_KEY)
        store.put_bytes(json.dumps(_root_catalog(params), indent=1).encode(), CATALOG_KEY)

    def outputs_url(self, params: MosaicParams) -> str:
        from tilefleet.store.location import Location

        return Location.parse(params.dest).join(COLLECTION_KEY)


def _root_catalog(params: MosaicParams) -> dict[str, Any]:
    """The root catalog of the outputs: what EO Application Package runners read first."""
    import pystac

    return {
        "type": "Catalog",
        "stac_version": pystac.get_stac_version(),
        "id": f"{params.collection_id}-catalog",
        "title": "Monthly mosaics",
        "description": "Outputs of a tilefleet mosaic job: one collection of monthly mosaics.",
        "links": [
            {"rel": "root", "href": f"./{CATALOG_KEY}", "type": "application/json"},
            {"rel": "child", "href": f"./{COLLECTION_KEY}", "type": "application/json"},
        ],
    }


def _item_assets(item: dict[str, Any]) -> dict[str, Any]:
    """What every item's assets are (the collection's ``item_assets``): their roles, types
    and band names, without the per-file href and statistics."""
    kept = ("type", "roles", "title", "eo:bands")
    return {
        key: {name: value for name, value in asset.items() if name in kept}
        for key, asset in item["assets"].items()
    }


__all__ = [
    "COLLECTION_KEY",
    "DEFAULT_SCL_MASK",
    "OUTPUT_PREFIX",
    "MosaicRecipe",
    "month_end",
    "months_between",
]
