"""Granule catalogs: which granules cross each parent HEALPix cell.

The file format follows magg's catalog, keyed by nested cell ids instead of morton ids::

    {"metadata": {"parent_order": 6, "indexing_scheme": "nested", "total_cells": 2,
                  "granule_count": 3, "https_urls": {"s3://…h5": "https://…h5"}, …},
     "catalog": {"<nested parent id>": ["s3://…h5", …], …}}

A catalog comes from NASA CMR (:mod:`tilefleet.sources.cmr`) or from granule files a user
already has (:func:`catalog_from_files`: their good points are read and binned, so a
catalog built that way lists exactly the parents that hold data).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tilefleet.sources.atl06 import Atl06Layout, granule_parent_cells
from tilefleet.store.location import Location
from tilefleet.store.objects import open_store
from tilefleet.tiles import healpix


@dataclass
class GranuleCatalog:
    """Parent cell (nested id at ``parent_order``) → granule URLs, plus metadata."""

    parent_order: int
    cells: dict[int, list[str]]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def https_urls(self) -> dict[str, str]:
        return dict(self.metadata.get("https_urls") or {})

    def largest_first(self) -> list[int]:
        """Parents by number of granules, most first (ties by id): the long tasks start
        early, so the run has no straggling tail."""
        return sorted(self.cells, key=lambda cell: (-len(self.cells[cell]), cell))

    def to_json(self) -> dict[str, Any]:
        granules = {url for urls in self.cells.values() for url in urls}
        metadata = {
            **self.metadata,
            "parent_order": self.parent_order,
            "indexing_scheme": "nested",
            "total_cells": len(self.cells),
            "granule_count": len(granules),
        }
        catalog = {str(cell): sorted(self.cells[cell]) for cell in sorted(self.cells)}
        return {"metadata": metadata, "catalog": catalog}

    @classmethod
    def from_json(cls, data: Any, name: str = "catalog") -> GranuleCatalog:
        """Parse a catalog document; raises ValueError naming what is wrong."""
        if not isinstance(data, dict) or not isinstance(data.get("catalog"), dict):
            raise ValueError(f"{name}: not a granule catalog (no 'catalog' mapping)")
        metadata = data.get("metadata") or {}
        order = metadata.get("parent_order")
        if not isinstance(order, int):
            raise ValueError(f"{name}: metadata.parent_order must be an integer")
        if metadata.get("indexing_scheme", "nested") != "nested":
            raise ValueError(f"{name}: only nested cell ids are supported as catalog keys")
        cells: dict[int, list[str]] = {}
        limit = healpix.cell_count(order)
        for key, urls in data["catalog"].items():
            try:
                cell = int(key)
            except ValueError:
                raise ValueError(f"{name}: cell {key!r} is not an integer id") from None
            if not 0 <= cell < limit:
                raise ValueError(f"{name}: cell {key} is out of range for order {order}")
            if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                raise ValueError(f"{name}: cell {key} must list granule URLs")
            cells[cell] = list(urls)
        return cls(order, cells, dict(metadata))


def read_catalog(url: str) -> GranuleCatalog:
    """Read a catalog JSON from a local path or ``s3://`` URL; ValueError if unusable."""
    location = Location.parse(url)
    parent, _, name = location.prefix.rpartition("/")
    try:
        body = open_store(Location(location.scheme, location.bucket, parent)).get_bytes(name)
        data = json.loads(body)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read catalog {url}: {exc}") from None
    except Exception as exc:
        if type(exc).__name__ == "NotFoundError":
            raise ValueError(f"catalog {url} does not exist") from None
        raise
    return GranuleCatalog.from_json(data, name=url)


def write_catalog(catalog: GranuleCatalog, url: str) -> None:
    """Write a catalog JSON (atomically) to a local path or ``s3://`` URL."""
    location = Location.parse(url)
    parent, _, name = location.prefix.rpartition("/")
    body = json.dumps(catalog.to_json(), indent=1).encode()
    open_store(Location(location.scheme, location.bucket, parent)).put_bytes(body, name)


def catalog_from_files(
    urls: Iterable[str], parent_order: int, layout: Atl06Layout | None = None
) -> tuple[GranuleCatalog, dict[str, str]]:
    """A catalog of granules at hand (local or remote), from their good points' cells.

    Returns the catalog and, per granule that could not be read, the one-line reason (the
    caller decides whether that fails the job or only those granules).
    """
    from tilefleet.errors import one_line

    cells: dict[int, list[str]] = {}
    problems: dict[str, str] = {}
    for url in dict.fromkeys(_absolute_if_local(u) for u in urls):
        try:
            parents = granule_parent_cells(url, parent_order, layout or Atl06Layout())
        except Exception as exc:  # a bad granule is reported, the others still count
            problems[url] = one_line(exc)
            continue
        for cell in np.asarray(parents).tolist():
            cells.setdefault(int(cell), []).append(url)
    metadata = {"source": "files", "created": datetime.now(UTC).isoformat(timespec="seconds")}
    return GranuleCatalog(parent_order, cells, metadata), problems


def _absolute_if_local(url: str) -> str:
    """A local path made absolute, so the catalog works from any working directory."""
    if "://" in url:
        return url
    from pathlib import Path

    return str(Path(url).expanduser().resolve())
