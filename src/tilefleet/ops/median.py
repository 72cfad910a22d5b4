"""Per-pixel median of a stack of observations, ignoring the invalid ones.

Sorting along the observation axis and picking the middle of each pixel's valid values is
several times faster than ``np.nanmedian`` on image stacks and works on the integer data
directly: invalid values are replaced by the largest value of the type, so they sort after
every valid one (a valid value equal to it sorts beside it and is the same number).
"""

from __future__ import annotations

import numpy as np


def masked_median(
    stack: np.ndarray, valid: np.ndarray, *, dtype: np.dtype | str, nodata: float
) -> np.ndarray:
    """Median over axis 0 of ``stack`` (observations, rows, cols) where ``valid`` is True.

    An even number of valid values gives the mean of the middle two, rounded half to even
    when ``dtype`` is an integer type. Pixels with no valid value get ``nodata``.
    """
    dtype = np.dtype(dtype)
    if stack.shape != valid.shape or stack.ndim != 3:
        raise ValueError(f"stack {stack.shape} and valid {valid.shape} must be the same 3-D shape")
    count = valid.sum(axis=0, dtype=np.int32)
    # Observations last and contiguous: numpy sorts each pixel's run in cache.
    filled = np.moveaxis(stack, 0, -1).copy()
    sentinel = np.nan if filled.dtype.kind == "f" else np.iinfo(filled.dtype).max
    filled[~np.moveaxis(valid, 0, -1)] = sentinel
    filled.sort(axis=-1)
    low = np.take_along_axis(filled, np.maximum(count - 1, 0)[..., None] // 2, axis=-1)[..., 0]
    high = np.take_along_axis(filled, (count // 2)[..., None], axis=-1)[..., 0]
    middle = (low.astype(np.float64) + high) / 2.0
    if dtype.kind in "iu":
        middle = np.rint(middle)
    out = middle.astype(dtype)
    out[count == 0] = nodata
    return out
