"""``format: hkl``: the seed pipeline's hickle files, read back with ``hickle.load``, hold
the same arrays as the cloud-native outputs of the same tile (in the seed's axis order,
dtypes, folders and file names), each product's item is written beside them last, and
the files go through the store to S3 too."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pytest
import rasterio
import xarray as xr

import tilefleet
from stac_validation import stac_errors
from tilefleet.recipes.ttc_ard.hkl import legacy_day
from ttc_ard.catalogs import DEM_TILE, S1_TILE, S2_TILE, S2_TILE_CLOUDY_DATE

hickle = pytest.importorskip("hickle")


def run(tmp_path, tiledb, product, tile, year, **options):
    tmp_path.mkdir(parents=True, exist_ok=True)
    tiles = tmp_path / "tiles.csv"
    tiles.write_text(f"Year,X_tile,Y_tile\n{year},{tile[0]},{tile[1]}\n")
    result = tilefleet.run(
        "ttc-ard", tiles=str(tiles), tiledb=str(tiledb), dest=str(tmp_path / "out"),
        products=[product], run_dir=str(tmp_path / "run"), workers=1, progress=False,
        **options,
    )  # fmt: skip
    assert result.exit_code == 0, [f.reason for f in result.failed]
    return result


def raw_folder(tmp_path, year, tile):
    return tmp_path / f"out/{year}/raw/{tile[0]}/{tile[1]}/raw"


def check_item(folder, product, expected_files):
    """The item beside the files: valid STAC, one asset per file, all present."""
    item_path = folder / f"{product}.json"
    item = json.loads(item_path.read_text())
    hrefs = {asset["href"].removeprefix("./") for asset in item["assets"].values()}
    assert hrefs == set(expected_files)
    written = {str(p.relative_to(folder)) for p in folder.rglob("*.hkl")}
    assert written == set(expected_files)
    assert stac_errors(item_path) == []
    return item


def test_dem_hkl_is_the_cog_slope(tmp_path, tiledb, dem_catalog):
    native = run(tmp_path / "native", tiledb, "dem", DEM_TILE, 2023, catalog=str(dem_catalog))
    hkl = run(tmp_path / "hkl", tiledb, "dem", DEM_TILE, 2023, catalog=str(dem_catalog),
              format="hkl")  # fmt: skip
    assert native.exit_code == hkl.exit_code == 0
    tile_id = f"{DEM_TILE[0]}X{DEM_TILE[1]}Y"
    folder = raw_folder(tmp_path / "hkl", 2023, DEM_TILE)
    item = check_item(folder, "dem", [f"misc/dem_{tile_id}.hkl"])
    assert item["properties"]["tilefleet:product"] == "dem"
    slope = hickle.load(str(folder / f"misc/dem_{tile_id}.hkl"))
    with rasterio.open(tmp_path / f"native/out/2023/{DEM_TILE[0]}/{DEM_TILE[1]}/dem.tif") as src:
        expected = src.read(1)
    assert slope.dtype == np.float32 and slope.shape == (600, 600)
    assert np.array_equal(slope, expected) and slope.max() > 20
    assert not (tmp_path / f"hkl/out/2023/{DEM_TILE[0]}").exists()  # no native output


def test_s1_hkl_repeats_each_quarter_three_times_and_keeps_the_missing_one(
    tmp_path, tiledb, s1_catalog
):
    run(tmp_path / "native", tiledb, "s1", S1_TILE, 2018, catalog=str(s1_catalog))
    result = run(tmp_path / "hkl", tiledb, "s1", S1_TILE, 2018, catalog=str(s1_catalog),
                 format="hkl")  # fmt: skip
    (warning,) = result.report["warnings"]
    assert "Q4 (Oct 15-Dec 15)" in warning["warning"]  # the missing quarter is still named
    tile_id = f"{S1_TILE[0]}X{S1_TILE[1]}Y"
    folder = raw_folder(tmp_path / "hkl", 2018, S1_TILE)
    item = check_item(folder, "s1", [f"s1/{tile_id}.hkl", f"misc/s1_dates_{tile_id}.hkl"])
    assert item["properties"]["tilefleet:quarters_missing"] == [4]
    s1 = hickle.load(str(folder / f"s1/{tile_id}.hkl"))
    dates = hickle.load(str(folder / f"misc/s1_dates_{tile_id}.hkl"))
    with rasterio.open(tmp_path / f"native/out/2018/{S1_TILE[0]}/{S1_TILE[1]}/s1.tif") as src:
        bands = src.read()  # VV_Q1..VV_Q4, VH_Q1..VH_Q4
    assert s1.dtype == np.uint16 and s1.shape == (12, *bands.shape[1:], 2)
    assert (
        dates.dtype == np.int64 and dates.tolist() == [45] * 3 + [135] * 3 + [225] * 3 + [315] * 3
    )
    for quarter in range(4):
        for step in range(3):
            assert np.array_equal(s1[quarter * 3 + step, ..., 0], bands[quarter])  # VV
            assert np.array_equal(s1[quarter * 3 + step, ..., 1], bands[4 + quarter])  # VH
    assert (s1[9:] == 0).all() and (s1[:9] > 0).mean() > 0.99  # Q4 in place, nodata


@pytest.fixture(scope="module")
def s2_both(tmp_path_factory, tiledb, s2_api):
    tmp = tmp_path_factory.mktemp("s2-hkl")
    run(tmp / "native", tiledb, "s2", S2_TILE, 2020, stac_url=s2_api.url)
    run(tmp / "hkl", tiledb, "s2", S2_TILE, 2020, stac_url=s2_api.url, format="hkl")
    series = xr.open_zarr(
        tmp / f"native/out/2020/{S2_TILE[0]}/{S2_TILE[1]}/s2.zarr", consolidated=False
    )
    return series, raw_folder(tmp / "hkl", 2020, S2_TILE)


def test_s2_hkl_holds_the_zarr_series_in_the_seed_layout(s2_both):
    series, folder = s2_both
    t = f"{S2_TILE[0]}X{S2_TILE[1]}Y"
    files = {
        "s2_10": f"s2_10/{t}.hkl", "s2_20": f"s2_20/{t}.hkl", "s2_dates": f"misc/s2_dates_{t}.hkl",
        "cloudmask": f"clouds/cloudmask_{t}.hkl", "clean_steps": f"clouds/clean_steps_{t}.hkl",
        "clouds": f"clouds/clouds_{t}.hkl",
    }  # fmt: skip
    check_item(folder, "s2", files.values())
    arrays = {name: hickle.load(str(folder / path)) for name, path in files.items()}
    s2_10, s2_20 = series.s2_10.values, series.s2_20.values  # (time, band, y, x)
    times, h, w = s2_10.shape[0], s2_10.shape[2], s2_10.shape[3]
    assert arrays["s2_10"].dtype == np.uint16 and arrays["s2_10"].shape == (times, h, w, 4)
    assert arrays["s2_20"].dtype == np.uint16
    assert arrays["s2_20"].shape == (times, *s2_20.shape[2:], 6)
    assert np.array_equal(arrays["s2_10"], s2_10.transpose(0, 2, 3, 1))
    assert np.array_equal(arrays["s2_20"], s2_20.transpose(0, 2, 3, 1))
    assert arrays["cloudmask"].dtype == np.uint8
    assert np.array_equal(arrays["cloudmask"], series.cirrus.values)
    # The seed's 365-day calendar; 31 December is 365 and kept (the seed's % 365 lost it).
    assert arrays["s2_dates"].dtype == np.int64
    # 2020 is a leap year: the true days of year are 50, 72, 163, 366.
    assert arrays["s2_dates"].tolist() == [50, 71, 162, 365]
    days = [date.fromisoformat(str(v)[:10]) for v in series.time.values]
    assert arrays["s2_dates"].tolist() == [legacy_day(d, 2020) for d in days]
    # Stage 1 kept the day cloudy over the tile only; stage 2 dropped it.
    cloudy = legacy_day(date.fromisoformat(S2_TILE_CLOUDY_DATE), 2020)
    assert arrays["clean_steps"].tolist() == sorted([*arrays["s2_dates"].tolist(), cloudy])
    clouds = arrays["clouds"]  # every stage-1 day: 0 clear, NaN bad
    assert clouds.dtype == np.float32 and clouds.ndim == 3 and clouds.shape[0] == 6
    assert set(np.unique(clouds[np.isfinite(clouds)]).tolist()) == {0.0}
    assert np.isnan(clouds).any() and (clouds == 0).mean() > 0.3


def test_legacy_day_numbers():
    assert legacy_day(date(2021, 1, 1), 2021) == 1
    assert legacy_day(date(2021, 12, 31), 2021) == 365
    assert legacy_day(date(2020, 12, 31), 2020) == 365  # a leap year too: 365 days a year
    assert legacy_day(date(2020, 2, 29), 2020) == legacy_day(date(2020, 3, 1), 2020) == 60


def test_hkl_files_go_to_s3_then_the_item(tmp_path, tiledb, dem_catalog, s3):
    s3.create_bucket(Bucket="ttc")
    tiles = tmp_path / "tiles.csv"
    tiles.write_text(f"Year,X_tile,Y_tile\n2023,{DEM_TILE[0]},{DEM_TILE[1]}\n")
    result = tilefleet.run(
        "ttc-ard", tiles=str(tiles), tiledb=str(tiledb), dest="s3://ttc/ard", products=["dem"],
        catalog=str(dem_catalog), format="hkl", run_dir=str(tmp_path / "run"), workers=1,
        progress=False,
    )  # fmt: skip
    assert result.exit_code == 0, [f.reason for f in result.failed]
    tile_id = f"{DEM_TILE[0]}X{DEM_TILE[1]}Y"
    prefix = f"ard/2023/raw/{DEM_TILE[0]}/{DEM_TILE[1]}/raw/"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="ttc")["Contents"]}
    assert keys == {f"{prefix}misc/dem_{tile_id}.hkl", f"{prefix}dem.json"}
    local = tmp_path / "dem.hkl"
    local.write_bytes(
        s3.get_object(Bucket="ttc", Key=f"{prefix}misc/dem_{tile_id}.hkl")["Body"].read()
    )
    slope = hickle.load(str(local))
    assert slope.shape == (600, 600) and slope.dtype == np.float32 and slope.max() > 20


def test_hkl_without_hickle_is_one_line_before_any_task(tmp_path, tiledb, dem_catalog, monkeypatch):
    """Without the hickle package every task would fail alike: the plan says it once."""
    import importlib.util

    from tilefleet.errors import JobError

    real = importlib.util.find_spec
    monkeypatch.setattr(  # this process cannot uninstall hickle; it is made not to find it
        importlib.util, "find_spec", lambda name, *a: None if name == "hickle" else real(name, *a)
    )
    with pytest.raises(JobError, match=r"format hkl needs the hickle package"):
        run(tmp_path, tiledb, "dem", DEM_TILE, 2023, catalog=str(dem_catalog), format="hkl")
    assert not (tmp_path / "out").exists()
