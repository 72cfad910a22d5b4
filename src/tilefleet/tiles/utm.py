"""UTM patches: an AOI split per UTM zone into square patches on a fixed per-zone lattice.

Each zone's patches sit on multiples of ``size`` metres from the zone CRS's origin, so a
patch id ``{epsg}_{col}_{row}`` names the same square in every run, whatever the AOI. A
``buffer`` grows every patch on all sides (neighbours overlap by twice the buffer); which
patches are kept is decided by the unbuffered square. Standard 6-degree zones, split at
the equator into EPSG:326xx / 327xx; the Norway and Svalbard exceptions are not applied.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
import shapely
from pydantic import Field
from shapely.geometry.base import BaseGeometry

from tilefleet.fields import Cli
from tilefleet.tiles.aoi import normalize_longitudes, wrap_to_world
from tilefleet.tiles.grid import Grid
from tilefleet.tiles.tile import (
    WGS84_EPSG,
    Tile,
    TileInputError,
    transform_geometry,
    transform_points,
)

UTM_SOUTH, UTM_NORTH = -80.0, 84.0  # latitudes UTM is defined for
ZONE_WIDTH = 6.0
# A run that would test more candidate squares than this is almost surely a unit mistake.
_MAX_CANDIDATES = 20_000_000
# Points per patch edge when drawing its WGS84 footprint (UTM squares curve in lon/lat).
_FOOTPRINT_EDGE_POINTS = 8


def utm_epsg(zone: int, north: bool) -> int:
    """EPSG code of a UTM zone (WGS84): 326zz in the north, 327zz in the south."""
    if not 1 <= zone <= 60:
        raise TileInputError(f"UTM zone must be 1..60, got {zone}")
    return (32600 if north else 32700) + zone


def utm_zone_of(lon: float) -> int:
    """The standard UTM zone number (1..60) of a longitude."""
    return min(int(math.floor((lon + 180.0) / ZONE_WIDTH)) + 1, 60)


def zone_area(zone: int, north: bool) -> BaseGeometry:
    """A UTM zone's lon/lat box (one hemisphere)."""
    west = -180.0 + (zone - 1) * ZONE_WIDTH
    south, top = (0.0, UTM_NORTH) if north else (UTM_SOUTH, 0.0)
    return shapely.box(west, south, west + ZONE_WIDTH, top)


@dataclass(frozen=True)
class UtmPatchSet:
    """Patches as columns: each row an (epsg, col, row) lattice square of ``size`` metres."""

    size: float
    buffer: float
    epsg: np.ndarray
    col: np.ndarray
    row: np.ndarray
    warnings: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.epsg)

    def ids(self) -> list[str]:
        """``{epsg}_{col}_{row}``."""
        columns = (self.epsg.tolist(), self.col.tolist(), self.row.tolist())
        return [f"{e}_{c}_{r}" for e, c, r in zip(*columns, strict=True)]

    def bounds(self) -> np.ndarray:
        """(n, 4) buffered patch bounds in each patch's own UTM CRS (metres)."""
        x0, y0 = self.col * self.size, self.row * self.size
        b = self.buffer
        return np.column_stack([x0 - b, y0 - b, x0 + self.size + b, y0 + self.size + b])

    def columns(self) -> dict[str, np.ndarray]:
        bounds = self.bounds()
        return {
            "id": np.array(self.ids(), dtype=object),
            "epsg": self.epsg,
            "col": self.col,
            "row": self.row,
            "minx": bounds[:, 0],
            "miny": bounds[:, 1],
            "maxx": bounds[:, 2],
            "maxy": bounds[:, 3],
        }

    def footprints(self) -> np.ndarray:
        """The buffered patches in WGS84, edges densified (they are curves in lon/lat)."""
        rings = _square_rings(self.bounds(), _FOOTPRINT_EDGE_POINTS)
        lon, lat = np.empty(rings.shape[:2]), np.empty(rings.shape[:2])
        for epsg in np.unique(self.epsg):
            mine = self.epsg == epsg
            x, y = transform_points(rings[mine, :, 0], rings[mine, :, 1], int(epsg), WGS84_EPSG)
            # Keep each ring's longitudes continuous from its first point (a patch in zone
            # 60 or 1 may cross the antimeridian), then cut there.
            start = x[:, :1]
            lon[mine] = start + ((x - start + 180.0) % 360.0 - 180.0)
            lat[mine] = y
        return wrap_to_world(shapely.polygons(np.stack([lon, lat], axis=2)))

    def tiles(self) -> Iterator[Tile]:
        rows = zip(
            self.ids(),
            self.bounds().tolist(),
            self.epsg.tolist(),
            self.col.tolist(),
            self.row.tolist(),
            self.footprints(),
            strict=True,
        )
        for tile_id, bounds, epsg, col, row, footprint in rows:
            attrs = {"epsg": epsg, "col": col, "row": row, "size": self.size, "buffer": self.buffer}
            yield Tile(tile_id, tuple(bounds), epsg, shapely.to_wkb(footprint), attrs)


