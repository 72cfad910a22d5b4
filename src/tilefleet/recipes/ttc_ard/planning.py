"""The plan of a ``ttc-ard`` job: the TTC tiles of its area (as ``tilefleet tiles ttc``
selects them) times its years times its products, one task each.

The plan holds no search results: each task searches its own inputs, over its own tile and
year, when it runs (a year of Sentinel-2 over a country is millions of items, which no
client should hold). A task carries its tile (centre, indices, bounds), its year, its
product and where to search.
"""

from __future__ import annotations

import logging
from typing import Any

from tilefleet.errors import JobError
from tilefleet.recipes.ttc_ard.layout import TileYearKeys
from tilefleet.recipes.ttc_ard.params import PRODUCTS, TtcArdParams
from tilefleet.task import Task
from tilefleet.tiles.tile import TileInputError
from tilefleet.tiles.ttc import PRODUCT_COLUMN, TILE_HALF_SIZE, TtcGrid, TtcTileSet

log = logging.getLogger("tilefleet")

#: What every task of a job carries alike (the rest only plans).
SHARED_PARAMS = {
    "stac_url",
    "catalog",
    "sign",
    "requester_pays",
    "slope_spacing",
    "s1_orbit",
    "s1_resolution",
    "s2_max_cloud_cover",
    "format",
}


def select_tiles(params: TtcArdParams) -> TtcTileSet:
    """The job's tiles, each with its year (and the products its row names, if any)."""
    area = {name: getattr(params, name) for name in ("tiles", "request", "bbox", "aoi")}
    try:
        grid = TtcGrid(
            grid="ttc",
            tiledb=params.tiledb,
            year=params.year,
            **{k: v for k, v in area.items() if v is not None},
        )
        tiles = grid.select()
    except (TileInputError, OSError, ValueError) as exc:
        raise JobError(f"tiles: {exc}") from None
    for warning in tiles.warnings:
        log.warning("tiles: %s", warning)
    if not len(tiles):
        raise JobError("tiles: no TTC tile in that area")
    if tiles.years is None:  # a tiles CSV without a Year column, and no year given
        raise JobError("tiles: the tiles have no Year column; give year")
    return tiles


def plan_tasks(params: TtcArdParams, recipe: str) -> list[Task]:
    """One task per tile, year and product, tile by tile."""
    tiles = select_tiles(params)
    shared = params.model_dump(mode="json", include=SHARED_PARAMS)
    collections = {
        "dem": params.dem_collection,
        "s1": params.s1_collection,
        "s2": params.s2_collection,
    }
    wanted_rows = tiles.products.tolist() if tiles.products is not None else [""] * len(tiles)
    rows = zip(
        tiles.x.tolist(),
        tiles.y.tolist(),
        tiles.x_tile.tolist(),
        tiles.y_tile.tolist(),
        tiles.years.tolist(),
        wanted_rows,
        strict=True,
    )
    tasks = []
    for x, y, x_tile, y_tile, year, wanted in rows:
        named = set(wanted.split(";")) - {""}
        unknown = named - set(PRODUCTS)
        products = [p for p in params.products if not named or p in named]
        tile = {  # a tile record as the report's map draws it (id, bounds, epsg) + TTC's own
            "id": f"{x_tile}X{y_tile}Y",
            "epsg": 4326,
            "X": x,
            "Y": y,
            "X_tile": x_tile,
            "Y_tile": y_tile,
            "bounds": [
                x - TILE_HALF_SIZE,
                y - TILE_HALF_SIZE,
                x + TILE_HALF_SIZE,
                y + TILE_HALF_SIZE,
            ],
        }
        for product in products:
            tasks.append(_task(recipe, product, year, tile, collections[product], shared, params))
        if unknown:
            log.warning(
                "tile %dX%dY %d: unknown product(s) %s skipped (known: %s)",
                x_tile, y_tile, year, ", ".join(sorted(unknown)), ", ".join(PRODUCTS),
            )  # fmt: skip
    if not tasks:
        raise JobError(f"no task: the tiles name none of the products {', '.join(params.products)}")
    return tasks


def _task(
    recipe: str,
    product: str,
    year: int,
    tile: dict[str, Any],
    collection: str,
    shared: dict[str, Any],
    params: TtcArdParams,
) -> Task:
    keys = TileYearKeys(product, year, tile["X_tile"], tile["Y_tile"], params.format)
    source = {
        PRODUCT_COLUMN: product,
        "Year": str(year),
        "X": repr(tile["X"]),
        "Y": repr(tile["Y"]),
        "Y_tile": str(tile["Y_tile"]),
        "X_tile": str(tile["X_tile"]),
    }
    payload = {
        "product": product,
        "year": year,
        "tile": tile,
        "collection": collection,
        **shared,
    }
    return Task(keys.task_id, recipe, payload, params.dest, keys.item_key, source)
