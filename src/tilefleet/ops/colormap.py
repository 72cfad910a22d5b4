"""Colours for categorical rasters (a scene classification band, a class map): each class
its own colour instead of a grey stretch that makes neighbouring classes look alike.

Pure: arrays in, arrays out.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Integer bands with at most this many distinct valid values are classes, not a measure.
MAX_CLASSES = 32

#: A qualitative palette (Tableau 20, strong colours first) for classes without a table.
PALETTE = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
)  # fmt: skip


def is_categorical(band: np.ma.MaskedArray, has_table: bool = False) -> bool:
    """Whether a single band holds classes: it comes with a colour table (8-bit), or it
    is an integer band with few distinct valid values."""
    data = np.ma.asarray(band)
    if data.dtype.kind not in "iub":
        return False
    if has_table and data.dtype.itemsize == 1:
        return True
    values = np.ma.compressed(data)
    if values.size == 0:
        return False
    if data.dtype.itemsize <= 2:
        # bincount over the shifted values: one pass, no sort.
        counts = np.bincount((values.astype(np.int64) - int(values.min())).ravel())
        return int(np.count_nonzero(counts)) <= MAX_CLASSES
    return len(np.unique(values)) <= MAX_CLASSES


def class_colours(
    band: np.ma.MaskedArray, table: Mapping[int, tuple[int, ...]] | None = None
) -> np.ndarray:
    """A (3, rows, cols) uint8 RGB image of a class band: each value coloured by
    ``table`` (a raster's colour table: value -> (r, g, b[, a])) or, for values it lacks or
    without one, by :data:`PALETTE` in the order of the values. Masked pixels are black."""
    data = np.ma.asarray(band)
    values = np.ma.getdata(data).astype(np.int64)
    valid = ~np.ma.getmaskarray(data)
    out = np.zeros((3, *values.shape), dtype=np.uint8)
    classes = np.unique(values[valid]) if valid.any() else np.array([], dtype=np.int64)
    table = dict(table or {})
    for index, value in enumerate(classes.tolist()):
        colour = table.get(value)
        rgb = tuple(colour[:3]) if colour is not None else PALETTE[index % len(PALETTE)]
        where = valid & (values == value)
        for channel in range(3):
            out[channel][where] = rgb[channel]
    return out
