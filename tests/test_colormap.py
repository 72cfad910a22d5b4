"""Categorical previews: a class band (an SCL band, a class map with or without a colour
table) gets one colour per class instead of a grey stretch."""

from __future__ import annotations

import numpy as np
import rasterio

from helpers import run_cogify
from tilefleet.ops.colormap import MAX_CLASSES, PALETTE, class_colours, is_categorical


def test_few_integer_values_or_a_colour_table_are_classes():
    classes = np.ma.masked_equal(np.array([[0, 4, 4], [5, 8, 9]], dtype=np.uint8), 0)
    assert is_categorical(classes)
    grey = np.ma.asarray(np.arange(256, dtype=np.uint8).reshape(16, 16))
    assert not is_categorical(grey) and is_categorical(grey, has_table=True)
    assert not is_categorical(np.ma.asarray(np.linspace(0, 1, 9).reshape(3, 3)))
    many = np.ma.asarray(np.arange(MAX_CLASSES + 1, dtype=np.uint16))
    assert not is_categorical(many) and is_categorical(many[:MAX_CLASSES])


def test_class_colours_follow_the_table_then_the_palette_and_nodata_is_black():
    band = np.ma.masked_equal(np.array([[0, 4, 4], [5, 8, 8]], dtype=np.uint8), 0)
    image = class_colours(band, {4: (10, 20, 30, 255)})
    assert image.shape == (3, 2, 3) and image.dtype == np.uint8
    assert tuple(image[:, 0, 1]) == (10, 20, 30)  # from the table
    assert tuple(image[:, 1, 0]) == PALETTE[1] and tuple(image[:, 1, 1]) == PALETTE[2]
    assert tuple(image[:, 0, 0]) == (0, 0, 0)  # masked
    # Distinct classes, distinct colours.
    assert len({tuple(image[:, r, c]) for r, c in ((0, 1), (1, 0), (1, 1))}) == 3


def test_cogify_previews_an_scl_band_and_a_paletted_raster_in_colour(inputs, tmp_path):
    paletted = inputs / "classes.tif"
    classes = np.repeat(np.arange(1, 5, dtype=np.uint8), 64).reshape(16, 16)
    profile = {"driver": "GTiff", "width": 16, "height": 16, "count": 1, "dtype": "uint8"}
    with rasterio.open(paletted, "w", **profile) as ds:
        ds.write(classes, 1)
        ds.write_colormap(1, {1: (255, 0, 0, 255), 2: (0, 0, 255, 255), 3: (0, 255, 0, 255)})
    manifest = tmp_path / "m.csv"
    manifest.write_text("s2/SCL.tif,1\nclasses.tif,1\ns2/B02.tif,1\n")
    result = run_cogify(manifest, inputs, tmp_path / "out", tmp_path / "run")
    assert result.exit_code == 0
    with (
        rasterio.open(tmp_path / "out/s2/SCL.jpg") as jpg,
        rasterio.open(inputs / "s2/SCL.tif") as src,
    ):
        image, scl = jpg.read(), src.read(1)
    assert image.shape[0] == 3  # colours, not a grey band
    # Pixels of one class share a colour, different classes differ (JPEG: within a margin).
    values = [v for v in np.unique(scl) if v and (scl == v).sum() > 5000]
    means = {v: image[:, scl == v].mean(axis=1) for v in values}
    assert len(values) >= 2
    for a in values:
        for b in values:
            if a < b:
                assert np.abs(means[a] - means[b]).max() > 40, (a, b)
    with rasterio.open(tmp_path / "out/classes.jpg") as jpg:
        image = jpg.read()
    assert image.shape[0] == 3
    red, blue = image[:, 2, 2], image[:, 6, 2]  # rows 0-3: class 1, rows 4-7: class 2
    assert red[0] > 200 and red[2] < 60 and blue[2] > 200 and blue[0] < 60
    with rasterio.open(tmp_path / "out/s2/B02.jpg") as jpg:  # a measure stays grey
        assert jpg.count == 1
