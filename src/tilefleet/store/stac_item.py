"""STAC items and collections describing written rasters, as the ecosystem's loaders read them.

Items carry the projection extension v2 (``proj:code``), ``raster:bands`` on every raster
asset (statistics, and a ``valid_percent`` that is right for rasters without nodata), the
eo extension's band names where an asset holds named bands, and declare every extension
they use. The item of an output doubles as its done marker: it is written after the data,
so its presence means the data is complete.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
import rasterio
from rasterio.io import DatasetReaderBase

from tilefleet.ops.band_statistics import band_statistics, valid_fraction

# pystac's values (tests check that they agree), written out so that a worker writing an
# item imports neither pystac nor rio-stac (about 0.1 s of CPU per worker): rio-stac is
# imported only where GDAL's masks give the statistics (:func:`raster_bands`).
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
STAC_VERSION = "1.1.0"
EXTENSIONS = {
    "proj:": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster:": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "eo:": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "processing:": "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
}
# The common names of the eo extension: what `odc.stac.load(bands=["red"])` finds a band by.
COMMON_NAMES = frozenset(
    [
        "pan",
        "coastal",
        "blue",
        "green",
        "green05",
        "yellow",
        "red",
        "rededge",
        "rededge071",
        "rededge075",
        "rededge078",
        "nir",
        "nir08",
        "nir09",
        "cirrus",
        "swir16",
        "swir22",
        "swir",
        "lwir",
        "lwir11",
        "lwir12",
    ]
)
_UP_LINKS = ("collection", "parent", "root")
#: Concurrent GETs that read items back for a collection: a store's request rate, not
#: its latency, then bounds the time (S3 serves 5,500 GETs a second per prefix).
ITEM_READERS = 32
#: Statistics from an overview of at most this many pixels a side.
STATS_SIZE = 1024
_TIFF_TIME = re.compile(r"^(\d{4}):(\d\d):(\d\d)[ T](\d\d):(\d\d):(\d\d)")


def raster_asset(
    local_path: str,
    href: str,
    *,
    roles: Iterable[str] = ("data",),
    title: str | None = None,
    eo_bands: Iterable[Mapping[str, str]] | None = None,
    bands: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The asset of the COG at ``local_path``, published at ``href``: its ``raster:bands``
    (``bands`` where the caller has them already: :func:`raster_bands` of a dataset with the
    same pixels and overviews), and ``eo_bands`` (``name``, ``common_name``: see
    :func:`eo_band`) as its ``eo:bands``."""
    asset: dict[str, Any] = {"href": href, "type": COG_MEDIA_TYPE, "roles": list(roles)}
    if title:
        asset["title"] = title
    if eo_bands is not None:
        asset["eo:bands"] = [dict(band) for band in eo_bands]
    if bands is None:
        with rasterio.open(local_path) as ds:
            bands = raster_bands(ds)
    asset["raster:bands"] = bands
    return asset


def raster_bands(ds: rasterio.DatasetReader, max_size: int = STATS_SIZE) -> list[dict[str, Any]]:
    """``raster:bands`` of an open raster: rio-stac's statistics (at most ``max_size``
    pixels a side: the size of an overview reads it as it is, any other is resampled from
    one), with ``valid_percent`` counted from GDAL's masks (rio-stac counts one valid pixel
    where a raster has no nodata)."""
    from rio_stac.stac import get_raster_info

    bands = get_raster_info(ds, max_size=max_size)
    shape = stats_shape(ds.height, ds.width, max_size)
    for index, band in enumerate(bands, start=1):
        mask = ds.read_masks(index, out_shape=shape)
        band.setdefault("statistics", {})["valid_percent"] = round(
            100.0 * np.count_nonzero(mask) / mask.size, 4
        )
    return bands


