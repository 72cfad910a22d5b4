"""Contrast stretches that turn any raster data type into 8-bit display values."""

from __future__ import annotations

import numpy as np

PERCENTILES = (2.0, 98.0)


def to_display_bytes(
    bands: np.ma.MaskedArray, percentiles: tuple[float, float] = PERCENTILES
) -> np.ndarray:
    """Map a (bands, rows, cols) masked array to uint8 for a preview image.

    Byte data is kept as it is. Any other type is stretched per band between the given
    (linear) percentiles of its valid pixels onto 1..255, so that valid pixels are never
    black and 0 is left to mean "no data". Masked and non-finite pixels become 0.
    """
    data = np.ma.masked_invalid(bands) if bands.dtype.kind == "f" else np.ma.asarray(bands)
    invalid = np.ma.getmaskarray(data)
    if data.dtype == np.uint8:
        out = np.asarray(data.filled(0), dtype=np.uint8)
        out[invalid] = 0
        return out
    small_integers = data.dtype.kind in "iu" and data.dtype.itemsize <= 2
    stretch = _stretch_small_integers if small_integers else _stretch_any
    out = np.zeros(data.shape, dtype=np.uint8)
    for index in range(data.shape[0]):
        valid = ~invalid[index]
        if valid.any():
            out[index] = stretch(np.ma.getdata(data[index]), valid, percentiles)
            out[index][~valid] = 0
    return out


def _scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high > low:
        scaled = 1.0 + (values - low) * (254.0 / (high - low))
    else:
        scaled = np.full(np.shape(values), 128.0)
    return np.clip(np.rint(scaled), 1, 255).astype(np.uint8)


def _stretch_any(band: np.ndarray, valid: np.ndarray, percentiles) -> np.ndarray:
    low, high = np.percentile(band[valid].astype(np.float64), percentiles)
    return _scale(band.astype(np.float64), low, high)


def _stretch_small_integers(band: np.ndarray, valid: np.ndarray, percentiles) -> np.ndarray:
    """The same stretch for 8- and 16-bit integers through a histogram and a lookup table:
    exact linear percentiles from cumulative counts, one table lookup per pixel."""
    info = np.iinfo(band.dtype)
    unsigned = np.dtype(f"u{band.dtype.itemsize}")
    # An order-preserving map onto 0 .. 2**bits - 1 without a wider copy: flip the sign bit.
    index = band.view(unsigned)
    if info.min < 0:
        index = index ^ unsigned.type(-info.min)
    sample = index.ravel() if valid.all() else index[valid]
    cumulative = np.cumsum(np.bincount(sample, minlength=1 << (8 * band.dtype.itemsize)))
    count = int(cumulative[-1])

    def value_at(rank: int) -> int:  # the rank-th smallest valid value (0-based)
        return int(np.searchsorted(cumulative, rank, side="right")) + info.min

    def percentile(p: float) -> float:
        position = (count - 1) * p / 100.0
        below = int(np.floor(position))
        above = min(below + 1, count - 1)
        return value_at(below) + (position - below) * (value_at(above) - value_at(below))

    low, high = (percentile(p) for p in percentiles)
    table = _scale(np.arange(info.min, info.max + 1, dtype=np.float64), low, high)
    return table[index]
