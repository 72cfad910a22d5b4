"""The planning-time STAC search of recipes whose parameters name one (``mosaic``,
``patch-data``): ``stac_url`` or ``catalog``, ``collections``, ``start_date`` and
``end_date``, ``max_cloud_cover``, ``max_items``. A search that fails is an invalid job."""

from __future__ import annotations

from typing import Any

import pystac
from shapely.geometry.base import BaseGeometry

from tilefleet.errors import JobError
from tilefleet.sources.stac import StacQuery, StacSearchError, search_items


def search_scenes(params: Any, area: BaseGeometry) -> list[pystac.Item]:
    """The items ``params``' search finds over ``area`` (lon/lat); :class:`JobError` when
    the source cannot be searched."""
    query = StacQuery(
        area,
        params.start_date,
        params.end_date,
        tuple(params.collections),
        params.max_cloud_cover,
        params.max_items,
    )
    try:
        return search_items(query, stac_url=params.stac_url, catalog=params.catalog)
    except StacSearchError as exc:
        raise JobError(str(exc)) from None
