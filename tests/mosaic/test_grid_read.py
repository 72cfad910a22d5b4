"""Reading real Sentinel-2 bands onto tile grids, against rasterio's own reprojection."""

from __future__ import annotations

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling
from rasterio.warp import reproject

from tilefleet.sources.grid_read import BandSource, GridReader
from tilefleet.tiles.tile import aligned_geobox


def reprojected(path, band, geobox, resampling):
    with rasterio.open(path) as src:
        out = np.full((geobox.shape.y, geobox.shape.x), src.nodata, dtype=src.dtypes[band - 1])
        reproject(
            rasterio.band(src, band),
            out,
            dst_transform=geobox.affine,
            dst_crs=geobox.crs.to_wkt(),
            dst_nodata=src.nodata,
            resampling=resampling,
        )
    return out


def test_a_grid_on_the_source_lattice_reads_the_pixels_unchanged(data_dir):
    path = data_dir / "s2_openeo_3dates_be/openEO_2023-06-01Z.tif"
    # 5 pixels wider than the chip on the west and 3 on the north: those are not covered.
    geobox = aligned_geobox((644500, 5675770, 645280, 5676380), 10, "EPSG:32631")
    with GridReader(geobox) as reader, rasterio.open(path) as src:
        values, valid = reader.read(BandSource(str(path), 2), slice(0, geobox.shape.y))
        whole = src.read(2)
    assert values.shape == (61, 78)
    assert not valid[:3].any() and not valid[:, :5].any()
    np.testing.assert_array_equal(values[3:, 5:], whole)
    assert valid[3:, 5:].all()


def test_another_grid_is_warped_like_gdal_does(data_dir):
    path = data_dir / "s2_l2a_29RKH_20200219/B04.tif"
    # A 300 m grid in the neighbouring UTM zone: a real warp, partly outside the scene.
    geobox = aligned_geobox((790000, 2700000, 830000, 2730000), 300, "EPSG:32628")
    want = reprojected(path, 1, geobox, Resampling.bilinear)
    with GridReader(geobox) as reader:
        top = reader.read(BandSource(str(path)), slice(0, 40), Resampling.bilinear)
        rest = reader.read(BandSource(str(path)), slice(40, geobox.shape.y), Resampling.bilinear)
    values = np.concatenate([top[0], rest[0]])
    valid = np.concatenate([top[1], rest[1]])
    np.testing.assert_array_equal(values, want)
    np.testing.assert_array_equal(valid, want != 0)
    assert 0 < valid.mean() < 1


def test_a_declared_nodata_is_used_when_the_file_has_none(data_dir, tmp_path):
    src_path = data_dir / "non_cog_multiband/RGB.byte.tif"
    plain = tmp_path / "plain.tif"
    with rasterio.open(src_path) as src:
        profile = {**src.profile, "nodata": None}
        with rasterio.open(plain, "w", **profile) as dst:
            dst.write(src.read())
        geobox = GeoBox(src.shape, src.transform, src.crs)  # the file's own grid
        truth = src.read(1) != 0
    with GridReader(geobox) as reader:
        rows = slice(0, geobox.shape.y)
        _, undeclared = reader.read(BandSource(str(plain)), rows)
        _, declared = reader.read(BandSource(str(plain), 1, 0), rows)
    assert undeclared.all()
    np.testing.assert_array_equal(declared, truth)
    assert 0.5 < declared.mean() < 1


def test_coarser_pixels_on_the_same_lattice_are_repeated_like_nearest_warping(data_dir):
    # 20 m grid over MGRS 29RKH: the 200 m SCL and 100 m red band sit on its lattice.
    geobox = aligned_geobox((250_000, 2_740_000, 262_020, 2_750_000), 20, "EPSG:32629")
    for name, band in (("SCL.tif", 1), ("B04.tif", 1)):
        path = data_dir / "s2_l2a_29RKH_20200219" / name
        want = reprojected(path, band, geobox, Resampling.nearest)
        with GridReader(geobox) as reader:
            view_rows = (slice(0, 7), slice(7, 333), slice(333, geobox.shape.y))
            parts = [reader.read(BandSource(str(path)), rows) for rows in view_rows]
            (view,) = reader._views.values()
            assert view.vrt is None and view.lattice[0] in (5, 10)  # no warper involved
        values = np.concatenate([p[0] for p in parts])
        np.testing.assert_array_equal(values, want)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), want != 0)
    with GridReader(geobox) as reader:  # any other resampling of coarser pixels is warped
        reader.read(BandSource(str(path)), slice(0, 5), Resampling.bilinear)
        (view,) = reader._views.values()
        assert view.vrt is not None
