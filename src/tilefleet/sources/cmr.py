"""NASA CMR granule search, and a granule catalog (parent cell → granules) built from it.

Search: ``GET {cmr}/search/granules.umm_json`` with ``short_name``, ``version``,
``provider``, a temporal range or an ICESat-2 ``cycle[]`` (CMR knows each granule's cycle,
so no date arithmetic is guessed) and an optional ``bounding_box`` or ``polygon``. Pages
are followed with the ``CMR-Search-After`` header (CMR's replacement for offset paging,
which it caps at 1 M results and which skips or repeats items when the index changes).

Each granule's footprint (UMM-G ``GPolygons`` or ``BoundingRectangles``) is covered with
HEALPix cells at the parent order; with an AOI only the cells that also touch the AOI are
kept. Both the ``s3://`` (direct access) and ``https://`` (GET DATA) URLs are recorded.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from tilefleet.errors import TilefleetError
from tilefleet.sources.granule_catalog import GranuleCatalog
from tilefleet.sources.stac.api import brief, retry_policy
from tilefleet.tiles import healpix

NASA_CMR = "https://cmr.earthdata.nasa.gov"
PAGE_SIZE = 2000
USER_AGENT = "tilefleet-cmr"


class CmrError(TilefleetError, RuntimeError):
    """CMR answered with an error or something that is not a UMM-G result."""


@dataclass(frozen=True)
class GranuleRecord:
    """What the catalog needs of one CMR granule."""

    name: str
    s3_url: str | None
    https_url: str | None
    footprint: BaseGeometry | None


@dataclass(frozen=True)
class GranuleQuery:
    """A CMR granule search. Give ``cycle`` or both dates."""

    short_name: str = "ATL06"
    version: str = "007"
    provider: str | None = "NSIDC_CPRD"
    start_date: date | None = None
    end_date: date | None = None
    cycle: int | None = None
    bbox: tuple[float, float, float, float] | None = None
    polygon: list[tuple[float, float]] | None = None  # counter-clockwise lon/lat, closed

    def parameters(self) -> list[tuple[str, str]]:
        if self.cycle is None and (self.start_date is None or self.end_date is None):
            raise ValueError("give an ICESat-2 cycle or both a start and an end date")
        params = [("short_name", self.short_name), ("version", self.version)]
        if self.provider:
            params.append(("provider", self.provider))
        if self.cycle is not None:
            params.append(("cycle[]", str(self.cycle)))
        if self.start_date and self.end_date:
            # Whole days, end day included: the 'Dec 31 dropped' bug stays out.
            span = f"{self.start_date.isoformat()}T00:00:00Z,{self.end_date.isoformat()}T23:59:59Z"
            params.append(("temporal[]", span))
        if self.bbox:
            params.append(("bounding_box", ",".join(f"{v:g}" for v in self.bbox)))
        if self.polygon:
            params.append(("polygon", ",".join(f"{x:g},{y:g}" for x, y in self.polygon)))
        params += [("page_size", str(PAGE_SIZE)), ("sort_key", "start_date")]
        return params


def search_granules(
    query: GranuleQuery, cmr_url: str = NASA_CMR, *, retries: int = 3, timeout: float = 60
) -> Iterator[GranuleRecord]:
    """Every granule matching ``query``, page by page (``CMR-Search-After``)."""
    url = f"{cmr_url.rstrip('/')}/search/granules.umm_json?" + urllib.parse.urlencode(
        query.parameters()
    )
    search_after: str | None = None
    while True:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if search_after:
            headers["CMR-Search-After"] = search_after
        body, search_after = _get(url, headers, retries, timeout)
        items = body.get("items")
        if not isinstance(items, list):
            raise CmrError(f"CMR answer has no 'items' list: {str(body)[:200]}")
        for item in items:
            yield granule_record(item)
        if not items or not search_after:
            return


def _get(url: str, headers: dict[str, str], retries: int, timeout: float):
    """One page of a search, with the STAC reads' retry policy: 429 and 5xx retried with
    backoff, waiting what ``Retry-After`` says (CMR throttles with it)."""
    import requests
    from requests.adapters import HTTPAdapter

    with requests.Session() as session:
        session.mount(
            url.split("://", 1)[0] + "://", HTTPAdapter(max_retries=retry_policy(retries, 0.5))
        )
        try:
            answer = session.get(url, headers=headers, timeout=timeout)
        except requests.RequestException as exc:
            reason = brief(exc)
            raise CmrError(f"CMR unreachable at {url.split('?')[0]}: {reason}") from None
    if not answer.ok:
        raise CmrError(f"CMR search failed: HTTP {answer.status_code} {answer.text[:300]}")
    try:
        body = answer.json()
    except ValueError:
        raise CmrError(f"CMR answered {answer.status_code} without JSON") from None
    return body, answer.headers.get("CMR-Search-After")


def granule_record(item: dict[str, Any]) -> GranuleRecord:
    """The URLs and footprint of one UMM-G item."""
    umm = item.get("umm") or {}
    name = umm.get("GranuleUR") or (item.get("meta") or {}).get("native-id") or "?"
    s3_url = https_url = None
    for related in umm.get("RelatedUrls") or []:
        link, kind = related.get("URL", ""), related.get("Type", "")
        if not link.endswith(".h5"):
            continue
        if link.startswith("s3://") and s3_url is None:
            s3_url = link
        elif link.startswith("https://") and kind == "GET DATA" and https_url is None:
            https_url = link
    return GranuleRecord(name, s3_url, https_url, _footprint(umm))


def _footprint(umm: dict[str, Any]) -> BaseGeometry | None:
    spatial = (umm.get("SpatialExtent") or {}).get("HorizontalSpatialDomain") or {}
    geometry = spatial.get("Geometry") or {}
    shapes: list[BaseGeometry] = []
    for polygon in geometry.get("GPolygons") or []:
        points = (polygon.get("Boundary") or {}).get("Points") or []
        ring = [(p["Longitude"], p["Latitude"]) for p in points]
        if len(ring) >= 3:
            shapes.append(shapely.make_valid(Polygon(ring)))
    for rect in geometry.get("BoundingRectangles") or []:
        shapes.append(
            box(
                rect["WestBoundingCoordinate"],
                rect["SouthBoundingCoordinate"],
                rect["EastBoundingCoordinate"],
                rect["NorthBoundingCoordinate"],
            )
        )
    if not shapes:
        return None
    return shapes[0] if len(shapes) == 1 else shapely.unary_union(shapes)


def catalog_from_cmr(
    query: GranuleQuery,
    parent_order: int = 6,
    cmr_url: str = NASA_CMR,
    aoi: BaseGeometry | None = None,
) -> GranuleCatalog:
    """Search CMR and map each parent cell to the granules whose footprint crosses it."""
    allowed = None
    if aoi is not None:
        allowed = set(healpix.cells_covering(aoi, parent_order).tolist())
    cells: dict[int, list[str]] = {}
    https_urls: dict[str, str] = {}
    skipped: list[str] = []
    for granule in search_granules(query, cmr_url):
        url = granule.s3_url or granule.https_url
        if url is None or granule.footprint is None:
            skipped.append(granule.name)
            continue
        if granule.s3_url and granule.https_url:
            https_urls[granule.s3_url] = granule.https_url
        covered = healpix.cells_covering(granule.footprint, parent_order)
        for cell in np.asarray(covered).tolist():
            if allowed is None or cell in allowed:
                cells.setdefault(int(cell), []).append(url)
    metadata = {
        "source": "cmr",
        "cmr_url": cmr_url,
        "short_name": query.short_name,
        "version": query.version,
        "provider": query.provider,
        "cycle": query.cycle,
        "start_date": query.start_date.isoformat() if query.start_date else None,
        "end_date": query.end_date.isoformat() if query.end_date else None,
        "bbox": list(query.bbox) if query.bbox else None,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "https_urls": https_urls,
        "granules_without_url_or_footprint": skipped,
    }
    return GranuleCatalog(parent_order, cells, metadata)


def polygon_ring(aoi: BaseGeometry) -> list[tuple[float, float]]:
    """The counter-clockwise exterior ring CMR's ``polygon`` parameter wants (the largest
    part of a multipolygon; the catalog still clips to the whole AOI)."""
    if isinstance(aoi, MultiPolygon):
        aoi = max(aoi.geoms, key=lambda part: part.area)
    if not isinstance(aoi, Polygon):
        raise ValueError("the AOI must be a polygon")
    ring = shapely.geometry.polygon.orient(aoi, sign=1.0).exterior.coords
    return [(float(x), float(y)) for x, y in ring]
