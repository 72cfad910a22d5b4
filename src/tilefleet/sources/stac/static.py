"""Search of a static STAC document: a catalog or collection walked through its
``child``/``item`` links, an ItemCollection, a single item or a JSON list of items, on a
local disk, behind ``file://``, on an object store (``s3://`` through
:func:`tilefleet.store.objects.open_store`) or on a web server.

Every asset href is made absolute, so a worker can read it from anywhere, and an item
linked from a collection without its own ``collection`` field belongs to that collection.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pystac
from pystac.utils import make_absolute_href

from tilefleet.sources.stac.api import OS_ERROR, brief, retry_policy
from tilefleet.sources.stac.query import StacQuery, StacSearchError, matches
from tilefleet.store.location import REMOTE_SCHEMES, Location


def search_catalog(
    catalog: str | os.PathLike, query: StacQuery, retries: int, timeout_s: float, backoff_s: float
) -> Iterator[pystac.Item]:
    """The items reachable from the document ``catalog`` that match ``query``, read lazily."""
    reader = DocumentReader(retries, timeout_s, backoff_s)
    found = catalog_items(os.fspath(catalog), reader)
    return (item for item in found if matches(item, query))


class DocumentReader:
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
            raise StacSearchError(f"STAC document {href}: {exc.strerror or brief(exc)}") from None

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
                raise StacSearchError(f"STAC document {href}: {brief(exc)}") from None
        with open(Location.parse(href).prefix, "rb") as fh:
            return fh.read()

    def _http(self, href: str) -> bytes:
        import requests
        from requests.adapters import HTTPAdapter

        if self._session is None:
            self._session = requests.Session()
            adapter = HTTPAdapter(max_retries=retry_policy(self.retries, self.backoff_s))
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)
        try:
            response = self._session.get(href, timeout=self.timeout_s)
        except requests.RequestException as exc:
            reason = OS_ERROR.search(str(exc))
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


def catalog_items(href: str, reader: DocumentReader) -> Iterator[pystac.Item]:
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
            features = _field(doc, "features", list, doc_href, [])
        elif doc.get("type") == "Feature":
            features = [doc]
        elif doc.get("type") in ("Catalog", "Collection"):
            features = []
            # Items linked from a collection without their own `collection` field belong to it.
            if doc.get("type") == "Collection":
                inherited = _field(doc, "id", str, doc_href)
            else:
                inherited = collection_id
            for link in _field(doc, "links", list, doc_href, []):
                if not isinstance(link, dict):
                    raise StacSearchError(f"STAC document {doc_href}: a link is not an object")
                if link.get("rel") in ("child", "item"):
                    href = _field(link, "href", str, f"{doc_href}: a {link['rel']} link")
                    target = make_absolute_href(href, doc_href)
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


_MISSING = object()


def _field(doc: dict, key: str, kind: type, where: str, default: Any = _MISSING) -> Any:
    """``doc[key]``, checked to be a ``kind``: a malformed document is one line naming it
    (the file, and what in it), never a traceback."""
    value = doc.get(key, default)
    if value is _MISSING:
        raise StacSearchError(f"STAC document {where}: no {key!r}")
    if not isinstance(value, kind):
        raise StacSearchError(
            f"STAC document {where}: {key!r} must be a {_KIND_NAMES[kind]}, got {value!r:.60}"
        )
    return value


_KIND_NAMES = {list: "list", dict: "mapping", str: "string"}


def _item(feature: Any, doc_href: str, collection_id: str | None) -> pystac.Item:
    if not isinstance(feature, dict):
        raise StacSearchError(f"STAC document {doc_href}: an item is not an object")
    name = feature.get("id", "without id")
    where = f"{doc_href}: item {name}"
    geometry = feature.get("geometry")
    if geometry is not None and not (isinstance(geometry, dict) and "type" in geometry):
        raise StacSearchError(f"STAC document {where}: its geometry is not GeoJSON")
    assets = {}
    for key, asset in _field(feature, "assets", dict, where, {}).items():
        if not isinstance(asset, dict):
            raise StacSearchError(f"STAC document {where}: asset {key!r} is not an object")
        href = _field(asset, "href", str, f"{where}, asset {key}")
        assets[key] = {**asset, "href": make_absolute_href(href, doc_href)}
    feature = {**feature, "assets": assets}
    if not feature.get("collection") and collection_id:
        feature["collection"] = collection_id
    try:
        return pystac.Item.from_dict(feature, migrate=True, preserve_dict=False)
    except Exception as exc:
        raise StacSearchError(f"{where} is invalid ({brief(exc)})") from None
