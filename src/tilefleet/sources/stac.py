"""STAC input: find the items of an area and a time range, and the asset of each band.

Items come from a STAC API (``/search`` through pystac-client, with retries on 429 and
5xx that honour ``Retry-After``) or from a static STAC document: a catalog or collection
walked through its ``child``/``item`` links, an ItemCollection, a single item or a JSON
list of items, on a local disk, behind ``file://``, on an object store (``s3://`` through
:func:`tilefleet.store.objects.open_store`) or on a web server. Either way the same query
means the same thing: the end date is inclusive (the whole day), results are sorted by
datetime then id, duplicates (same collection and id) are dropped, and every asset href is
absolute so a worker can read it from anywhere.

:func:`band_assets` maps band names (``red``, ``B04``, ``SCL``) to an asset href and a
1-based band index, whether the item names its assets after bands (Planetary Computer),
after common names (Earth Search) or holds several bands in one file (openEO).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from http import HTTPStatus
from typing import Any
from urllib.parse import urlparse

import pystac
from pystac.utils import make_absolute_href
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from tilefleet.errors import PermanentError, TilefleetError
from tilefleet.store.location import REMOTE_SCHEMES, Location

RETRY_STATUS = (429, 500, 502, 503, 504)
RETRY_AFTER_MAX_S = 300  # a server may not park a search for hours with a huge Retry-After

# Sentinel-2 MSI band ids and the STAC common names (Earth Search asset keys) they go by,
# so `B04` and `red` find the same file whichever naming a provider chose.
S2_BAND_ALIASES = {
    "b01": "coastal",
    "b02": "blue",
    "b03": "green",
    "b04": "red",
    "b05": "rededge1",
    "b06": "rededge2",
    "b07": "rededge3",
    "b08": "nir",
    "b8a": "nir08",
    "b09": "nir09",
    "b11": "swir16",
    "b12": "swir22",
}
S2_BAND_ALIASES.update({name: band for band, name in list(S2_BAND_ALIASES.items())})


class StacSearchError(TilefleetError):
    """A search could not be run or answered; the message names the API or file at fault."""


class MissingBandError(PermanentError, KeyError):
    """An item offers no asset for a requested band."""

    def __init__(self, item_id: str, band: str, available: Sequence[str]):
        super().__init__(item_id, band, tuple(available))
        self.item_id, self.band, self.available = item_id, band, tuple(available)

    def __str__(self) -> str:
        return (
            f"item {self.item_id} has no band {self.band!r}; "
            f"it offers: {', '.join(self.available) or 'no assets'}"
        )


class SignerError(PermanentError):
    """A ``module:function`` href signer that cannot be imported or called."""


@dataclass(frozen=True)
class StacQuery:
    """What to search for. ``geometry`` is in WGS84 lon/lat; both dates are inclusive.

    ``max_cloud_cover`` keeps items whose ``eo:cloud_cover`` is at most this; in static
    catalogs items without the property are kept, while a STAC API decides by itself (the
    common servers drop them). ``max_items`` keeps the earliest items.
    """

    geometry: BaseGeometry
    start: date
    end: date
    collections: tuple[str, ...] = ()
    max_cloud_cover: float | None = None
    max_items: int | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"end date {self.end} is before start date {self.start}")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(f"max_items must be at least 1, not {self.max_items}")

    @classmethod
    def from_bbox(cls, bbox: Sequence[float], start: date, end: date, **kwargs) -> StacQuery:
        """A query for a ``(west, south, east, north)`` box in lon/lat."""
        return cls(box(*bbox), start, end, **kwargs)

    @property
    def interval(self) -> tuple[datetime, datetime]:
        """The closed UTC interval: start day 00:00 to the last microsecond of the end day."""
        return (
            datetime.combine(self.start, time.min, UTC),
            datetime.combine(self.end, time.max, UTC),
        )

    @property
    def datetime_range(self) -> str:
        """The interval as STAC API ``datetime`` text."""
        start, end = self.interval
        return f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%S.%fZ}"


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
        items = _search_api(stac_url, query, retries, timeout_s, backoff_s)
    else:
        reader = _DocumentReader(retries, timeout_s, backoff_s)
        found = _catalog_items(os.fspath(catalog), reader)
        items = (item for item in found if matches(item, query))
    return _sorted_unique(items, query.max_items)


def matches(item: pystac.Item, query: StacQuery) -> bool:
    """Whether ``item`` meets every condition of ``query``."""
    if query.collections and item.collection_id not in query.collections:
        return False
    cloud = item.properties.get("eo:cloud_cover")
    if query.max_cloud_cover is not None and cloud is not None and cloud > query.max_cloud_cover:
        return False
    first, last = item_interval(item)
    start, end = query.interval
    if first > end or last < start:
        return False
    footprint = item_footprint(item)
    return footprint is not None and footprint.intersects(query.geometry)


def item_datetime(item: pystac.Item) -> datetime:
    """The item's ``datetime``, or the start of its range: what it is sorted and grouped by."""
    return item_interval(item)[0]


