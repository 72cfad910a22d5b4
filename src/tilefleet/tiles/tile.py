"""The tile: an id and a footprint, small enough to travel inside a task to any worker.

Also the CRS look-ups and reprojections that tiles, areas and grids share; they live here,
at the bottom of ``tiles/``, so that every other module imports them one way.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from tilefleet.errors import PermanentError

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

WGS84_EPSG = 4326

# Bounds closer to a pixel edge than this fraction of a pixel are float noise, not a new pixel.
_PIXEL_SNAP_TOLERANCE = 1e-6
# Straight edges in a projected CRS are curves in lon/lat (and the reverse): split edges
# longer than this fraction of the geometry's extent before reprojecting.
_DENSIFY_FRACTION = 1 / 256


class TileInputError(PermanentError, ValueError):
    """Bad input to a tile grid (empty AOI, unreadable file, unknown id, ...): not retryable."""


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile of a grid.

    ``bounds`` are the tile's extent in its native CRS (``epsg``): lon/lat for TTC and
    HEALPix tiles (running past +-180 for a tile across the antimeridian), UTM metres for
    UTM patches. The WGS84 ``footprint`` is derived from them when they are a lon/lat box;
    otherwise it is kept as WKB in ``outline`` (cut at the antimeridian). Plain data only,
    so a tile pickles to a couple of hundred bytes.
    """

    id: str
    bounds: tuple[float, float, float, float]
    epsg: int = WGS84_EPSG
    outline: bytes | None = field(default=None, repr=False)
    attrs: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_footprint(
        cls, tile_id: str, footprint: BaseGeometry, attrs: Mapping[str, Any] | None = None
    ) -> Tile:
        """A lon/lat tile whose extent is ``footprint`` (any shape, WGS84)."""
        if footprint.is_empty:
            raise TileInputError(f"tile {tile_id}: empty footprint")
        bounds = tuple(float(v) for v in footprint.bounds)
        is_box = footprint.equals(shapely.box(*bounds))
        outline = None if is_box else shapely.to_wkb(footprint)
        return cls(tile_id, bounds, WGS84_EPSG, outline, dict(attrs or {}))

    def as_record(self) -> dict[str, Any]:
        """The tile as JSON-plain data, to travel inside a task (see :meth:`from_record`)."""
        return {
            "id": self.id,
            "bounds": list(self.bounds),
            "epsg": self.epsg,
            "outline": self.outline.hex() if self.outline else None,
            "attrs": {k: _plain(v) for k, v in self.attrs.items()},
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Tile:
        outline = bytes.fromhex(record["outline"]) if record["outline"] else None
        return cls(record["id"], tuple(record["bounds"]), record["epsg"], outline, record["attrs"])

    @property
    def footprint(self) -> BaseGeometry:
        """The tile's extent in WGS84 lon/lat."""
        if self.outline is not None:
            return shapely.from_wkb(self.outline)
        if self.epsg != WGS84_EPSG:
            raise TileInputError(f"tile {self.id}: no WGS84 outline for EPSG:{self.epsg} bounds")
        return shapely.box(*self.bounds)

    def geobox(self, resolution: float, crs: Any = None) -> GeoBox:
        """A pixel grid covering the tile, with pixel edges on multiples of ``resolution``.

        Like ``gdalwarp -tap``: the grid is snapped outwards to the resolution's lattice in
        ``crs`` (default: the tile's native CRS), so neighbouring tiles and separate runs
        share pixel edges. ``resolution`` is in units of that CRS.
        """
        from pyproj import CRS

        target = CRS.from_epsg(self.epsg) if crs is None else CRS.from_user_input(crs)
        if target.to_epsg() == self.epsg:
            bounds = self.bounds
        else:
            bounds = transform_geometry(self.footprint, WGS84_EPSG, target).bounds
        return aligned_geobox(bounds, resolution, target)


def _plain(value: Any) -> Any:
    """A numpy scalar as its Python value (JSON-plain); anything else as it is."""
    if type(value) in (int, float, str):  # most attrs: no look-up needed
        return value
    return value.item() if hasattr(value, "item") else value


def aligned_geobox(
    bounds: tuple[float, float, float, float], resolution: float, crs: Any
) -> GeoBox:
    """The smallest GeoBox on the ``resolution`` lattice of ``crs`` that covers ``bounds``."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    if not (
        isinstance(resolution, numbers.Real)
        and not isinstance(resolution, bool)
        and resolution > 0
        and math.isfinite(resolution)
    ):
        raise TileInputError(f"resolution must be a positive number, got {resolution!r}")
    minx, miny, maxx, maxy = bounds
    col0 = math.floor(minx / resolution + _PIXEL_SNAP_TOLERANCE)
    col1 = math.ceil(maxx / resolution - _PIXEL_SNAP_TOLERANCE)
    row0 = math.floor(miny / resolution + _PIXEL_SNAP_TOLERANCE)
    row1 = math.ceil(maxy / resolution - _PIXEL_SNAP_TOLERANCE)
    transform = Affine(resolution, 0.0, col0 * resolution, 0.0, -resolution, row1 * resolution)
    return GeoBox((max(row1 - row0, 1), max(col1 - col0, 1)), transform, crs)


@lru_cache(maxsize=64)
def lookup_crs(crs: Any):
    """The pyproj CRS that ``crs`` (an EPSG code, ``"EPSG:32633"``, WKT, ...) names."""
    from pyproj import CRS

    try:
        return CRS.from_user_input(crs)
    except Exception as exc:
        raise TileInputError(f"unknown CRS {crs!r}: {exc}") from exc


@lru_cache(maxsize=64)
def _transformer(source: Any, target: Any):
    from pyproj import Transformer

    return Transformer.from_crs(lookup_crs(source), lookup_crs(target), always_xy=True)


def transform_geometry(geometry: BaseGeometry, source: Any, target: Any) -> BaseGeometry:
    """``geometry`` reprojected from ``source`` to ``target`` CRS, edges densified first."""
    source, target = lookup_crs(source), lookup_crs(target)
    minx, miny, maxx, maxy = geometry.bounds
    extent = max(maxx - minx, maxy - miny)
    if extent > 0:
        geometry = shapely.segmentize(geometry, extent * _DENSIFY_FRACTION)
    transformer = _transformer(source, target)
    return shapely.transform(geometry, lambda x, y: transformer.transform(x, y), interleaved=False)


def transform_points(x: np.ndarray, y: np.ndarray, source: Any, target: Any):
    """Coordinate arrays reprojected from ``source`` to ``target`` CRS (x/y = lon/lat order)."""
    return _transformer(lookup_crs(source), lookup_crs(target)).transform(x, y)


class TileCollection(Protocol):
    """What every grid returns: a columnar set of tiles that makes ``Tile`` objects lazily."""

    warnings: tuple[str, ...]

    def __len__(self) -> int: ...

    def ids(self) -> list[str]:
        """The tile ids, in the set's order."""
        ...

    def tiles(self) -> Iterator[Tile]:
        """One ``Tile`` per row, made on demand."""
        ...

    def columns(self) -> dict[str, np.ndarray]:
        """The rows as named columns, in the order a CSV or parquet file holds them."""
        ...

    def footprints(self) -> np.ndarray:
        """WGS84 footprints (shapely geometries), one per row."""
        ...
