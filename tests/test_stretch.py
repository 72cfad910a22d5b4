import numpy as np
import pytest

from tilefleet.ops.stretch import _stretch_any, to_display_bytes


@pytest.mark.parametrize("dtype", ["uint16", "int16", "int8"])
def test_integer_lookup_path_matches_the_percentile_definition(dtype):
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    data = rng.integers(info.min, info.max, size=(2, 300, 200), endpoint=True).astype(dtype)
    data[1] = np.clip(data[1] // 16, info.min, info.max)  # a narrower range in band 2
    mask = rng.random(data.shape) < 0.1
    out = to_display_bytes(np.ma.masked_array(data, mask))
    for band in range(2):
        expected = _stretch_any(data[band], ~mask[band], (2.0, 98.0))
        expected[mask[band]] = 0
        assert np.array_equal(out[band], expected)


def test_valid_pixels_use_1_to_255_and_nodata_is_black():
    data = np.ma.masked_array(np.arange(10000, dtype="uint16").reshape(1, 100, 100))
    data[0, :10] = np.ma.masked
    out = to_display_bytes(data)
    assert (out[0, :10] == 0).all()
    assert out[0, 10:].min() == 1 and out[0, 10:].max() == 255


def test_float_nan_is_nodata_and_constant_band_is_mid_grey():
    data = np.ones((2, 4, 4), dtype="float32")
    data[0, 0, 0] = np.nan
    out = to_display_bytes(np.ma.masked_array(data))
    assert out[0, 0, 0] == 0 and (out[0].ravel()[1:] == 128).all()


def test_byte_data_is_kept():
    data = np.ma.masked_array(np.arange(256, dtype="uint8").reshape(1, 16, 16))
    assert np.array_equal(to_display_bytes(data), data.data)


@pytest.mark.parametrize(
    ("dtype", "nodata"),
    [("uint16", 0), ("int16", -32768), ("float32", -9999.0), ("float32", float("nan"))],
)
def test_a_nodata_value_is_black_as_a_mask_of_it_is(dtype, nodata):
    """``nodata`` (no mask built: a lookup table entry, or rows checked in cache) gives
    the image a mask of the same pixels gives."""
    rng = np.random.default_rng(11)
    data = rng.normal(1000, 300, size=(1, 700, 500)).astype(dtype)
    data[0, rng.random((700, 500)) < 0.2] = nodata
    invalid = np.isnan(data) if np.isnan(nodata) else data == data.dtype.type(nodata)
    with_value = to_display_bytes(data, nodata=nodata)
    assert np.array_equal(with_value, to_display_bytes(np.ma.masked_array(data, invalid)))
    assert (with_value[invalid] == 0).all() and with_value[~invalid].min() >= 1


def test_the_float_stretch_in_rows_is_within_a_grey_level_of_the_definition():
    rng = np.random.default_rng(5)
    data = (rng.gamma(2.0, 50.0, size=(1, 600, 900)) + 3000).astype("float32")
    data[0, :3, :7] = np.inf
    valid = np.isfinite(data[0])
    exact = _stretch_any(data[0], valid, (2.0, 98.0))
    exact[~valid] = 0
    out = to_display_bytes(data)[0].astype(int)
    assert np.abs(out - exact).max() <= 1 and (out[~valid] == 0).all()
