"""Spectral indices and their aggregation over time: pure numpy, no I/O.

A normalised difference ``(a - b) / (a + b)`` of two bands is NaN where either input is
invalid or both are zero. Aggregations reduce the time axis over valid observations only.
"""

from __future__ import annotations

import re

import numpy as np

#: eo-grow's defaults: vegetation, water and built-up indices of Sentinel-2.
DEFAULT_INDICES: dict[str, tuple[str, str]] = {
    "NDVI": ("B08", "B04"),
    "NDWI": ("B03", "B08"),
    "NDBI": ("B11", "B08"),
}
PER_DATE = "dates"
_PERCENTILE = re.compile(r"^p(\d{1,2}|100)$")
STATISTICS = ("mean", "median", "min", "max", "std")


def normalized_difference(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(a - b) / (a + b)`` as float32, NaN where ``valid`` is False or ``a + b`` is 0."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    total = a + b
    out = np.full(a.shape, np.nan, dtype=np.float32)
    ok = valid & (total != 0)
    np.divide(a - b, total, out=out, where=ok)
    return out


def check_statistic(name: str) -> str:
    """``name`` if it is an aggregation this module computes (``mean``, ``p90``…)."""
    if name in STATISTICS or name == PER_DATE or _PERCENTILE.match(name):
        return name
    raise ValueError(
        f"unknown aggregation {name!r}: use {PER_DATE}, {', '.join(STATISTICS)} or pNN"
    )


def aggregate_over_time(values: np.ndarray, statistic: str) -> np.ndarray:
    """Reduce (time, y, x) values, NaN where invalid, to (y, x) by ``statistic`` over the
    valid observations; NaN where a pixel has none."""
    with np.errstate(all="ignore"), _quiet_all_nan():
        if statistic == "mean":
            return np.nanmean(values, axis=0).astype(np.float32)
        if statistic == "median":
            return np.nanmedian(values, axis=0).astype(np.float32)
        if statistic == "min":
            return np.nanmin(values, axis=0).astype(np.float32)
        if statistic == "max":
            return np.nanmax(values, axis=0).astype(np.float32)
        if statistic == "std":
            return np.nanstd(values, axis=0).astype(np.float32)
        match = _PERCENTILE.match(statistic)
        if match:
            return np.nanpercentile(values, int(match.group(1)), axis=0).astype(np.float32)
    raise ValueError(f"unknown aggregation {statistic!r}")


class _quiet_all_nan:
    """Pixels with no valid observation are expected: numpy's all-NaN warnings are noise."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc_info):
        self._catch.__exit__(*exc_info)
