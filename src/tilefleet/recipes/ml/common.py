"""What the per-patch recipes of the ML chain share: the patch's pixel grid, its task, the
done marker beside each output, and the folders a step reads from earlier steps."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from tilefleet.recipes.tiled_params import TiledParams
from tilefleet.store.location import StoreURL
from tilefleet.store.objects import open_store
from tilefleet.task import Task
from tilefleet.tiles.tile import Tile

MARKER_SUFFIX = ".json"


class PatchParams(TiledParams):
    """Parameters of a recipe run once per UTM patch."""

    resolution: float = Field(10.0, gt=0, description="Pixel size of the patch grids, metres")


class PatchInputParams(PatchParams):
    """A per-patch step that reads the cubes an earlier step wrote."""

    path_fields = (*PatchParams.path_fields, "input")

    input: StoreURL = Field(description="Folder (or s3:// prefix) of the earlier step's cubes")


def marker_key(tile_id: str) -> str:
    """The done marker of a patch's task: ``{tile}.json`` at the top of the step's folder,
    so one listing of that folder tells which patches are done."""
    return f"{tile_id}{MARKER_SUFFIX}"


def patch_task(recipe: str, tile: Tile, params: PatchParams, payload: dict[str, Any]) -> Task:
    """The task of one patch: its tile record, the grid's resolution and ``payload``."""
    body = {"tile": tile.as_record(), "resolution": params.resolution, **payload}
    return Task(
        tile.id, recipe, body, str(params.dest), marker_key(tile.id), source={"tile": tile.id}
    )


def patch_geobox(params: dict[str, Any]):
    """The pixel grid of a task's patch (buffer included), in the patch's UTM CRS."""
    tile = Tile.from_record(params["tile"])
    return tile, tile.geobox(params["resolution"])


def write_marker(task: Task, record: dict[str, Any]) -> None:
    """Write the task's done marker (after its outputs)."""
    open_store(task.dest).put_bytes(json.dumps(record, indent=1).encode(), task.marker)


def unbuffered_bounds(tile: Tile) -> tuple[float, float, float, float]:
    """A UTM patch's own square, without the buffer its neighbours share."""
    buffer = float(tile.attrs.get("buffer", 0.0))
    minx, miny, maxx, maxy = tile.bounds
    return minx + buffer, miny + buffer, maxx - buffer, maxy - buffer
