"""The ``s1`` product from the real GRD measurements (warped by their GCPs) listed as
``sentinel-1-rtc`` items on several days: quarterly composites, AUTO orbit, a missing
quarter reported, never silently zero-filled."""

from __future__ import annotations

import json

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject

import tilefleet
from stac_validation import stac_errors
from ttc_ard.catalogs import S1_NODATA, S1_TILE


def test_quarters_from_one_orbit_and_a_missing_quarter_named(tmp_path, tiledb, s1_catalog):
    tiles = tmp_path / "tiles.csv"
    tiles.write_text(f"Year,X_tile,Y_tile\n2018,{S1_TILE[0]},{S1_TILE[1]}\n")
    result = tilefleet.run(
        "ttc-ard", tiles=str(tiles), tiledb=str(tiledb), dest=str(tmp_path / "out"),
        products=["s1"], catalog=str(s1_catalog), run_dir=str(tmp_path / "run"), workers=1,
        progress=False,
    )  # fmt: skip
    assert result.exit_code == 0, [f.reason for f in result.failed]
    (warning,) = result.report["warnings"]
    assert warning["task"] == f"s1/2018/{S1_TILE[0]}X{S1_TILE[1]}Y"
    assert warning["warning"] == (
        "no DESCENDING Sentinel-1 scene in Q4 (Oct 15-Dec 15): those quarters' bands are nodata"
    )
    folder = tmp_path / f"out/2018/{S1_TILE[0]}/{S1_TILE[1]}"
    item = json.loads((folder / "s1.json").read_text())
    props = item["properties"]
    assert props["tilefleet:quarters_present"] == [1, 2, 3]
    assert props["tilefleet:quarters_missing"] == [4]
    assert props["sat:orbit_state"] == "descending"
    assert props["tilefleet:quarter_dates"]["Q3"] == ["2018-07-16", "2018-07-28"]
    assert "ascending" not in " ".join(props["tilefleet:sources"])
    assert stac_errors(folder / "s1.json") == []
    with rasterio.open(folder / "s1.tif") as src:
        data = src.read()
        assert src.descriptions[3] == "VV_Q4 (missing)" and src.descriptions[0] == "VV_Q1"
        assert src.nodata == 0 and src.dtypes[0] == "uint16"
        transform, shape = src.transform, (src.height, src.width)
        vv_path = s1_catalog.parent / "sentinel-1-rtc/assets/iw-vv.rtc.tif"
        expected = np.full(shape, np.nan, dtype=np.float32)
        with rasterio.open(vv_path) as vv:
            reproject(
                rasterio.band(vv, 1), expected, dst_transform=transform, dst_crs="EPSG:4326",
                src_nodata=S1_NODATA, dst_nodata=np.nan, resampling=Resampling.bilinear,
            )  # fmt: skip
    assert (data[3] == 0).all() and (data[7] == 0).all()  # Q4: nodata, said so
    assert (data[[0, 1, 2, 4, 5, 6]] > 0).mean() > 0.99  # the tile lies inside the swath
    # Every quarter lists the same rasters, so each composite is that raster, scaled.
    scaled = np.rint(np.clip(expected, 0, 1) * 65535)
    inside = np.isfinite(expected) & (data[2] > 0)
    assert inside.mean() > 0.95
    assert np.percentile(np.abs(data[2][inside] - scaled[inside]), 99) <= 2
    assert (data[0] == data[2]).all()
