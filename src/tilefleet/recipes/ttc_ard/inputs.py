"""What a ``ttc-ard`` task reads: its STAC search, the GDAL settings of its reads, and the
tile's own pixel grids.

Each task searches its own tile and year (never the client), through the same
``sources.stac`` search as every recipe: a STAC API (429/5xx retried, ``Retry-After``
honoured) or a static catalog. Hrefs are signed right before they are read by the job's
``sign`` hook (Planetary Computer), and ``requester_pays`` makes GDAL bill S3 reads to the
reader (the Copernicus DEM bucket).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pystac
from affine import Affine
from odc.geo.geobox import GeoBox
from shapely.geometry.base import BaseGeometry

from tilefleet.errors import RetryableError
from tilefleet.sources.stac import search_items
from tilefleet.sources.stac.query import StacQuery, StacSearchError
from tilefleet.store.gdal_env import gdal_config

#: The DEM has no time of its own worth filtering on: every item of the collection counts.
ALL_TIME = (date(1900, 1, 1), date(2200, 12, 31))


def search(
    p: dict[str, Any],
    area: BaseGeometry,
    start: date,
    end: date,
    max_cloud_cover: float | None = None,
) -> list[pystac.Item]:
    """The task's collection's items over ``area`` (lon/lat) from ``start`` to ``end``."""
    query = StacQuery(area, start, end, (p["collection"],), max_cloud_cover)
    try:
        return search_items(query, stac_url=p["stac_url"], catalog=p["catalog"])
    except StacSearchError as exc:  # the source answered nothing usable after its retries
        raise RetryableError(f"STAC search of {p['collection']} failed: {exc}") from exc


def read_settings(p: dict[str, Any]) -> dict[str, str]:
    """GDAL settings of the task's reads (endpoints from the environment, requester pays)."""
    settings = dict(gdal_config())
    if p.get("requester_pays"):
        settings["AWS_REQUEST_PAYER"] = "requester"
    return settings


def degree_grid(bounds: tuple[float, ...], resolution: float, border: int = 0) -> GeoBox:
    """The EPSG:4326 grid of ``resolution`` degrees over exactly ``bounds`` (a TTC tile is
    1/18 degree: a whole number of pixels at 1/3 or 1 arc-second), grown by ``border``
    pixels on every side."""
    west, south, east, north = bounds
    cols = round((east - west) / resolution) + 2 * border
    rows = round((north - south) / resolution) + 2 * border
    transform = Affine(
        resolution, 0, west - border * resolution, 0, -resolution, north + border * resolution
    )
    return GeoBox((rows, cols), transform, "EPSG:4326")


def grid_record(geobox: GeoBox) -> dict[str, Any]:
    """A grid as an item records it: projection v2 code, shape and transform."""
    epsg = geobox.crs.epsg
    return {
        "code": f"EPSG:{epsg}" if epsg else geobox.crs.to_wkt(),
        "shape": [geobox.shape.y, geobox.shape.x],
        "transform": list(geobox.affine)[:6],
    }
