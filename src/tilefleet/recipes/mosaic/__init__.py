"""``mosaic``: monthly cloud-free median mosaics of Sentinel-2 (or any STAC imagery).

Planning (:mod:`.planning`) searches the STAC source once, cuts the area into tiles (UTM
patches, or one CRS) and makes one task per tile and calendar month (:mod:`.months`),
holding the scenes that cover it: their band hrefs, resolved on the client so a worker
needs no STAC access. A task (:mod:`.task`) reads every scene onto the tile's pixel grid
strip by strip, masks clouds with the Scene Classification Layer, takes the per-pixel
median of the valid observations (scenes of the same solar day are merged first, so
overlapping granules of one pass count once) and writes a COG, optionally an 8-bit RGBA
rendering, and a STAC item (the done marker), where :mod:`.layout` says. ``finish``
publishes a STAC collection linking every item written.

The recipe imports planning and the task where it first needs them, so that a worker
loads only what running a task takes, and a client what planning takes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from typing import Any

from tilefleet.ops.clear_sky import DEFAULT_SCL_MASK
from tilefleet.recipes.base import Recipe
from tilefleet.recipes.mosaic.layout import COLLECTION_KEY, OUTPUT_PREFIX
from tilefleet.recipes.mosaic.months import month_end, months_between
from tilefleet.recipes.mosaic.params import MosaicParams
from tilefleet.task import Task


# No class docstring: ``Recipe.describe`` would turn it into the recipe's one-line summary.
class MosaicRecipe(Recipe):
    name = "mosaic"
    summary = (
        "Monthly cloud-free median mosaics from a STAC search: one COG per tile and month, "
        "with a STAC collection."
    )
    Params = MosaicParams
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

    def finish(self, params: MosaicParams, done: list[Task]) -> None:
        """Write ``{dest}/collection.json`` linking the item of every tile-month done."""
        import pystac

        from tilefleet.recipes.mosaic.planning import search_area
        from tilefleet.store.objects import open_store

        area = search_area(params)
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
            if task.params.get("scenes")  # a month without a scene wrote no item
        ]
        open_store(params.dest).put_bytes(json.dumps(payload, indent=1).encode(), COLLECTION_KEY)

    def outputs_url(self, params: MosaicParams) -> str:
        from tilefleet.store.location import Location

        return Location.parse(params.dest).join(COLLECTION_KEY)


__all__ = [
    "COLLECTION_KEY",
    "DEFAULT_SCL_MASK",
    "OUTPUT_PREFIX",
    "MosaicParams",
    "MosaicRecipe",
    "month_end",
    "months_between",
]
