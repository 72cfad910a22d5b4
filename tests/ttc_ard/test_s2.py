"""The ``s2`` product on the real 29RKH L2A scene (bands and SCL) behind a loopback STAC
API, listed on several dates (see ``catalogs.s2_items``: the real date, three more days
of 2020 with 31 December among them, and a cloudy day whose SCL is the real one with bare
soil relabelled as cloud)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import xarray as xr
from pyproj import Transformer

import tilefleet
from stac_validation import stac_errors
from ttc_ard.catalogs import (
    S2_CLEAR_DATES,
    S2_CLOUDY_DATE,
    S2_FOLDER,
    S2_ITEM,
    S2_TILE,
    S2_TILE_CLOUDY_DATE,
)


@pytest.fixture(scope="module")
def s2_run(tmp_path_factory, tiledb, s2_api):
    tmp = tmp_path_factory.mktemp("s2")
    tiles = tmp / "tiles.csv"
    tiles.write_text(f"Year,X_tile,Y_tile\n2020,{S2_TILE[0]},{S2_TILE[1]}\n")
    result = tilefleet.run(
        "ttc-ard", tiles=str(tiles), tiledb=str(tiledb), dest=str(tmp / "out"),
        products=["s2"], stac_url=s2_api.url, run_dir=str(tmp / "run"), workers=1,
        progress=False,
    )  # fmt: skip
    return result, tmp / f"out/2020/{S2_TILE[0]}/{S2_TILE[1]}"


def test_cloudy_days_are_dropped_and_31_december_kept(s2_run):
    result, folder = s2_run
    assert result.exit_code == 0, [f.reason for f in result.failed]
    series = xr.open_zarr(folder / "s2.zarr", consolidated=False)
    days = [str(t)[:10] for t in series.time.values]
    assert days == list(S2_CLEAR_DATES) and S2_CLOUDY_DATE not in days
    assert series.day_of_year.values.tolist() == [50, 72, 163, 366]  # 2020 is a leap year
    assert f"{S2_ITEM}-as-{S2_CLOUDY_DATE}" not in series.scene.values.tolist()
    item = json.loads((folder / "s2.json").read_text())
    assert item["properties"]["tilefleet:dates"][-1] == "2020-12-31"
    assert item["properties"]["end_datetime"].startswith("2020-12-31")
    assert item["properties"]["proj:code"] == "EPSG:32629"
    lineage = item["properties"]["processing:lineage"]
    assert S2_CLOUDY_DATE not in lineage  # dropped by stage 1, on the 15-tile box
    # Stage 1 kept the day cloudy over the tile only (its box is mostly clear), stage 2
    # dropped it on the tile.
    # (Not 100 %: the tile's SCL grid is snapped outwards to whole 160 m pixels.)
    assert f"dropped as cloudy on the tile: {S2_ITEM}-as-{S2_TILE_CLOUDY_DATE} (9" in lineage
    assert S2_TILE_CLOUDY_DATE not in days
    assert result.report["results"]["dropped"] == 1 and result.report["results"]["dates"] == 4
    assert stac_errors(folder / "s2.json") == []


def test_bands_are_the_scene_scaled_on_its_native_utm_grid(s2_run, data_dir):
    _, folder = s2_run
    series = xr.open_zarr(folder / "s2.zarr", consolidated=False)
    assert series.s2_10.dtype == np.uint16 and series.s2_10.shape[:2] == (4, 4)
    assert series.s2_20.shape[2] * 2 == pytest.approx(series.s2_10.shape[2], abs=1)
    assert series.cirrus.dtype == np.uint8
    # ~6.2 km at 10 m: the tile's square in UTM 29N.
    assert 600 <= series.s2_10.shape[2] <= 640 and 540 <= series.s2_10.shape[3] <= 640
    # Every 37th pixel against the B04 and B11 files read at that pixel's centre.
    red = series.s2_10.sel(band10="B04").isel(time=0).values
    swir = series.s2_20.sel(band20="B11").isel(time=0).values
    for name, values, xs, ys in (
        ("B04", red, series.x.values, series.y.values),
        ("B11", swir, series.x20.values, series.y20.values),
    ):
        rows, cols = np.meshgrid(np.arange(0, len(ys), 37), np.arange(0, len(xs), 37))
        with rasterio.open(data_dir / S2_FOLDER / f"{name}.tif") as src:
            points = zip(xs[cols.ravel()], ys[rows.ravel()], strict=True)
            dn = np.array([v[0] for v in src.sample(points)])
        expected = np.rint(np.clip(dn / 10000, 0, 1) * 65535).astype(np.uint16)
        assert (values[rows.ravel(), cols.ravel()] == expected).all(), name
    assert 0 < red.mean() < 65535


def test_the_tile_is_where_the_database_says(s2_run, tiledb):
    _, folder = s2_run
    item = json.loads((folder / "s2.json").read_text())
    west, south, east, north = item["bbox"]
    assert east - west == pytest.approx(1 / 18)
    series = xr.open_zarr(folder / "s2.zarr", consolidated=False)
    to_lonlat = Transformer.from_crs(32629, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(float(series.x.mean()), float(series.y.mean()))
    assert lon == pytest.approx((west + east) / 2, abs=0.002)
    assert lat == pytest.approx((south + north) / 2, abs=0.002)


def test_the_zarr_store_goes_to_s3_whole_then_its_item(tmp_path, tiledb, s2_api, s3, s2_run):
    s3.create_bucket(Bucket="ttc")
    tiles = tmp_path / "tiles.csv"
    tiles.write_text(f"Year,X_tile,Y_tile\n2020,{S2_TILE[0]},{S2_TILE[1]}\n")
    result = tilefleet.run(
        "ttc-ard", tiles=str(tiles), tiledb=str(tiledb), dest="s3://ttc/ard", products=["s2"],
        stac_url=s2_api.url, run_dir=str(tmp_path / "run"), workers=1, progress=False,
    )  # fmt: skip
    assert result.exit_code == 0, [f.reason for f in result.failed]
    prefix = f"ard/2020/{S2_TILE[0]}/{S2_TILE[1]}/"
    keys = {o["Key"].removeprefix(prefix) for o in s3.list_objects_v2(Bucket="ttc")["Contents"]}
    _, local = s2_run
    expected = {str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()}
    assert keys == expected and "s2.zarr/zarr.json" in keys and "s2.json" in keys
