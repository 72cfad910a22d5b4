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
    four neighbours: dz/dx = (z[r, c+1] - z[r, c-1]) / 2dx, dz/dy likewise.
    """
    z = np.asarray(elevation, dtype=np.float64)
    if z.ndim != 2 or min(z.shape) < 3:
        raise ValueError(f"elevation must be 2-D and at least 3x3, not {z.shape}")
    rows = z.shape[0]
    dx = np.broadcast_to(np.asarray(dx, dtype=np.float64), (rows,))[1:-1, None]
    dy = np.broadcast_to(np.asarray(dy, dtype=np.float64), (rows,))[1:-1, None]
    dzdx = (z[1:-1, 2:] - z[1:-1, :-2]) / (2.0 * dx)
    dzdy = (z[2:, 1:-1] - z[:-2, 1:-1]) / (2.0 * dy)
    return np.degrees(np.arctan(np.hypot(dzdx, dzdy)))


def floor_small_slopes(slope: np.ndarray, minimum: float = MIN_SLOPE) -> np.ndarray:
    """``slope`` as float32 with values in (0, ``minimum``) set to ``minimum`` (the TTC
    model's convention: a tiny slope is not flat)."""
    out = np.asarray(slope, dtype=np.float32).copy()
    out[(out > 0) & (out < minimum)] = minimum
    return out
