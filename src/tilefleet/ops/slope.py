"""Terrain slope in degrees from an elevation grid, by 3x3 central differences.

The spacing between pixel centres is what makes a slope right: on a lon/lat grid a pixel
is ``res`` degrees tall everywhere but ``cos(latitude)`` times narrower from west to east.
:func:`geographic_spacing` gives both on the WGS84 ellipsoid, per row, so a slope near the
equator and one at 50 degrees north are both true; a fixed spacing (the TTC seed's 10 m)
is still possible by passing it.
"""

from __future__ import annotations

import numpy as np

WGS84_A = 6378137.0  # semi-major axis, m
WGS84_E2 = 0.00669437999014  # first eccentricity squared
#: Slopes above zero and below this are raised to it (flat ground stays exactly zero).
MIN_SLOPE = 0.02


def geographic_spacing(latitudes: np.ndarray, res_x_deg: float, res_y_deg: float):
    """(east-west spacing per row, north-south spacing per row), in metres, of pixels
    ``res_x_deg`` by ``res_y_deg`` degrees centred on ``latitudes`` (degrees)."""
    phi = np.radians(np.asarray(latitudes, dtype=np.float64))
    w = np.sqrt(1.0 - WGS84_E2 * np.sin(phi) ** 2)
    prime_vertical = WGS84_A / w  # N: radius of curvature along a parallel's normal
    meridional = WGS84_A * (1.0 - WGS84_E2) / w**3  # M
    dx = prime_vertical * np.cos(phi) * np.radians(res_x_deg)
    dy = meridional * np.radians(res_y_deg)
    return dx, dy


def slope_degrees(elevation: np.ndarray, dx, dy) -> np.ndarray:
    """Slope in degrees of the interior of ``elevation`` (rows, cols): shape (rows-2, cols-2).

    ``dx`` and ``dy`` are the spacings in metres between neighbouring pixel centres: scalars,
    or one value per row of ``elevation`` (a geographic grid). Each interior pixel uses its
    four neighbours: dz/dx = (z[r, c+1] - z[r, c-1]) / 2dx, dz/dy likewise. A float32
    ``elevation`` is worked in float32 (a DEM's own type: the differences of its values are
    exact, the rest rounds at 1e-7 relative, far below what a slope needs), anything else
    in float64.
    """
    dtype = np.float32 if np.asarray(elevation).dtype == np.float32 else np.float64
    z = np.asarray(elevation, dtype=dtype)
    if z.ndim != 2 or min(z.shape) < 3:
        raise ValueError(f"elevation must be 2-D and at least 3x3, not {z.shape}")
    rows = z.shape[0]
    across = np.broadcast_to(np.asarray(dx, dtype=np.float64), (rows,))[1:-1, None]
    along = np.broadcast_to(np.asarray(dy, dtype=np.float64), (rows,))[1:-1, None]
    dzdx = z[1:-1, 2:] - z[1:-1, :-2]
    dzdx /= (2.0 * across).astype(dtype)
    dzdy = z[2:, 1:-1] - z[:-2, 1:-1]
    dzdy /= (2.0 * along).astype(dtype)
    slope = np.hypot(dzdx, dzdy, out=dzdx)
    np.arctan(slope, out=slope)
    return np.degrees(slope, out=slope)


def floor_small_slopes(slope: np.ndarray, minimum: float = MIN_SLOPE) -> np.ndarray:
    """``slope`` as float32 with values in (0, ``minimum``) set to ``minimum`` (the TTC
    model's convention: a tiny slope is not flat)."""
    out = np.asarray(slope, dtype=np.float32).copy()
    out[(out > 0) & (out < minimum)] = minimum
    return out
