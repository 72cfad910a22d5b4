"""HEALPix cells (nested scheme) as tiles: point -> cell, cell outlines, AOI coverage, morton ids.

Geodetic longitude/latitude are used directly as spherical coordinates, as healpy's
``ang2pix(nside, lon, lat, nest=True, lonlat=True)`` and xdggs do, so cell ids written here
decode in those tools. The nested-scheme arithmetic (Górski et al. 2005) is done in numpy, so
this module needs neither healpy nor mortie; the tests check it against both.

Morton ids follow mortie 1.x: a packed uint64 word ``[4-bit base cell + 1 | 27 two-bit
quadrants | 6-bit order suffix]``. The older signed decimal form (mortie < 1.0, magg's int64
``morton`` coordinate) is available as ``nested_to_decimal_morton``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
import shapely
from pydantic import Field
from shapely.geometry.base import BaseGeometry

from tilefleet.fields import Cli
from tilefleet.tiles.aoi import normalize_longitudes, wrap_copies, wrap_to_world
from tilefleet.tiles.grid import Grid
from tilefleet.tiles.tile import Tile, TileInputError

MAX_ORDER = 29

# Row index (in units of a face) of each base face's centre, and its longitude in pi/4 steps.
_FACE_ROW = np.array([2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4], dtype=np.int64)
_FACE_LON = np.array([1, 3, 5, 7, 0, 2, 4, 6, 1, 3, 5, 7], dtype=np.int64)
_HALF_PI = np.pi / 2


def _check_order(order: int) -> int:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)):
        raise TileInputError(f"HEALPix order must be an integer, got {order!r}")
    if not 0 <= order <= MAX_ORDER:
        raise TileInputError(f"HEALPix order must be between 0 and {MAX_ORDER}, got {order}")
    return int(order)


def cell_count(order: int) -> int:
    """Number of cells on the sphere at ``order`` (12 * 4**order)."""
    return 12 * 4 ** _check_order(order)


def _check_cells(cells: np.ndarray, order: int) -> np.ndarray:
    cells = np.asarray(cells)
    if cells.dtype.kind not in "iu":
        raise TileInputError(f"HEALPix cell ids must be integers, got dtype {cells.dtype}")
    cells = cells.astype(np.int64)
    if cells.size and (cells.min() < 0 or cells.max() >= cell_count(order)):
        raise TileInputError(f"HEALPix cell id out of range for order {order}")
    return cells


# --- bit interleaving: nested index <-> (x, y) position inside a base face -----------------


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Put bit k of ``v`` at bit 2k (for values below 2**32)."""
    v = v.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    v = (v | (v << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    v = (v | (v << np.uint64(2))) & np.uint64(0x3333333333333333)
    v = (v | (v << np.uint64(1))) & np.uint64(0x5555555555555555)
    return v


def _compact_bits(v: np.ndarray) -> np.ndarray:
    """Inverse of ``_spread_bits``: collect the even bits of ``v``."""
    v = v.astype(np.uint64) & np.uint64(0x5555555555555555)
    v = (v | (v >> np.uint64(1))) & np.uint64(0x3333333333333333)
    v = (v | (v >> np.uint64(2))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    v = (v | (v >> np.uint64(4))) & np.uint64(0x00FF00FF00FF00FF)
    v = (v | (v >> np.uint64(8))) & np.uint64(0x0000FFFF0000FFFF)
    v = (v | (v >> np.uint64(16))) & np.uint64(0x00000000FFFFFFFF)
    return v.astype(np.int64)


def _xyf_to_nested(ix: np.ndarray, iy: np.ndarray, face: np.ndarray, order: int) -> np.ndarray:
    inner = _spread_bits(ix) | (_spread_bits(iy) << np.uint64(1))
    return (face.astype(np.int64) << (2 * order)) + inner.astype(np.int64)


def _nested_to_xyf(cells: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    face = cells >> (2 * order)
    inner = cells & ((1 << (2 * order)) - 1)
    return _compact_bits(inner), _compact_bits(inner >> 1), face


# --- point -> cell --------------------------------------------------------------------------


def lonlat_to_cell(lon: np.ndarray, lat: np.ndarray, order: int) -> np.ndarray:
    """Nested cell ids at ``order`` of points given as lon/lat degrees (vectorised).

    Mirrors the floating-point steps of HEALPix's reference implementation so that points
    on cell edges land in the same cell as with healpy.
    """
    order = _check_order(order)
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    if lat.size and (np.nanmax(np.abs(lat)) > 90 or not np.all(np.isfinite(lat))):
        raise TileInputError("latitudes must be finite and within [-90, 90]")
    if lon.size and not np.all(np.isfinite(lon)):
        raise TileInputError("longitudes must be finite")
    lon, lat = np.broadcast_arrays(lon, lat)
    nside = 1 << order

    theta = _HALF_PI - np.radians(lat)
    phi = np.radians(lon)
    z = np.cos(theta)
    za = np.abs(z)
    tt = _positive_modulo(phi * (2 / np.pi), 4.0)  # longitude in quarter turns, [0, 4)

    cells = np.empty(lon.shape, dtype=np.int64)
    equatorial = za <= 2.0 / 3.0

    # Equatorial belt: cells are bounded by lines of constant phi +/- 3/4 z.
    e_tt, e_z = tt[equatorial], z[equatorial]
    temp1 = nside * (0.5 + e_tt)
    temp2 = nside * (e_z * 0.75)
    jp = (temp1 - temp2).astype(np.int64)  # ascending edge line
    jm = (temp1 + temp2).astype(np.int64)  # descending edge line
    ifp, ifm = jp >> order, jm >> order
    face = np.where(ifp == ifm, ifp | 4, np.where(ifp < ifm, ifp, ifm + 8))
    ix = jm & (nside - 1)
    iy = nside - (jp & (nside - 1)) - 1
    cells[equatorial] = _xyf_to_nested(ix, iy, face, order)

    # Polar caps: near the poles sin(theta) keeps precision that 1 - |z| loses.
    polar = ~equatorial
    p_tt, p_za, p_z, p_theta = tt[polar], za[polar], z[polar], theta[polar]
    ntt = np.minimum(p_tt.astype(np.int64), 3)
    tp = p_tt - ntt
    near_pole = (p_za >= 0.99) & ((p_theta < 0.01) | (p_theta > 3.14159 - 0.01))
    tmp = np.where(
        near_pole,
        nside * np.sin(p_theta) / np.sqrt((1.0 + p_za) / 3.0),
        nside * np.sqrt(3 * (1 - p_za)),
    )
    jp = np.minimum((tp * tmp).astype(np.int64), nside - 1)
    jm = np.minimum(((1.0 - tp) * tmp).astype(np.int64), nside - 1)
    north = p_z >= 0
    ix = np.where(north, nside - jm - 1, jp)
    iy = np.where(north, nside - jp - 1, jm)
    face = np.where(north, ntt, ntt + 8)
    cells[polar] = _xyf_to_nested(ix, iy, face, order)
    return cells


def _positive_modulo(value: np.ndarray, modulus: float) -> np.ndarray:
    """``value mod modulus`` in [0, modulus), rounding a result equal to modulus down to 0."""
    rem = np.fmod(value, modulus)
    rem = np.where(rem < 0, rem + modulus, rem)
    return np.where(rem == modulus, 0.0, rem)


# --- cell -> geometry -----------------------------------------------------------------------


def _face_to_lonlat(x: np.ndarray, y: np.ndarray, face: np.ndarray):
    """Lon/lat degrees of fractional positions (x, y in [0, 1]) inside base faces."""
    row = _FACE_ROW[face] - x - y  # 0 at the north pole, 4 at the south pole
    north, south = row < 1, row > 3
    ring = np.where(north, row, np.where(south, 4 - row, 1.0))
    cap = ring * ring / 3.0
    z = np.where(north, 1 - cap, np.where(south, cap - 1, (2 - row) * 2.0 / 3.0))
    # sqrt(cap * (2 - cap)) is sin(theta) without the cancellation of sqrt(1 - z*z) at the caps.
    sin_theta = np.where(north | south, np.sqrt(cap * (2 - cap)), np.sqrt((1 - z) * (1 + z)))
    # Longitude in eighths of a turn, scaled by the ring; one full turn is 8 * ring.
    turn = _FACE_LON[face] * ring + x - y
    turn = np.where(turn < 0, turn + 8 * ring, np.where(turn >= 8 * ring, turn - 8 * ring, turn))
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(ring < 1e-15, 0.0, (0.25 * np.pi * turn) / ring)
    lon = np.degrees(phi)
    lon = np.where(lon >= 180, lon - 360, lon)
    lat = np.degrees(np.arctan2(z, sin_theta))
    return lon, lat


def cell_centers(cells: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat degrees (lon in [-180, 180)) of the centres of nested cells."""
    order = _check_order(order)
    cells = _check_cells(cells, order)
    ix, iy, face = _nested_to_xyf(cells, order)
    nside = 1 << order
    return _face_to_lonlat((ix + 0.5) / nside, (iy + 0.5) / nside, face)


def cell_boundaries(cells: np.ndarray, order: int, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat degrees of ``4 * step`` points along each cell's edge, shape (n, 4 * step).

    Points run north, west, south, east corner first (as healpy's ``boundaries``); the
    longitude of a point exactly at a pole is 0.
    """
    order = _check_order(order)
    if step < 1:
        raise TileInputError(f"step must be at least 1, got {step}")
    cells = _check_cells(np.atleast_1d(cells), order)
    ix, iy, face = _nested_to_xyf(cells, order)
    nside = 1 << order
    xc, yc = (ix + 0.5) / nside, (iy + 0.5) / nside
    half, d = 0.5 / nside, 1.0 / (step * nside)
    i = np.arange(step) * d
    # Walk the square in face coordinates: N -> W -> S -> E corners.
    dx = np.concatenate([half - i, np.full(step, -half), -half + i, np.full(step, half)])
    dy = np.concatenate([np.full(step, half), half - i, np.full(step, -half), -half + i])
    x = xc[:, None] + dx[None, :]
    y = yc[:, None] + dy[None, :]
    return _face_to_lonlat(x, y, np.broadcast_to(face[:, None], x.shape))


def default_edge_points(order: int) -> int:
    """Points per cell edge used to outline cells at ``order``.

    Cell edges are curved in lon/lat; coarse cells need more points for their outline to
    follow the edge (at order 6 four points keep it within metres), cells of order 8 and
    finer are straight enough between corners.
    """
    return min(64, 2 ** max(0, 8 - order))


def _cell_rings(cells: np.ndarray, order: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell outlines as lon/lat rings that shapely can test against a lon/lat AOI.

    Longitudes are unwrapped around each cell's centre (a ring may reach past +-180), and a
    corner at a pole becomes an edge along the pole line: in lon/lat the pole is a segment.
    Every corner is emitted twice so the rings keep a fixed length.
    """
    lon, lat = cell_boundaries(cells, order, step)
    center_lon, _ = cell_centers(cells, order)
    lon = center_lon[:, None] + ((lon - center_lon[:, None] + 180.0) % 360.0 - 180.0)
    n = lon.shape[1]
    prev_lon = np.roll(lon, 1, axis=1)
    next_lon = np.roll(lon, -1, axis=1)
    at_pole = np.abs(lat) == 90.0
    corner = np.zeros(n, dtype=bool)
    corner[::step] = True
    # Each point becomes a pair; corners at a pole take their neighbours' longitudes.
    first = np.where(at_pole & corner, prev_lon, lon)
    second = np.where(at_pole & corner, next_lon, lon)
    ring_lon = np.stack([first, second], axis=2).reshape(len(lon), 2 * n)
    ring_lat = np.repeat(lat, 2, axis=1)
    keep = np.repeat(corner, 2) | (np.arange(2 * n) % 2 == 0)  # drop pairs of non-corners
    return ring_lon[:, keep], ring_lat[:, keep]


def cell_polygons(
    cells: np.ndarray, order: int, edge_points: int | None = None, *, wrap: bool = True
) -> np.ndarray:
    """Cell outlines as shapely polygons in lon/lat.

    With ``wrap`` (the default) a cell crossing the antimeridian is split into a
    MultiPolygon within [-180, 180]; without it, its longitudes run past +-180.
    """
    order = _check_order(order)
    step = default_edge_points(order) if edge_points is None else edge_points
    lon, lat = _cell_rings(np.atleast_1d(cells), order, step)
    polygons = shapely.remove_repeated_points(shapely.polygons(np.stack([lon, lat], axis=2)))
    return wrap_to_world(polygons) if wrap else polygons


def _cell_envelopes(cells: np.ndarray, order: int) -> np.ndarray:
    """Lon/lat boxes that hold each cell exactly.

    Along a HEALPix edge both lon and lat are monotonic, so a cell's extremes are at its
    corners (a pole corner stands for the pole segment between its neighbours).
    """
    lon, lat = _cell_rings(cells, order, 1)
    pad = 1e-9  # float noise only
    return shapely.box(
        lon.min(axis=1) - pad, lat.min(axis=1) - pad, lon.max(axis=1) + pad, lat.max(axis=1) + pad
    )


# --- hierarchy --------------------------------------------------------------------------------


def children(cells: np.ndarray, order: int, child_order: int) -> np.ndarray:
    """Nested ids at ``child_order`` of every child of ``cells``, parent by parent, sorted."""
    order, child_order = _check_order(order), _check_order(child_order)
    if child_order < order:
        raise TileInputError(f"child order {child_order} is coarser than order {order}")
    cells = _check_cells(np.atleast_1d(cells), order)
    depth = child_order - order
    offsets = np.arange(4**depth, dtype=np.int64)
    return ((cells[:, None] << (2 * depth)) + offsets[None, :]).ravel()


def parents(cells: np.ndarray, order: int, parent_order: int) -> np.ndarray:
    """Nested ids at the coarser ``parent_order`` of the cells that contain ``cells``."""
    order, parent_order = _check_order(order), _check_order(parent_order)
    if parent_order > order:
        raise TileInputError(f"parent order {parent_order} is finer than order {order}")
    return _check_cells(cells, order) >> (2 * (order - parent_order))


# --- coverage ---------------------------------------------------------------------------------


def cells_covering(aoi: BaseGeometry, order: int, edge_points: int | None = None) -> np.ndarray:
    """Sorted nested ids of the cells at ``order`` whose outline intersects ``aoi`` (lon/lat).

    Descends from the 12 base cells: a cell whose exact lon/lat box misses the AOI is dropped
    with all its descendants, one whose box lies inside the AOI is taken with all its
    descendants, and only cells along the AOI's edge are split further. At ``order`` each
    remaining cell's outline (``edge_points`` per edge) is tested against the AOI.
    """
    order = _check_order(order)
    if aoi.is_empty:
        raise TileInputError("the AOI is empty")
    step = default_edge_points(order) if edge_points is None else edge_points
    target = wrap_copies(normalize_longitudes(aoi))
    shapely.prepare(target)

    found: list[np.ndarray] = []
    cells = np.arange(12, dtype=np.int64)
    for level in range(order + 1):
        if level == order:
            outlines = cell_polygons(cells, level, step, wrap=False)
            found.append(cells[shapely.intersects(target, outlines)])
            break
        boxes = _cell_envelopes(cells, level)
        hit = shapely.intersects(target, boxes)
        cells, boxes = cells[hit], boxes[hit]
        inside = shapely.contains_properly(target, boxes)
        if inside.any():
            found.append(children(cells[inside], level, order))
        cells = children(cells[~inside], level, level + 1)
        if cells.size == 0:
            break
    return np.sort(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)


# --- morton ids ---------------------------------------------------------------------------------

_U = np.uint64


def nested_to_morton(cells: np.ndarray, order: int) -> np.ndarray:
    """Packed uint64 morton words (mortie >= 1.0) of nested cells at ``order``."""
    order = _check_order(order)
    cells = _check_cells(cells, order).astype(np.uint64)
    face = cells >> _U(2 * order)
    inner = cells & _U((1 << (2 * order)) - 1)
    word = (face + _U(1)) << _U(60)
    if order <= 27:
        return word | (inner << _U(60 - 2 * order)) | _U(order)
    # Orders 28 and 29 keep 27 quadrants in the body and fold the rest into the suffix.
    if order == 28:
        return word | ((inner >> _U(2)) << _U(6)) | (_U(28) + (inner & _U(3)) * _U(5))
    q28, q29 = (inner >> _U(2)) & _U(3), inner & _U(3)
    return word | ((inner >> _U(4)) << _U(6)) | (_U(28) + q28 * _U(5) + q29 + _U(1))


def morton_to_nested(words: np.ndarray) -> tuple[np.ndarray, int]:
    """(nested ids, order) of packed morton words, which must all be area cells of one order."""
    words = np.atleast_1d(np.asarray(words))
    if words.dtype.kind not in "iu":
        raise TileInputError(f"morton words must be integers, got dtype {words.dtype}")
    if words.size == 0:
        raise TileInputError("no morton words given")
    words = words.astype(np.uint64)
    prefix = (words >> _U(60)).astype(np.int64)
    suffix = (words & _U(0x3F)).astype(np.int64)
    if np.any((prefix < 1) | (prefix > 12)):
        raise TileInputError("not a morton word: the base-cell prefix must be 1..12")
    if np.any(suffix >= 48):
        raise TileInputError("morton point words have no cell; expected area words")
    orders = np.where(suffix <= 27, suffix, np.where((suffix - 28) % 5 == 0, 28, 29))
    if np.any(orders != orders[0]):
        raise TileInputError(f"morton words mix orders {sorted(set(orders.tolist()))}")
    order = int(orders[0])
    face = (prefix - 1).astype(np.uint64)
    body = (words >> _U(6)) & _U((1 << 54) - 1)
    if order <= 27:
        inner = body >> _U(54 - 2 * order)
    elif order == 28:
        inner = (body << _U(2)) | ((suffix - 28) // 5).astype(np.uint64)
    else:
        rest = suffix - 28
        inner = (body << _U(4)) | ((rest // 5) << 2 | (rest % 5 - 1)).astype(np.uint64)
    return ((face << _U(2 * order)) | inner).astype(np.int64), order


def nested_to_decimal_morton(cells: np.ndarray, order: int) -> np.ndarray:
    """Signed decimal morton ids (mortie < 1.0, magg's int64 ``morton``), orders up to 18.

    The leading digit is the base cell + 1 (base cells 6-11: base cell - 5 with a minus
    sign), then one digit 1-4 (nested quadrant + 1) per order.
    """
    order = _check_order(order)
    if order > 18:
        raise TileInputError("decimal morton ids stop at order 18; use nested_to_morton")
    cells = _check_cells(cells, order)
    face = cells >> (2 * order)
    value = np.where(face < 6, face + 1, face - 5)
    for level in range(order - 1, -1, -1):
        value = value * 10 + ((cells >> (2 * level)) & 3) + 1
    return np.where(face < 6, value, -value)


def decimal_morton_to_nested(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """(nested ids, order) of signed decimal morton ids of one order."""
    ids = np.atleast_1d(np.asarray(ids))
    if ids.dtype.kind not in "iu" or ids.size == 0:
        raise TileInputError("decimal morton ids must be a non-empty integer array")
    ids = ids.astype(np.int64)
    magnitude = np.abs(ids)
    digits = np.floor(np.log10(np.maximum(magnitude, 1))).astype(np.int64)
    if np.any(digits != digits[0]) or np.any(magnitude == 0):
        raise TileInputError("decimal morton ids must be non-zero and of one order")
    order = int(digits[0])
    cells = np.zeros_like(magnitude)
    rest = magnitude.copy()
    for level in range(order):
        digit = rest % 10
        if np.any((digit < 1) | (digit > 4)):
            raise TileInputError("decimal morton quadrant digits must be 1..4")
        cells |= (digit - 1) << (2 * level)
        rest //= 10
    if np.any((rest < 1) | (rest > 6)):
        raise TileInputError("decimal morton leading digit must be 1..6")
    face = np.where(ids > 0, rest - 1, rest + 5)
    return (face << (2 * order)) | cells, order


# --- a set of cells as tiles --------------------------------------------------------------------


@dataclass(frozen=True)
class HealpixCellSet:
    """Cells of one order, held as an id array; ``Tile`` objects are made only on request."""

    order: int
    cells: np.ndarray
    warnings: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.cells)

    def ids(self) -> list[str]:
        """Tile ids ``{order}/{cell_id}`` (HEALPix's usual order/ipix naming)."""
        return [f"{self.order}/{c}" for c in self.cells.tolist()]

    def columns(self) -> dict[str, np.ndarray]:
        return {
            "cell_id": self.cells,
            "order": np.full(len(self.cells), self.order, dtype=np.int64),
            "morton": nested_to_morton(self.cells, self.order),
        }

    def footprints(self) -> np.ndarray:
        return cell_polygons(self.cells, self.order)

    def tiles(self) -> Iterator[Tile]:
        """Tiles whose bounds are the unwrapped outline's (past +-180 for a cell across the
        antimeridian, so its pixel grid stays one piece) and whose footprint is cut there."""
        mortons = nested_to_morton(self.cells, self.order).tolist()
        unwrapped = cell_polygons(self.cells, self.order, wrap=False)
        rows = zip(
            self.ids(),
            self.cells.tolist(),
            mortons,
            shapely.bounds(unwrapped).tolist(),
            wrap_to_world(unwrapped),
            strict=True,
        )
        for tile_id, cell, morton, bounds, footprint in rows:
            attrs = {"order": self.order, "cell_id": cell, "morton": morton}
            yield Tile(tile_id, tuple(bounds), outline=shapely.to_wkb(footprint), attrs=attrs)


def healpix_cells(aoi: BaseGeometry, order: int) -> HealpixCellSet:
    """The cells at ``order`` that intersect ``aoi`` (lon/lat), as a tile set."""
    return HealpixCellSet(order=_check_order(order), cells=cells_covering(aoi, order))


class HealpixGrid(Grid):
    """HEALPix cells (nested) at order intersecting aoi or bbox: cell_id, order, morton."""

    grid: Annotated[Literal["healpix"], Cli(hidden=True)] = "healpix"
    order: int = Field(ge=0, le=MAX_ORDER, description=f"HEALPix order (0..{MAX_ORDER}).")

    def select(self) -> HealpixCellSet:
        return healpix_cells(self.area_geometry(), self.order)
