"""STAC input: find the items of an area and a time range, and the asset of each band.

Items come from a STAC API (:mod:`.api`: ``/search`` through pystac-client, with retries
on 429 and 5xx that honour ``Retry-After``) or from a static STAC document (:mod:`.static`:
a catalog, collection, item collection or item, local, on an object store or on a web
server). Either way the same :class:`~.query.StacQuery` means the same thing (:mod:`.query`)
and every asset href is absolute so a worker can read it from anywhere.

:func:`~.bands.band_assets` maps band names (``red``, ``B04``, ``SCL``) to an asset href and
a 1-based band index (:mod:`.bands`); :func:`~.signing.load_signer` imports the hook that
signs hrefs before they are read (:mod:`.signing`).
"""

from __future__ import annotations

import os

import pystac

from tilefleet.sources.stac.api import search_api
from tilefleet.sources.stac.bands import MissingBandError, band_assets
from tilefleet.sources.stac.query import (
    StacQuery,
    StacSearchError,
    item_datetime,
    item_footprint,
    item_interval,
    matches,
    sorted_unique,
)
from tilefleet.sources.stac.signing import SignerError, load_signer
from tilefleet.sources.stac.static import search_catalog


def search_items(
    query: StacQuery,
    *,
    stac_url: str | None = None,
    catalog: str | os.PathLike | None = None,
    retries: int = 5,
    timeout_s: float = 60,
    backoff_s: float = 1.0,
) -> list[pystac.Item]:
    """The items matching ``query`` from a STAC API (``stac_url``) or a static STAC document
    (``catalog``), sorted by datetime then id, without duplicates.

    Throttling (429) and server errors (5xx) are retried ``retries`` times, waiting what
    ``Retry-After`` says or ``backoff_s`` doubling per attempt.
    """
    if (stac_url is None) == (catalog is None):
        raise StacSearchError("give exactly one of stac_url (a STAC API) or catalog")
    if stac_url is not None:
        items = search_api(stac_url, query, retries, timeout_s, backoff_s)
    else:
        items = search_catalog(catalog, query, retries, timeout_s, backoff_s)
    return sorted_unique(items, query.max_items)


__all__ = [
    "MissingBandError",
    "SignerError",
    "StacQuery",
    "StacSearchError",
    "band_assets",
    "item_datetime",
    "item_footprint",
    "item_interval",
    "load_signer",
    "matches",
    "search_items",
]