def raster_bands_from(ds: DatasetReaderBase, levels: np.ndarray) -> list[dict[str, Any]]:
    """:func:`raster_bands` of ``ds`` with the statistics taken in numpy from ``levels``
    (all its bands, at the size :func:`raster_bands` reads them at: an overview, or the
    pixels themselves), not read again through GDAL's masks: the same figures (to float
    rounding), 6 to 12 times faster for 8- and 16-bit bands."""
    sampling = ds.tags().get("AREA_OR_POINT", "").lower()
    bands = []
    for index, band in enumerate(levels):
        entry: dict[str, Any] = {
            "data_type": ds.dtypes[index],
            "scale": ds.scales[index],
            "offset": ds.offsets[index],
        }
        if sampling:
            entry["sampling"] = sampling
        if ds.nodata is not None:
            entry["nodata"] = _nodata_field(ds.nodata)
        if ds.units[index] is not None:
            entry["unit"] = ds.units[index]
        entry.update(band_statistics(band, ds.nodata))
        entry["statistics"]["valid_percent"] = round(100.0 * valid_fraction(band, ds.nodata), 4)
        bands.append(entry)
    return bands


def _nodata_field(nodata: float) -> float | str:
    """``nodata`` as rio-stac writes it: the value, or ``nan``, ``inf``, ``-inf``."""
    if np.isnan(nodata):
        return "nan"
    if np.isinf(nodata):
        return "inf" if nodata > 0 else "-inf"
    return nodata