def item_interval(item: pystac.Item) -> tuple[datetime, datetime]:
    """The UTC time (or ``start_datetime``/``end_datetime`` range) an item covers."""
    if item.datetime is not None:
        moment = _utc(item.datetime)
        return moment, moment
    common = item.common_metadata
    if common.start_datetime is None or common.end_datetime is None:
        raise StacSearchError(f"item {item.id} has neither datetime nor start/end_datetime")
    return _utc(common.start_datetime), _utc(common.end_datetime)


def _utc(moment: datetime) -> datetime:
    # STAC requires a time zone; a naive one in the wild means UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def item_footprint(item: pystac.Item) -> BaseGeometry | None:
    """The item's geometry, else its bbox, in lon/lat (None when it has neither)."""
    if item.geometry:
        return shape(item.geometry)
    if item.bbox:  # 2D (w, s, e, n) or 3D (w, s, zmin, e, n, zmax)
        half = len(item.bbox) // 2
        return box(*item.bbox[:2], *item.bbox[half : half + 2])
    return None


def _sorted_unique(items: Iterable[pystac.Item], max_items: int | None) -> list[pystac.Item]:
    unique: dict[tuple[str | None, str], pystac.Item] = {}
    for item in items:
        unique.setdefault((item.collection_id, item.id), item)
    ordered = sorted(unique.values(), key=lambda item: (item_datetime(item), item.id))
    return ordered[:max_items] if max_items is not None else ordered


# --- STAC API --------------------------------------------------------------------------


def _retry(retries: int, backoff_s: float):
    from urllib3 import Retry

    return Retry(
        total=retries,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,  # a search POST is idempotent: retry it like a GET
        backoff_factor=backoff_s,
        backoff_jitter=backoff_s / 4,
        respect_retry_after_header=True,
        retry_after_max=RETRY_AFTER_MAX_S,
        raise_on_status=False,  # hand back the last answer, so its status can be reported
    )


def _search_api(
    url: str, query: StacQuery, retries: int, timeout_s: float, backoff_s: float
) -> list[pystac.Item]:
    from pystac_client import Client, ConformanceClasses
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO
    from pystac_client.warnings import NoConformsTo

    io = StacApiIO(timeout=timeout_s, max_retries=_retry(retries, backoff_s))
    try:
        with warnings.catch_warnings():  # a root without conformance fails just below instead
            warnings.simplefilter("ignore", NoConformsTo)
            client = Client.open(url, stac_io=io, timeout=timeout_s)
        if not client.conforms_to(ConformanceClasses.ITEM_SEARCH):
            raise StacSearchError(f"STAC API {url}: offers no item search (/search)")
        options: dict[str, Any] = {}
        server_filters_cloud = True
        if query.max_cloud_cover is not None:
            if client.conforms_to(ConformanceClasses.QUERY):
                options["query"] = {"eo:cloud_cover": {"lte": query.max_cloud_cover}}
            elif client.conforms_to(ConformanceClasses.FILTER):
                options["filter_lang"] = "cql2-json"
                options["filter"] = {
                    "op": "<=",
                    "args": [{"property": "eo:cloud_cover"}, query.max_cloud_cover],
                }
            else:
                server_filters_cloud = False
        # `max_items` means the earliest items everywhere, so the server may cap the results
        # only when it sorts them and applies every filter; otherwise all are fetched and
        # capped here, which keeps the same job picking the same items on every run.
        server_caps = server_filters_cloud and client.conforms_to(ConformanceClasses.SORT)
        if server_caps:
            options["sortby"] = "+properties.datetime,+id"
        search = client.search(
            intersects=mapping(query.geometry),
            datetime=query.datetime_range,
            collections=list(query.collections) or None,
            max_items=query.max_items if server_caps else None,
            **options,
        )
        items = list(search.items())
    except APIError as exc:
        raise StacSearchError(_api_failure(url, exc, retries)) from None
    except (pystac.STACError, ValueError, KeyError) as exc:  # HTML, JSON of another kind…
        raise StacSearchError(f"STAC API {url}: not a STAC API ({_brief(exc)})") from None
    for item in items:  # a relative asset href is relative to the item's own URL
        for asset in item.assets.values():
            asset.href = asset.get_absolute_href() or asset.href
    # Servers differ in edge cases (naive end dates, bbox-only footprints): hold every
    # result to the same rules as a static catalog.
    return [item for item in items if matches(item, query)]


