"""Coarse SCL reads from the file's own overviews (the real 29RKH SCL: 200 m, one
nearest-neighbour overview at 400 m, tagged so by GDAL), against the overview's pixels
picked by hand, and full resolution where an overview could not hold true classes."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from tilefleet.recipes.ttc_ard.overviews import class_overview_level, read_classes
from tilefleet.tiles.tile import aligned_geobox
from ttc_ard.catalogs import S2_FOLDER

EPSG = 32629  # the scene's own UTM zone
BOX = (230000.0, 2720000.0, 280000.0, 2770000.0)  # 50 km inside the scene


@pytest.fixture
def scl(data_dir):
    return data_dir / S2_FOLDER / "SCL.tif"


def test_the_coarsest_overview_still_as_fine_as_the_grid(scl, tmp_path):
    with rasterio.open(scl) as dataset:
        assert dataset.overviews(1) == [2]
        assert class_overview_level(dataset, 1, 640.0) == 0  # 400 m serves 640 m
        assert class_overview_level(dataset, 1, 400.0) == 0
        assert class_overview_level(dataset, 1, 300.0) is None  # finer: full resolution
        profile, classes = dataset.profile, dataset.read(1)
    # The same classes, overviews averaged: never used for classes.
    averaged = tmp_path / "averaged.tif"
    with rasterio.open(averaged, "w", **profile) as out:
        out.write(classes, 1)
        out.build_overviews([2], rasterio.enums.Resampling.average)
        out.update_tags(OVR_RESAMPLING_ALG="AVERAGE")
    with rasterio.open(averaged) as dataset:
        assert dataset.overviews(1) == [2]
        assert class_overview_level(dataset, 1, 640.0) is None


def test_a_640_m_read_is_the_overviews_nearest_pixels(scl):
    grid = aligned_geobox(BOX, 640.0, EPSG)
    values, valid = read_classes(str(scl), 1, grid)
    assert values.shape == grid.shape.yx and valid.all()
    with rasterio.open(scl, overview_level=0) as overview:
        classes, transform = overview.read(1), overview.transform
    xs = grid.affine.c + (np.arange(grid.shape.x) + 0.5) * grid.affine.a
    ys = grid.affine.f + (np.arange(grid.shape.y) + 0.5) * grid.affine.e
    cols = np.floor((xs - transform.c) / transform.a).astype(int)
    rows = np.floor((ys - transform.f) / transform.e).astype(int)
    expected = classes[np.ix_(rows, cols)]
    assert np.array_equal(values, expected)
    assert set(np.unique(values)) <= {2, 5, 7, 8, 9, 10}  # classes, not averages
    # A grid reaching past the scene: the pixels outside are not valid.
    west, south, east, north = BOX
    beyond = aligned_geobox((west - 60000, south, east, north), 640.0, EPSG)
    _, valid = read_classes(str(scl), 1, beyond)
    centres = beyond.affine.c + (np.arange(beyond.shape.x) + 0.5) * beyond.affine.a
    inside = centres > transform.c  # east of the scene's west edge
    assert 0 < inside.mean() < 1
    assert np.array_equal(valid, np.broadcast_to(inside, valid.shape))
