"""The mosaic's pixel operations against independent numpy computations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tilefleet.ops.median import masked_median
from tilefleet.ops.true_color import true_color


def reference_median(stack, valid, dtype, nodata):
    values = np.where(valid, stack.astype(np.float64), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        median = np.nanmedian(values, axis=0)
    empty = np.isnan(median)
    if np.dtype(dtype).kind in "iu":
        median = np.rint(np.where(empty, 0, median))
    out = median.astype(dtype)
    out[empty] = nodata
    return out


@pytest.mark.parametrize(
    ("dtype", "low", "high", "nodata"),
    [("uint16", 0, 65536, 0), ("int16", -32768, 32768, -32768), ("float32", -1.0, 1.0, np.nan)],
)
@pytest.mark.parametrize("observations", [1, 2, 7, 24])
def test_masked_median_matches_nanmedian(dtype, low, high, nodata, observations):
    rng = np.random.default_rng(observations)
    shape = (observations, 37, 53)
    if np.dtype(dtype).kind == "f":
        stack = rng.uniform(low, high, shape).astype(dtype)
    else:
        stack = rng.integers(low, high, shape, dtype=dtype)
    valid = rng.random(shape) < 0.6
    valid[:, :4, :4] = False  # pixels never seen
    valid[:, 5, 5] = True  # a pixel seen every time
    got = masked_median(stack, valid, dtype=dtype, nodata=nodata)
    want = reference_median(stack, valid, dtype, nodata)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[0, 0]) if np.isnan(nodata) else got[0, 0] == nodata


def test_extreme_values_are_not_confused_with_the_invalid_fill():
    stack = np.array([[[65535]], [[65535]], [[7]]], dtype=np.uint16)
    valid = np.array([[[True]], [[True]], [[False]]])
    assert masked_median(stack, valid, dtype="uint16", nodata=0)[0, 0] == 65535
    valid[2] = True
    assert masked_median(stack, valid, dtype="uint16", nodata=0)[0, 0] == 65535
    assert masked_median(stack, valid, dtype="float32", nodata=np.nan)[0, 0] == 65535.0


def test_an_even_count_averages_the_middle_pair_and_rounds_half_to_even():
    stack = np.array([[[10, 11]], [[13, 12]]], dtype=np.uint16)
    valid = np.ones(stack.shape, dtype=bool)
    np.testing.assert_array_equal(masked_median(stack, valid, dtype="uint16", nodata=0), [[12, 12]])
    np.testing.assert_array_equal(
        masked_median(stack, valid, dtype="float32", nodata=np.nan), [[11.5, 11.5]]
    )


def test_true_color_maps_reflectance_through_the_sigmoid():
    red = np.array([[0, 1250, 10000, 20000, 500]], dtype=np.uint16)
    valid = np.array([[True, True, True, True, False]])
    rgba = true_color(red, red, red, valid)
    assert rgba.shape == (4, 1, 5) and rgba.dtype == np.uint8
    assert rgba[0, 0, 0] == 0 and rgba[0, 0, 2] == 255 and rgba[0, 0, 3] == 255  # clipped at 1
    # At the threshold (reflectance 0.125) the curve is at its mid-point.
    low, high = 1 / (1 + np.exp(1.25)), 1 / (1 + np.exp(-8.75))
    assert rgba[0, 0, 1] == round((0.5 - low) / (high - low) * 255)
    np.testing.assert_array_equal(rgba[3, 0], [255, 255, 255, 255, 0])
    assert (rgba[:, 0, 4] == 0).all()