def _square_rings(bounds: np.ndarray, per_edge: int) -> np.ndarray:
    """(n, 4 * per_edge + 1, 2) closed counter-clockwise rings along each box's edges."""
    t = np.arange(per_edge) / per_edge
    minx, miny, maxx, maxy = (bounds[:, i : i + 1] for i in range(4))
    w, h = maxx - minx, maxy - miny
    x = np.concatenate([minx + w * t, maxx + 0 * t, maxx - w * t, minx + 0 * t, minx], axis=1)
    y = np.concatenate([miny + 0 * t, miny + h * t, maxy + 0 * t, maxy - h * t, miny], axis=1)
    return np.stack([x, y], axis=2)


def utm_patches(aoi: BaseGeometry, size: float, buffer: float = 0.0) -> UtmPatchSet:
    """The patches of ``size`` metres (plus ``buffer``) that intersect ``aoi`` (lon/lat).

    The AOI is cut per UTM zone and hemisphere; in each zone, the lattice squares whose
    unbuffered extent intersects that zone's part of the AOI are kept.
    """
    if not (size > 0 and math.isfinite(size)):
        raise TileInputError(f"patch size must be a positive number of metres, got {size!r}")
    if not (buffer >= 0 and math.isfinite(buffer)):
        raise TileInputError(f"buffer must be a non-negative number of metres, got {buffer!r}")
    if aoi.is_empty:
        raise TileInputError("the AOI is empty")
    aoi = normalize_longitudes(aoi)
    minx, miny, maxx, maxy = aoi.bounds
    if miny < UTM_SOUTH or maxy > UTM_NORTH:
        raise TileInputError(
            f"the AOI reaches latitude {miny if miny < UTM_SOUTH else maxy:.2f}, outside UTM's "
            f"{UTM_SOUTH:g}..{UTM_NORTH:g}"
        )
    polygonal = aoi.area > 0
    found = []
    for zone in range(utm_zone_of(minx), utm_zone_of(maxx) + 1):
        for north in (False, True):
            part = _zone_part(aoi, zone_area(zone, north), polygonal)
            if part is not None:
                epsg = utm_epsg(zone, north)
                col, row = _lattice_squares(transform_geometry(part, WGS84_EPSG, epsg), size)
                found.append((np.full(len(col), epsg, dtype=np.int64), col, row))
    if not found:
        return UtmPatchSet(size, buffer, *(np.empty(0, np.int64) for _ in range(3)))
    epsg, col, row = (np.concatenate(parts) for parts in zip(*found, strict=True))
    order = np.lexsort((row, col, epsg))
    return UtmPatchSet(size, buffer, epsg[order], col[order], row[order])


def patches_in_crs(aoi: BaseGeometry, epsg: int, size: float, buffer: float = 0.0) -> UtmPatchSet:
    """Patches on the ``size`` lattice of one projected CRS (``epsg``) instead of UTM zones:
    for users whose outputs must all share a CRS (a national grid, an equal-area one)."""
    if not (size > 0 and math.isfinite(size)):
        raise TileInputError(f"patch size must be a positive number of CRS units, got {size!r}")
    if aoi.is_empty:
        raise TileInputError("the AOI is empty")
    col, row = _lattice_squares(transform_geometry(aoi, WGS84_EPSG, epsg), size)
    order = np.lexsort((row, col))
    return UtmPatchSet(size, buffer, np.full(len(col), epsg, np.int64), col[order], row[order])


def _zone_part(aoi: BaseGeometry, zone: BaseGeometry, polygonal: bool) -> BaseGeometry | None:
    """The AOI inside one zone; for an areal AOI, only areal pieces (not a shared edge)."""
    part = shapely.intersection(aoi, zone)
    if part.is_empty:
        return None
    if polygonal:
        pieces = [p for p in shapely.get_parts(part) if p.area > 0]
        if not pieces:
            return None
        part = shapely.union_all(pieces)
    return part


def _lattice_squares(part: BaseGeometry, size: float) -> tuple[np.ndarray, np.ndarray]:
    """(col, row) of the ``size`` lattice squares that intersect ``part`` (zone CRS)."""
    minx, miny, maxx, maxy = part.bounds
    cols = np.arange(math.floor(minx / size), math.floor(maxx / size) + 1, dtype=np.int64)
    rows = np.arange(math.floor(miny / size), math.floor(maxy / size) + 1, dtype=np.int64)
    if len(cols) * len(rows) > _MAX_CANDIDATES:
        raise TileInputError(
            f"{len(cols) * len(rows)} candidate patches in one zone; is size={size} in metres?"
        )
    col, row = (a.ravel() for a in np.meshgrid(cols, rows, indexing="ij"))
    shapely.prepare(part)
    squares = shapely.box(col * size, row * size, (col + 1) * size, (row + 1) * size)
    hit = shapely.intersects(part, squares)
    return col[hit], row[hit]


class UtmGrid(Grid):
    """UTM patches (ids {epsg}_{col}_{row}) of size metres covering aoi or bbox."""

    grid: Annotated[Literal["utm"], Cli(hidden=True)] = "utm"
    size: float = Field(gt=0, description="Patch size, metres.")
    buffer: float = Field(default=0.0, ge=0, description="Overlap added on every side, metres.")

    def select(self) -> UtmPatchSet:
        return utm_patches(self.area_geometry(), self.size, self.buffer)