def raster_item(
    grid_path: str | DatasetReaderBase,
    *,
    item_id: str,
    assets: Mapping[str, Mapping[str, Any]],
    properties: Mapping[str, Any],
    when: datetime | None = None,
    collection: str | None = None,
    links: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A STAC item (a dict) of rasters on the grid of ``grid_path`` (a path, or a raster
    open already): footprint and projection from it, ``assets`` as given (see
    :func:`raster_asset`).

    ``when`` is the item's ``datetime``; without it ``properties`` must hold
    ``start_datetime`` and ``end_datetime`` (STAC's rule for a null datetime). Rasters
    without a CRS (radar geometry, GCPs only) get an item without geometry.
    """
    opened = isinstance(grid_path, DatasetReaderBase)
    with contextlib.nullcontext(grid_path) if opened else rasterio.open(grid_path) as ds:
        georeferenced = ds.crs is not None
        if georeferenced:
            geometry, bbox = footprint(ds)
            grid = projection_fields(ds)
        else:
            geometry, bbox, grid = None, None, {}
    props = {
        "datetime": stac_datetime(when) if when is not None else None,
        **properties,
        **grid,
        "created": stac_datetime(datetime.now(UTC)),
    }
    if props["datetime"] is None and not {"start_datetime", "end_datetime"} <= props.keys():
        raise ValueError(f"item {item_id}: no datetime and no start/end datetime")
    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": item_id,
        "geometry": geometry,
        "properties": props,
        "links": [dict(link) for link in links],
        "assets": {key: dict(asset) for key, asset in assets.items()},
    }
    if bbox is not None:
        item["bbox"] = list(bbox)
    if collection is not None:
        item["collection"] = collection
    item["stac_extensions"] = declared_extensions(item)
    return item


def footprint(ds: DatasetReaderBase) -> tuple[dict[str, Any], list[float]]:
    """(GeoJSON polygon, bbox) in WGS84 of a raster with a CRS: its bounds reprojected,
    as rio-stac's ``get_dataset_geom(ds, densify_pts=0, precision=-1)`` gives them."""
    from rasterio.features import bounds as feature_bounds
    from rasterio.warp import transform_geom

    left, bottom, right, top = ds.bounds
    ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
    geometry = transform_geom(ds.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})
    return geometry, list(feature_bounds(geometry))


def projection_fields(ds: rasterio.DatasetReader) -> dict[str, Any]:
    """Projection extension v2 fields of an open raster (``proj:code`` ``EPSG:n``, or
    ``proj:wkt2`` for a CRS without an EPSG code)."""
    epsg = ds.crs.to_epsg() if ds.crs is not None else None
    fields: dict[str, Any] = {"proj:code": f"EPSG:{epsg}" if epsg else None}
    if epsg is None and ds.crs is not None:
        fields["proj:wkt2"] = ds.crs.to_wkt()
    fields["proj:bbox"] = list(ds.bounds)
    fields["proj:shape"] = [ds.height, ds.width]
    fields["proj:transform"] = list(ds.transform)[:6]
    return fields


def declared_extensions(stac: Mapping[str, Any]) -> list[str]:
    """The schema URLs of the extensions whose fields ``stac`` (an item or collection) uses,
    in its properties, its assets or its summaries."""
    keys: set[str] = set(stac.get("properties", {}))
    for asset in [*stac.get("assets", {}).values(), *stac.get("item_assets", {}).values()]:
        keys |= set(asset)
    keys |= set(stac.get("summaries", {}))
    used = [url for prefix, url in EXTENSIONS.items() if any(k.startswith(prefix) for k in keys)]
    others = [url for url in stac.get("stac_extensions", []) if url not in EXTENSIONS.values()]
    return sorted({*others, *used})


def source_datetime(ds: rasterio.DatasetReader) -> datetime | None:
    """When a raster was acquired, as its tags say: GDAL's imagery domain
    ``ACQUISITIONDATETIME``, else ``TIFFTAG_DATETIME``; None when neither parses."""
    for text in (
        ds.tags(ns="IMAGERY").get("ACQUISITIONDATETIME"),
        ds.tags().get("TIFFTAG_DATETIME"),
    ):
        if not text:
            continue
        match = _TIFF_TIME.match(text.strip())
        try:
            if match:
                return datetime(*map(int, match.groups()), tzinfo=UTC)
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def item_extent(item: Mapping[str, Any]) -> dict[str, Any]:
    """What a collection takes of an item (a dict): its ``bbox``, and its ``start`` and
    ``end`` (``start_datetime``/``end_datetime``, else ``datetime``), as the item has them;
    JSON, so that a task can return it for its recipe's ``finish`` hook."""
    props = item["properties"]
    return {
        "bbox": item.get("bbox"),
        "start": props.get("start_datetime") or props.get("datetime"),
        "end": props.get("end_datetime") or props.get("datetime"),
    }


def collection_dict(
    collection_id: str,
    description: str,
    items: Iterable[Mapping[str, Any]],
    item_hrefs: Iterable[str],
    *,
    title: str | None = None,
    license: str = "other",
) -> dict[str, Any]:
    """A STAC collection of ``items`` (dicts, linked at ``item_hrefs`` relative to the
    collection): its extents are those of the items, its extensions theirs."""
    extents = [item_extent(item) for item in items]
    return extents_collection(
        collection_id, description, extents, item_hrefs, title=title, license=license
    )


def extents_collection(
    collection_id: str,
    description: str,
    extents: Iterable[Mapping[str, Any]],
    item_hrefs: Iterable[str],
    *,
    title: str | None = None,
    license: str = "other",
) -> dict[str, Any]:
    """:func:`collection_dict` from the items' :func:`item_extent`, not the items."""
    extents = list(extents)
    boxes = [extent["bbox"] for extent in extents if extent["bbox"]]
    bbox = (
        [min(b[0] for b in boxes), min(b[1] for b in boxes)]
        + [max(b[2] for b in boxes), max(b[3] for b in boxes)]
        if boxes
        else [-180.0, -90.0, 180.0, 90.0]
    )
    starts = [extent["start"] for extent in extents if extent["start"]]
    ends = [extent["end"] for extent in extents if extent["end"]]
    interval = [
        min(starts, key=_instant) if starts else None,
        max(ends, key=_instant) if ends else None,
    ]
    collection: dict[str, Any] = {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": collection_id,
        "description": description,
        "license": license,
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}},
        "links": [
            # No self link: a relative one is not allowed, and the absolute one depends
            # on where the catalog is served from.
            {"rel": "root", "href": "./collection.json", "type": "application/json"},
        ]
        + [{"rel": "item", "href": href, "type": "application/geo+json"} for href in item_hrefs],
    }
    if title:
        collection["title"] = title
    return collection