_OS_ERROR = re.compile(r"\[Errno -?\d+\] [^'\")]+|Name or service not known|timed out")


def _api_failure(url: str, exc: Exception, retries: int) -> str:
    status = getattr(exc, "status_code", None)
    if status is None:
        reason = _OS_ERROR.search(str(exc))
        if reason:
            return f"STAC API {url}: unreachable ({reason.group(0)})"
        return f"STAC API {url}: not a STAC API ({_brief(exc)})"
    try:
        phrase = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        phrase = str(status)
    if status in RETRY_STATUS:
        return f"STAC API {url}: HTTP {phrase} after {retries} retries"
    return f"STAC API {url}: HTTP {phrase}: {_brief(exc)}"


def _brief(exc: Exception, limit: int = 200) -> str:
    """An error's text on one bounded line (a server's error body can be a whole page)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- static catalogs -------------------------------------------------------------------


class _DocumentReader:
    """Reads JSON documents by href: local paths, ``file://``, object stores, http(s)."""

    def __init__(self, retries: int, timeout_s: float, backoff_s: float):
        self.retries, self.timeout_s, self.backoff_s = retries, timeout_s, backoff_s
        self._session = None

    def read(self, href: str) -> Any:
        try:
            return json.loads(self._bytes(href))
        except FileNotFoundError:
            raise StacSearchError(f"STAC document {href}: not found") from None
        except json.JSONDecodeError as exc:
            raise StacSearchError(f"STAC document {href}: not JSON ({exc})") from None
        except OSError as exc:  # a folder, no permission…
            raise StacSearchError(f"STAC document {href}: {exc.strerror or _brief(exc)}") from None

    def _bytes(self, href: str) -> bytes:
        scheme = urlparse(href).scheme
        if scheme in ("http", "https"):
            return self._http(href)
        if scheme in REMOTE_SCHEMES:
            from tilefleet.store.objects import open_store

            location = Location.parse(href)
            store = open_store(f"{location.scheme}://{location.bucket}")  # one client per bucket
            try:
                return store.get_bytes(location.prefix)
            except Exception as exc:
                if "not found" in str(exc).lower() or "NotFound" in type(exc).__name__:
                    raise FileNotFoundError(href) from None
                raise StacSearchError(f"STAC document {href}: {_brief(exc)}") from None
        with open(Location.parse(href).prefix, "rb") as fh:
            return fh.read()

    def _http(self, href: str) -> bytes:
        import requests
        from requests.adapters import HTTPAdapter

        if self._session is None:
            self._session = requests.Session()
            adapter = HTTPAdapter(max_retries=_retry(self.retries, self.backoff_s))
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)
        try:
            response = self._session.get(href, timeout=self.timeout_s)
        except requests.RequestException as exc:
            reason = _OS_ERROR.search(str(exc))
            raise StacSearchError(
                f"STAC document {href}: unreachable ({reason.group(0) if reason else exc})"
            ) from None
        if response.status_code == 404:
            raise FileNotFoundError(href)
        if response.status_code >= 400:
            raise StacSearchError(
                f"STAC document {href}: HTTP {response.status_code} {response.reason}"
            )
        return response.content


def _catalog_items(href: str, reader: _DocumentReader) -> Iterator[pystac.Item]:
    """Every item reachable from the document at ``href``, asset hrefs made absolute."""
    root = _absolute(href)
    seen = {root}
    pending: list[tuple[str, str | None]] = [(root, None)]
    while pending:
        doc_href, collection_id = pending.pop()
        doc = reader.read(doc_href)
        if isinstance(doc, list):
            features = doc
        elif not isinstance(doc, dict):
            raise StacSearchError(f"STAC document {doc_href}: not a STAC object")
        elif doc.get("type") == "FeatureCollection":
            features = doc.get("features", [])
        elif doc.get("type") == "Feature":
            features = [doc]
        elif doc.get("type") in ("Catalog", "Collection"):
            features = []
            # Items linked from a collection without their own `collection` field belong to it.
            inherited = doc["id"] if doc.get("type") == "Collection" else collection_id
            for link in doc.get("links", []):
                if link.get("rel") in ("child", "item"):
                    target = make_absolute_href(link["href"], doc_href)
                    if target not in seen:
                        seen.add(target)
                        pending.append((target, inherited))
        else:
            raise StacSearchError(f"STAC document {doc_href}: not a STAC object")
        for feature in features:
            item = _item(feature, doc_href, collection_id)
            if features is not doc and doc.get("type") == "Feature":
                item.set_self_href(doc_href)  # a document of its own: lineage can link it
            yield item


