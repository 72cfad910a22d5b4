"""Contrast stretches that turn any raster data type into 8-bit display values."""

from __future__ import annotations

import numpy as np


def to_display_bytes(
    bands: np.ma.MaskedArray, percentiles: tuple[float, float] = (2.0, 98.0)
) -> np.ndarray:
    """Map a (bands, rows, cols) masked array to uint8 for a preview image.

    Byte data is kept as it is. Any other type is stretched per band between the given
    percentiles of its valid pixels onto 1..255, so that valid pixels are never black and
    0 is left to mean "no data". Masked and non-finite pixels become 0.
    """
    data = np.ma.masked_invalid(bands) if bands.dtype.kind == "f" else np.ma.asarray(bands)
    invalid = np.ma.getmaskarray(data)
    if data.dtype == np.uint8:
        out = np.asarray(data.filled(0), dtype=np.uint8)
        out[invalid] = 0
        return out
    out = np.zeros(data.shape, dtype=np.uint8)
    for index in range(data.shape[0]):
        band = data[index]
        valid = band.compressed().astype(np.float64)
        if valid.size == 0:
            continue
        low, high = np.percentile(valid, percentiles)
        values = np.asarray(band.filled(low), dtype=np.float64)
        if high > low:
            scaled = 1.0 + (values - low) * (254.0 / (high - low))
        else:
            scaled = np.full(values.shape, 128.0)
        out[index] = np.clip(np.rint(scaled), 1, 255).astype(np.uint8)
        out[index][invalid[index]] = 0
    return out
