"""The ``dem`` product on the real Copernicus GLO-30 tile N00 E006 (Sao Tome), through a
static catalog and through a STAC API on loopback: slope against an independent
computation on the same grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from pyproj import Geod
from rasterio.enums import Resampling
from rasterio.warp import reproject

import tilefleet
from stac_validation import stac_errors
from ttc_ard.catalogs import DEM_FILE, DEM_TILE

# Slope tolerance (degrees) against the independent computation: the two read the DEM with
# different bilinear code paths (GDAL's warped VRT against rasterio.warp.reproject), and
# reading differences of ~1e-3 m over 2 x 10 m give well under this.
SLOPE_TOLERANCE_DEG = 0.05


def independent_slope(dem_path, bounds, resolution=1 / 10800):
    """The slope of the tile computed another way: the DEM reprojected bilinearly onto the
    same 1/3 arc-second grid (with a 1-pixel border), pixel spacings measured on the WGS84
    ellipsoid by pyproj.Geod between neighbouring pixel centres, np.gradient for the
    central differences."""
    west, south, east, north = bounds
    n = round((east - west) / resolution) + 2
    transform = rasterio.Affine(
        resolution, 0, west - resolution, 0, -resolution, north + resolution
    )
    z = np.zeros((n, n), dtype=np.float64)
    with rasterio.open(dem_path) as src:
        reproject(
            rasterio.band(src, 1), z, dst_transform=transform, dst_crs="EPSG:4326",
            resampling=Resampling.bilinear,
        )  # fmt: skip
    geod = Geod(ellps="WGS84")
    lats = north + resolution - (np.arange(n) + 0.5) * resolution
    lon = west
    _, _, dx = geod.inv(np.full(n, lon), lats, np.full(n, lon + resolution), lats)
    _, _, dy = geod.inv(
        np.full(n, lon), lats - resolution / 2, np.full(n, lon), lats + resolution / 2
    )
    dz_row = np.gradient(z, axis=0) / dy[:, None]
    dz_col = np.gradient(z, axis=1) / dx[:, None]
    slope = np.degrees(np.arctan(np.hypot(dz_row, dz_col)))[1:-1, 1:-1]
    slope[(slope > 0) & (slope < 0.02)] = 0.02
    return slope


def run_dem(tmp_path, tiledb, **source):
    x_tile, y_tile = DEM_TILE
    tmp_path.mkdir(parents=True, exist_ok=True)
    tiles = tmp_path / "tiles.csv"
    tiles.write_text(f"Year,X_tile,Y_tile\n2023,{x_tile},{y_tile}\n")
    return tilefleet.run(
        "ttc-ard", tiles=str(tiles), tiledb=str(tiledb), dest=str(tmp_path / "out"),
        products=["dem"], run_dir=str(tmp_path / "run"), workers=1, progress=False, **source,
    )  # fmt: skip


def check_dem_output(tmp_path, data_dir):
    x_tile, y_tile = DEM_TILE
    folder = tmp_path / f"out/2023/{x_tile}/{y_tile}"
    item = json.loads((folder / "dem.json").read_text())
    west, south, east, north = item["bbox"]
    with rasterio.open(folder / "dem.tif") as src:
        slope = src.read(1)
        assert src.dtypes[0] == "float32" and src.crs.to_epsg() == 4326
        assert (src.height, src.width) == (600, 600)  # 1/18 degree at 1/3 arc-second
        assert src.bounds.left == pytest.approx(west) and src.bounds.top == pytest.approx(north)
    expected = independent_slope(data_dir / DEM_FILE, (west, south, east, north))
    assert np.abs(slope - expected).max() < SLOPE_TOLERANCE_DEG
    assert slope.max() > 20  # the island's volcanic relief: a real signal, not zeros
    assert not ((slope > 0) & (slope < 0.02)).any()
    props = item["properties"]
    assert props["proj:code"] == "EPSG:4326" and props["proj:shape"] == [600, 600]
    assert "Copernicus_DSM_COG_10_N00_00_E006_00_DEM" in props["processing:lineage"]
    assert any("processing" in ext for ext in item["stac_extensions"])
    assert any("projection/v2" in ext for ext in item["stac_extensions"])
    assert stac_errors(folder / "dem.json") == []
    return slope


def test_dem_slope_from_a_static_catalog(tmp_path, data_dir, tiledb, dem_catalog):
    result = run_dem(tmp_path, tiledb, catalog=str(dem_catalog))
    assert result.exit_code == 0, [f.reason for f in result.failed]
    check_dem_output(tmp_path, data_dir)


def test_dem_slope_through_the_stac_api_and_the_seed_spacing(tmp_path, data_dir, tiledb, dem_api):
    result = run_dem(tmp_path / "ground", tiledb, stac_url=dem_api.url)
    assert result.exit_code == 0, [f.reason for f in result.failed]
    ground = check_dem_output(tmp_path / "ground", data_dir)
    seed = run_dem(tmp_path / "seed", tiledb, stac_url=dem_api.url, slope_spacing="seed")
    assert seed.exit_code == 0
    x_tile, y_tile = DEM_TILE
    with rasterio.open(tmp_path / f"seed/out/2023/{x_tile}/{y_tile}/dem.tif") as src:
        seed_slope = src.read(1)
    # At 0.25 N a 1/3 arc-second pixel is ~10.3 m by ~10.2 m: the seed's fixed 10 m makes
    # every gradient a few % steeper, never flatter.
    steep = ground > 5
    ratio = np.tan(np.radians(seed_slope[steep])) / np.tan(np.radians(ground[steep]))
    assert 1.0 < np.median(ratio) < 1.05


def test_a_tile_no_dem_covers_fails_with_the_reason(tmp_path, tiledb, dem_catalog):
    tiles = tmp_path / "tiles.csv"
    tiles.write_text("Year,X_tile,Y_tile\n2023,1035,727\n")  # Brazil: not in the catalog
    result = tilefleet.run(
        "ttc-ard", tiles=str(tiles), tiledb=str(tiledb), dest=str(tmp_path / "out"),
        products=["dem"], catalog=str(dem_catalog), run_dir=str(tmp_path / "run"),
        workers=1, progress=False,
    )  # fmt: skip
    assert result.exit_code == 2
    (failed,) = result.failed
    assert failed.id == "dem/2023/1035X727Y"
    assert failed.reason == "tile 1035X727Y: no cop-dem-glo-30 item covers it"
    assert failed.attempts == 1  # bad input is not retried


@pytest.mark.parametrize(
    "centre",
    [(6.6389, 0.3611), (6.01, 0.3), (6.99, 0.99), (7.1, 0.5)],
    ids=["inland", "west-edge", "north-east-corner", "outside"],
)
def test_the_dems_own_upsampling_is_gdals_bilinear_warp(data_dir, centre):
    """The DEM is read by window and interpolated in numpy: the same valid pixels as GDAL's
    bilinear warped VRT (edges and a tile past the raster included), and the same values
    to float32 rounding."""
    from tilefleet.recipes.ttc_ard.dem import RESOLUTION, upsample_bilinear
    from tilefleet.recipes.ttc_ard.inputs import degree_grid
    from tilefleet.sources.grid_read import BandSource, GridReader

    x, y = centre
    grid = degree_grid((x - 1 / 36, y - 1 / 36, x + 1 / 36, y + 1 / 36), RESOLUTION, border=1)
    path = str(data_dir / DEM_FILE)
    with GridReader(grid) as reader:
        gdal, gdal_valid = reader.read(
            BandSource(path), slice(0, grid.shape.y), Resampling.bilinear
        )
    with rasterio.open(path) as dataset:
        ours, valid = upsample_bilinear(dataset, 1, grid)
    assert ours.dtype == np.float32 and ours.shape == gdal.shape
    assert np.array_equal(valid, gdal_valid)
    if centre == (6.6389, 0.3611):
        assert valid.all() and ours.max() > 100  # the island's relief
    elif centre[0] < 7:  # at the raster's edges (sea there): part of the tile only
        assert 0.4 < valid.mean() < 0.7
    else:
        assert not valid.any()
    assert np.allclose(ours[valid], gdal[valid], rtol=0, atol=2e-4)  # m: float32 rounding