def eo_band(name: str, common_name: str | None = None) -> dict[str, str]:
    """An ``eo:bands`` entry: ``name``, and the common name it is or that is given (a name
    that is none of the eo extension's common names is left without one)."""
    entry = {"name": name}
    common = (common_name or name).lower()
    if common in COMMON_NAMES:
        entry["common_name"] = common
    return entry


def collection_links(item_key: str, collection_key: str = "collection.json") -> list[dict]:
    """The links of the item at ``item_key`` to the collection at ``collection_key`` (both
    keys below one destination): collection, parent and root, relative."""
    up = "../" * item_key.count("/")
    href = f"{up}{collection_key}" if up else f"./{collection_key}"
    return [{"rel": rel, "href": href, "type": "application/json"} for rel in _UP_LINKS]


def publish_collection(
    store: Any,
    collection_id: str,
    description: str,
    item_keys: Iterable[str],
    *,
    extents: Mapping[str, Mapping[str, Any]] | None = None,
    title: str | None = None,
    key: str = "collection.json",
) -> dict[str, Any]:
    """Write at ``key`` in ``store`` (a :mod:`tilefleet.store.objects` store) the collection
    of the items at ``item_keys``; return it.

    Its extents are the items' own: from ``extents`` (each item's :func:`item_extent`, by
    key: what the tasks that wrote them returned), and for the other items (written by
    earlier sessions, by another run, by an earlier version) read back, by
    :data:`ITEM_READERS` concurrent GETs: an object store's latency is paid about once per
    that many items, not once per item."""
    keys = sorted(item_keys)
    collection = extents_collection(
        collection_id,
        description,
        item_extents(store, keys, extents or {}),
        [f"./{k}" for k in keys],
        title=title,
    )
    collection["stac_extensions"] = declared_extensions(collection)
    body = json.dumps(collection, indent=1).encode()
    try:
        unchanged = store.get_bytes(key) == body
    except Exception:  # absent (each store says so its own way): written below
        unchanged = False
    if not unchanged:  # a rerun that changed nothing rewrites nothing
        store.put_bytes(body, key)
    return collection


def item_extents(
    store: Any, keys: list[str], known: Mapping[str, Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The :func:`item_extent` of each item at ``keys`` of ``store``, in their order: from
    ``known`` (by key) where it has them, else from the item, read back concurrently."""
    missing = [k for k in keys if k not in known]
    read = dict(zip(missing, read_concurrently(store, missing), strict=True))
    return [known[k] if k in known else item_extent(json.loads(read[k])) for k in keys]


def read_concurrently(store: Any, keys: list[str], workers: int | None = None) -> list[bytes]:
    """The bytes at ``keys`` of ``store``, in their order, read by at most ``workers``
    (:data:`ITEM_READERS`) threads; the first error is raised."""
    workers = min(workers or ITEM_READERS, len(keys))
    if workers <= 1:
        return [store.get_bytes(item_key) for item_key in keys]
    with ThreadPoolExecutor(workers, thread_name_prefix="tilefleet-items") as pool:
        return list(pool.map(store.get_bytes, keys))


def stac_datetime(moment: datetime) -> str:
    """A UTC time as STAC writes it: RFC 3339 with ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def item_bytes(item: dict) -> bytes:
    return json.dumps(item, indent=1).encode()


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def stats_shape(height: int, width: int, size: int = STATS_SIZE) -> tuple[int, int]:
    """The overview shape rio-stac computes its statistics at."""
    if max(height, width) <= size:
        return height, width
    if height > width:
        return size, max(1, -(-size * width // height))
    return max(1, -(-size * height // width)), size