def _absolute(href: str) -> str:
    if urlparse(href).scheme in ("http", "https", *REMOTE_SCHEMES):
        return href
    return Location.parse(href).prefix  # local path or file:// → absolute path


def _item(feature: dict, doc_href: str, collection_id: str | None) -> pystac.Item:
    feature = dict(feature)
    feature["assets"] = {
        key: {**asset, "href": make_absolute_href(asset["href"], doc_href)}
        for key, asset in feature.get("assets", {}).items()
    }
    if not feature.get("collection") and collection_id:
        feature["collection"] = collection_id
    try:
        return pystac.Item.from_dict(feature, migrate=True, preserve_dict=False)
    except Exception as exc:
        name = feature.get("id", "without id")
        raise StacSearchError(f"{doc_href}: item {name} is invalid ({_brief(exc)})") from None


# --- bands -----------------------------------------------------------------------------


def band_assets(item: pystac.Item, bands: Iterable[str]) -> dict[str, tuple[str, int]]:
    """For each band, the absolute href of the asset holding it and its 1-based index there.

    A band is found as an asset key (any case: ``scl`` finds ``SCL``), else as the ``name``
    or ``common_name`` of an entry in an asset's ``eo:bands`` (STAC 1.0) or ``bands``
    (STAC 1.1), data assets and single-band files first (so ``red`` is ``B04``, not the
    true-colour image). For Sentinel-2 items a band id and its common name stand for each
    other (``B04`` ↔ ``red``), as Earth Search names assets one way and Planetary Computer
    the other.
    """
    found = {}
    for band in bands:
        names = [band]
        if _is_sentinel2(item) and band.lower() in S2_BAND_ALIASES:
            names.append(S2_BAND_ALIASES[band.lower()])
        location = next(filter(None, (_find_band(item, name) for name in names)), None)
        if location is None:
            raise MissingBandError(item.id, band, _offered(item))
        found[band] = location
    return found


def _find_band(item: pystac.Item, band: str) -> tuple[str, int] | None:
    wanted = band.lower()
    if band in item.assets:
        return _href(item, band), 1
    for key in item.assets:
        if key.lower() == wanted:
            return _href(item, key), 1
    candidates = []
    for order, (key, asset) in enumerate(item.assets.items()):
        entries = _band_entries(asset)
        for index, entry in enumerate(entries):
            by_name = str(entry.get("name") or "").lower() == wanted
            by_common = str(entry.get("common_name") or "").lower() == wanted
            if by_name or by_common:
                is_data = "data" in (asset.roles or ["data"])
                rank = (not by_name, not is_data, len(entries), order)
                candidates.append((rank, key, index + 1))
    if not candidates:
        return None
    _, key, index = min(candidates)
    return _href(item, key), index


def _band_entries(asset: pystac.Asset) -> list[dict]:
    entries = asset.extra_fields.get("bands") or asset.extra_fields.get("eo:bands") or []
    return [entry for entry in entries if isinstance(entry, dict)]


def _href(item: pystac.Item, key: str) -> str:
    asset = item.assets[key]
    return asset.get_absolute_href() or asset.href


def _is_sentinel2(item: pystac.Item) -> bool:
    props = item.properties
    text = " ".join(
        str(value).lower()
        for value in (props.get("constellation"), props.get("platform"), item.collection_id)
        if value
    )
    return "sentinel-2" in text or "sentinel-s2" in text


def _offered(item: pystac.Item) -> list[str]:
    offered = []
    for key, asset in item.assets.items():
        names = [entry.get("name") or entry.get("common_name") for entry in _band_entries(asset)]
        names = [str(name) for name in names if name and str(name) != key]
        offered.append(f"{key} ({', '.join(names)})" if names else key)
    return offered


# --- signing ---------------------------------------------------------------------------


def load_signer(spec: str | None) -> Callable[[str], str] | None:
    """The href signer named ``package.module:function`` (None for none), imported where the
    hrefs are read, so the credentials it uses stay in that process's environment."""
    if not spec:
        return None
    module_name, sep, function_name = spec.partition(":")
    if not sep or not module_name or not function_name:
        raise SignerError(f"signer {spec!r} is not of the form 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SignerError(f"signer {spec!r}: cannot import {module_name} ({exc})") from None
    signer = getattr(module, function_name, None)
    if not callable(signer):
        raise SignerError(f"signer {spec!r}: {module_name} has no function {function_name}")
    return signer


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
