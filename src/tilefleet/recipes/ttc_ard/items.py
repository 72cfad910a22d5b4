"""The STAC item of one product of one tile and year: what the output holds (bands, dates,
quarters present), where it lies (the tile square, its pixel grid as projection v2
``proj:code``/``proj:shape``/``proj:transform``) and what it was made from (the source
scenes, as ``processing:lineage``). Written last, it is the task's done marker.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any

from tilefleet.recipes.ttc_ard.layout import TileYearKeys

STAC_VERSION = "1.1.0"
PROJECTION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
PROCESSING = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
RASTER = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
ZARR = "application/vnd+zarr"
HDF5 = "application/x-hdf5"  # hickle files are HDF5


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def product_item(
    keys: TileYearKeys,
    bounds: tuple[float, float, float, float],
    *,
    grid: dict[str, Any],
    bands: list[dict[str, Any]],
    lineage: str,
    sources: list[str],
    properties: dict[str, Any] | None = None,
    media_type: str = COG,
    start: date | None = None,
    end: date | None = None,
    files: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The item (a dict) of ``keys``'s product over the lon/lat ``bounds`` of its tile.

    ``grid``: ``{"code": "EPSG:4326", "shape": [rows, cols], "transform": [6 numbers]}``;
    ``bands``: one dict per band (``name``, ``data_type``, ``nodata``, ``unit``...);
    ``sources``: ids of the scenes it was made from; ``start``/``end``: the days it covers
    (the whole year by default); ``files``: the hickle files of ``format: hkl`` (array name
    -> path beside the item), listed as one asset each in place of the one data asset.
    """
    west, south, east, north = bounds
    first = datetime.combine(start or date(keys.year, 1, 1), time.min, UTC)
    last = datetime.combine(end or date(keys.year, 12, 31), time.max, UTC)
    import tilefleet

    props = {
        "datetime": None,
        "start_datetime": _utc_text(first),
        "end_datetime": _utc_text(last),
        "created": _utc_text(datetime.now(UTC)),
        "proj:code": grid["code"],
        "proj:shape": list(grid["shape"]),
        "proj:transform": list(grid["transform"]),
        "processing:lineage": lineage,
        "processing:software": {"tilefleet": getattr(tilefleet, "__version__", "unknown")},
        "tilefleet:product": keys.product,
        "tilefleet:tile": keys.tile_id,
        "tilefleet:year": keys.year,
        "tilefleet:X_tile": keys.x_tile,
        "tilefleet:Y_tile": keys.y_tile,
        "tilefleet:sources": sources,
        **(properties or {}),
    }
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [PROJECTION, PROCESSING, RASTER],
        "id": keys.item_id,
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[west, south], [east, south], [east, north], [west, north], [west, south]]
            ],
        },
        "bbox": [west, south, east, north],
        "properties": props,
        "links": [],
        "assets": _hkl_assets(files, bands)
        if files
        else {
            "data": {"href": keys.data_href, "type": media_type, "roles": ["data"], "bands": bands}
        },
    }


def _hkl_assets(files: dict[str, str], bands: list[dict[str, Any]]) -> dict[str, Any]:
    """One asset per hickle file; the product's bands go on the first (its main array)."""
    assets = {}
    for index, (name, path) in enumerate(files.items()):
        asset: dict[str, Any] = {"href": f"./{path}", "type": HDF5, "roles": ["data"]}
        if index == 0:
            asset["bands"] = bands
        assets[name] = asset
    return assets


def item_bytes(item: dict[str, Any]) -> bytes:
    return json.dumps(item, indent=1).encode()
