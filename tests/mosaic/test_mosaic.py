"""The ``mosaic`` recipe end to end on real Sentinel-2 data, checked against independent numpy
computations on the same grids."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rio_cogeo.cogeo import cog_validate

from helpers import read_csv
from mosaic.outputs import TileStack, band_files, outputs
from mosaic.scenes import S2_SCENE, local_scene_item
from tilefleet.engine.run import run_job
from tilefleet.errors import JobError
from tilefleet.jobs import build_job
from tilefleet.recipes.mosaic import DEFAULT_SCL_MASK, month_end, months_between
from tilefleet.tiles.aoi import bbox_geometry, parse_bbox
from tilefleet.tiles.tile import aligned_geobox, transform_geometry

OPENEO_BBOX = "5.0705,51.2155,5.0795,51.2195"  # inside the three openEO chips
# June 2023 over the openEO chips (their three dates).
OPENEO_JUNE = {"bbox": OPENEO_BBOX, "start_date": "2023-06-01", "end_date": "2023-06-30"}
OPENEO_DATES = ("openEO_2023-06-01Z.tif", "sub-folder/openEO_2023-06-04Z.tif")
S2_BBOX = "-11.9,24.35,-10.95,25.25"  # most of MGRS tile 29RKH
S2_FEBRUARY = {"start_date": "2020-02-01", "end_date": "2020-02-29"}  # the L2A scene's month
# One month of the L2A scene's red band over a few tiles, at the files' 100 m.
S2_SMALL = {"bbox": "-11.5,24.6,-11.2,24.9", **S2_FEBRUARY, "bands": "red", "resolution": 100}


def run_mosaic(tmp_path: Path, **values):
    values = {
        "recipe": "mosaic",
        "dest": str(tmp_path / "out"),
        "run_dir": str(tmp_path / "run"),
        "workers": 2,
        "backoff_s": 0.05,
        **values,
    }
    return run_job(build_job(values))


def openeo_median(data_dir: Path) -> tuple[np.ndarray, rasterio.Affine]:
    """The per-pixel median of the three real dates, by np.nanmedian, on the chips' grid."""
    folder = data_dir / "s2_openeo_3dates_be"
    paths = [folder / name for name in (*OPENEO_DATES, "sub-folder/openEO_2023-06-06Z.tif")]
    stack = []
    for path in paths:
        with rasterio.open(path) as src:
            values = src.read().astype(np.float64)
            values[values == src.nodata] = np.nan
            stack.append(values)
            transform = src.transform
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(np.stack(stack), axis=0)
    return np.where(np.isnan(median), -32768, np.rint(median)).astype(np.int16), transform


def assert_same_mosaics(one: Path, two: Path, month: str) -> None:
    """The same tiles of a month, with the same grid and pixels, in two destinations."""
    a, b = outputs(one, month), outputs(two, month)
    assert [p.name for p in a] == [p.name for p in b] and a
    for first, second in zip(a, b, strict=True):
        with TileStack(first) as x, TileStack(second) as y:
            assert x.transform == y.transform
            np.testing.assert_array_equal(x.read(), y.read())


def test_median_of_three_real_dates_on_every_tile(data_dir, openeo_collection, tmp_path):
    result = run_mosaic(
        tmp_path,
        catalog=str(openeo_collection),
        **OPENEO_JUNE,
        bands="B04,B03,B02",
        tile_size=400,
        visual=True,
    )
    assert result.exit_code == 0, result.report
    expected, chip = openeo_median(data_dir)
    dest = tmp_path / "out"
    tiles = outputs(dest, "2023-06")
    assert len(tiles) == result.planned > 1  # the area spans several 400 m tiles
    compared = 0
    for path in tiles:
        assert all(cog_validate(str(band), quiet=True)[0] for band in band_files(path))
        with TileStack(path) as cog:
            assert cog.crs.to_epsg() == 32631 and cog.res == (10.0, 10.0)
            assert cog.dtypes == ("int16",) * 3 and cog.nodata == -32768
            assert cog.descriptions == ("B04", "B03", "B02")
            got = cog.read()
            col0 = round((cog.transform.c - chip.c) / 10)
            row0 = round((chip.f - cog.transform.f) / 10)
        # The tile's pixels that fall on the chips: the independent median; others nodata.
        want = np.full(got.shape, -32768, dtype=np.int16)
        rows = slice(max(row0, 0), min(row0 + got.shape[1], expected.shape[1]))
        cols = slice(max(col0, 0), min(col0 + got.shape[2], expected.shape[2]))
        want[:, rows.start - row0 : rows.stop - row0, cols.start - col0 : cols.stop - col0] = (
            expected[:, rows, cols]
        )
        np.testing.assert_array_equal(got, want)
        compared += int((want != -32768).sum())
        with rasterio.open(path.with_name(path.stem + "-visual.tif")) as visual:
            rgba = visual.read()
            assert visual.colorinterp[3] == rasterio.enums.ColorInterp.alpha
        assert rgba.dtype == np.uint8 and rgba.shape[0] == 4
        np.testing.assert_array_equal(rgba[3] == 255, got[0] != -32768)
    # Tiles are cut to the area: every chip pixel inside it is in exactly one tile.
    area = transform_geometry(bbox_geometry(parse_bbox(OPENEO_BBOX)), 4326, 32631)
    grid = aligned_geobox(area.bounds, 10.0, "EPSG:32631")
    col0, row0 = round((grid.affine.c - chip.c) / 10), round((chip.f - grid.affine.f) / 10)
    inside = expected[:, row0 : row0 + grid.shape[0], col0 : col0 + grid.shape[1]]
    assert 0 < inside.size < expected.size and compared == inside.size

    item = json.loads(tiles[0].read_text())
    props = item["properties"]
    assert props["datetime"] is None
    assert (props["start_datetime"], props["end_datetime"]) == (
        "2023-06-01T00:00:00Z",
        "2023-06-30T23:59:59.999999Z",
    )
    assert "of 3 scene(s) on 3 day(s)" in props["processing:lineage"]
    assert "used unmasked (no mask band)" in props["processing:lineage"]  # no SCL here
    warned = {w["task"] for w in result.report["warnings"]}
    assert warned == {f"monthly-mosaic-2023-06/{p.stem}" for p in tiles}
    assert "3 scene(s) without a mask band used unmasked" in result.report["warnings"][0]["warning"]
    assert "warnings (" in (tmp_path / "run/report.txt").read_text()
    assert props["proj:code"] == "EPSG:32631" and "proj:epsg" not in props
    assert {link["rel"] for link in item["links"]} >= {"collection", "derived_from"}
    assert item["assets"]["visual"]["href"].endswith("-visual.tif")
    collection = json.loads((dest / "collection.json").read_text())
    linked = sorted(link["href"] for link in collection["links"] if link["rel"] == "item")
    assert linked == sorted(f"./monthly-mosaic-2023-06/{p.stem}.json" for p in tiles)

    again = run_mosaic(  # a new run over the same destination: everything is done
        tmp_path,
        run_dir=str(tmp_path / "run2"),
        catalog=str(openeo_collection),
        **OPENEO_JUNE,
        bands="B04,B03,B02",
        tile_size=400,
        visual=True,
    )
    assert again.exit_code == 0 and again.report["skipped"] == len(tiles)


def test_the_scene_classification_layer_masks_clouds(data_dir, s2_catalog, tmp_path):
    result = run_mosaic(
        tmp_path,
        catalog=str(s2_catalog),
        bbox=S2_BBOX,
        **S2_FEBRUARY,
        bands="red,nir",
        resolution=100,
        tile_size=40_000,  # not on the scene's pixel lattice: every band is warped
    )
    assert result.exit_code == 0, result.report
    scene = data_dir / "s2_l2a_29RKH_20200219"
    masked = kept = 0
    for path in outputs(tmp_path / "out", "2020-02"):
        with TileStack(path) as cog:
            got = cog.read()
            grid = {"dst_transform": cog.transform, "dst_crs": cog.crs}
            shape = (cog.height, cog.width)
        scl = np.zeros(shape, dtype=np.uint8)
        with rasterio.open(scene / "SCL.tif") as src:
            reproject(rasterio.band(src, 1), scl, resampling=Resampling.nearest, **grid)
        clear = ~np.isin(scl, DEFAULT_SCL_MASK)
        for index, name in enumerate(("B04.tif", "B08.tif")):
            band = np.zeros(shape, dtype=np.uint16)
            with rasterio.open(scene / name) as src:
                reproject(rasterio.band(src, 1), band, resampling=Resampling.nearest, **grid)
            want = np.where(clear & (band != 0), band, 0)
            np.testing.assert_array_equal(got[index], want)
        masked += int((~clear & (scl != 0)).sum())
        kept += int((got[0] != 0).sum())
    assert masked > 100 and kept > 10 * masked  # real clouds were removed, land was kept
    item = json.loads(next((tmp_path / "out/monthly-mosaic-2020-02").glob("*.json")).read_text())
    assert "used unmasked" not in item["properties"]["processing:lineage"]
    # Items of an ItemCollection have no document of their own: lineage names them by id.
    assert "S2A_29RKH_20200219_0_L2A" in item["properties"]["processing:lineage"]


def test_a_month_without_scenes_is_a_warning_and_others_are_written(openeo_collection, tmp_path):
    result = run_mosaic(
        tmp_path,
        catalog=str(openeo_collection),
        bbox=OPENEO_BBOX,
        start_date="2023-06-01",
        end_date="2023-07-31",
        bands="B04",
    )
    # No failure, so a workflow step goes on: the month is a warning, and nothing is written.
    assert result.exit_code == 0 and result.counts["failed"] == 0
    (warning,) = [w for w in result.report["warnings"] if "2023-07" in w["task"]]
    assert warning["task"].startswith("monthly-mosaic-2023-07/32631_")
    assert "no scene covers tile 32631_" in warning["warning"]
    assert warning["warning"].endswith("in 2023-07: nothing written")
    assert len(outputs(tmp_path / "out", "2023-06")) == 1
    assert not (tmp_path / "out/monthly-mosaic-2023-07").exists()
    collection = json.loads((tmp_path / "out/collection.json").read_text())
    items = [link["href"] for link in collection["links"] if link["rel"] == "item"]
    assert len(items) == 1 and "2023-06" in items[0]


def test_the_last_day_of_the_month_is_inside_it(data_dir, openeo_collection, tmp_path):
    folder = openeo_collection.parent
    item = json.loads((folder / f"{OPENEO_DATES[0]}.json").read_text())
    item["properties"]["datetime"] = "2023-06-30T23:59:59.999Z"
    item["assets"]["openEO_2023-06-01Z.tif"]["href"] = str(folder / OPENEO_DATES[0])
    catalog = tmp_path / "items.json"
    catalog.write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    result = run_mosaic(
        tmp_path,
        catalog=str(catalog),
        bbox=OPENEO_BBOX,
        start_date="2023-06-30",
        end_date="2023-06-30",
        bands="B03",
    )
    assert result.exit_code == 0 and len(outputs(tmp_path / "out", "2023-06")) == 1
    assert months_between(*map(_date, ("2023-11-15", "2024-02-01"))) == [
        (2023, 11),
        (2023, 12),
        (2024, 1),
        (2024, 2),
    ]
    assert month_end(2023, 12).isoformat() == "2023-12-31T23:59:59.999999+00:00"


def _date(text: str):
    from datetime import date

    return date.fromisoformat(text)


def test_a_band_that_does_not_exist_fails_each_tile_with_the_reason(s2_catalog, tmp_path):
    result = run_mosaic(
        tmp_path,
        catalog=str(s2_catalog),
        bbox=S2_BBOX,
        **S2_FEBRUARY,
        bands="red,purple",
        resolution=100,
        tile_size=60_000,
    )
    assert result.exit_code == 2
    failed = read_csv(tmp_path / "run/failed.csv")
    assert len(failed) == result.planned > 1
    assert all(
        "purple" in row["reason"] and "S2A_29RKH_20200219_0_L2A" in row["reason"] for row in failed
    )


def test_an_unreadable_asset_fails_its_tile_with_the_file_named(data_dir, tmp_path):
    item = local_scene_item(data_dir)
    item["assets"]["red"]["href"] = str(tmp_path / "gone/B04.tif")
    catalog = tmp_path / "items.json"
    catalog.write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    result = run_mosaic(
        tmp_path,
        catalog=str(catalog),
        bbox="-11.5,24.7,-11.45,24.75",
        start_date="2020-02-19",
        end_date="2020-02-19",
        bands="red",
        resolution=100,
    )
    assert result.exit_code == 2
    (row,) = read_csv(tmp_path / "run/failed.csv")
    assert "cannot read input" in row["reason"] and "gone/B04.tif" in row["reason"]
    (task,) = read_csv(tmp_path / "run/tasks.csv")
    assert task["attempts"] == "1"  # a missing file is permanent: not retried


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"start_date": "2023-07-01", "end_date": "2023-06-01"}, "dates reversed"),
        ({"start_date": "2019-01-01", "end_date": "2019-01-31"}, "found no scene"),
        ({"bands": ""}, "bands"),
        ({"bbox": None}, "bbox (W,S,E,N) or aoi"),
    ],
)
def test_invalid_jobs_fail_before_running(openeo_collection, tmp_path, change, message):
    values = {
        "catalog": str(openeo_collection),
        **OPENEO_JUNE,
        "bands": "B04",
        **change,
    }
    with pytest.raises(JobError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_mosaic(tmp_path, **values)
    assert not (tmp_path / "out").exists()


def test_a_stac_api_gives_the_same_mosaic_as_the_static_catalog(
    openeo_collection, stac_api, tmp_path
):
    common = {
        **OPENEO_JUNE,
        "bands": "B04,B02",
    }
    static = run_mosaic(tmp_path / "static", catalog=str(openeo_collection), **common)
    stac_api.storm(2, status=429, retry_after="0")  # throttled at first: retried, not failed
    api = run_mosaic(tmp_path / "api", stac_url=stac_api.url, collections="openeo-mol", **common)
    assert static.exit_code == api.exit_code == 0
    (a,) = outputs(tmp_path / "static/out", "2023-06")
    (b,) = outputs(tmp_path / "api/out", "2023-06")
    with TileStack(a) as one, TileStack(b) as two:
        assert one.transform == two.transform
        np.testing.assert_array_equal(one.read(), two.read())
    item = json.loads(b.read_text())
    derived = [link["href"] for link in item["links"] if link["rel"] == "derived_from"]
    assert len(derived) == 3 and all(href.startswith(stac_api.url) for href in derived)


def test_scenes_read_over_http_from_a_stac_api_are_masked_alike(stac_api, s2_catalog, tmp_path):
    local = run_mosaic(tmp_path / "local", catalog=str(s2_catalog), **S2_SMALL)
    remote = run_mosaic(
        tmp_path / "remote", stac_url=stac_api.url, collections="sentinel-2-l2a", **S2_SMALL
    )
    assert local.exit_code == remote.exit_code == 0
    assert_same_mosaics(tmp_path / "local/out", tmp_path / "remote/out", "2020-02")


def test_hrefs_are_signed_on_the_worker_right_before_reading(
    openeo_collection, tmp_path, monkeypatch
):
    folder = openeo_collection.parent
    features = []
    for name in OPENEO_DATES:
        item = json.loads((folder / f"{name}.json").read_text())
        (asset,) = item["assets"].values()
        asset["href"] = str(folder / name) + "?unsigned"  # unreadable until signed
        features.append(item)
    catalog = tmp_path / "items.json"
    catalog.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    log = tmp_path / "signed.log"
    monkeypatch.setenv("TILEFLEET_TEST_SIGN_LOG", str(log))
    common = {
        "catalog": str(catalog),
        **OPENEO_JUNE,
        "bands": "B04",
    }
    unsigned = run_mosaic(tmp_path / "unsigned", **common)
    assert unsigned.exit_code == 2
    signed = run_mosaic(tmp_path / "signed", sign="mosaic.signing:sign", **common)
    assert signed.exit_code == 0
    calls = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert sorted(href for _pid, href in calls) == sorted(
        f"{folder / name}?unsigned" for name in OPENEO_DATES
    )
    assert os.getpid() not in {int(pid) for pid, _href in calls}  # signed on the workers
    with pytest.raises(JobError, match="cannot import"):
        run_mosaic(tmp_path / "bad", sign="mosaic.nowhere:sign", **common)


def test_scenes_catalog_and_outputs_on_s3(data_dir, s2_catalog, s3, tmp_path):
    """Everything on the loopback S3 server: GDAL reads the scenes inside the workers with
    the endpoint and keys of their environment, and the outputs land in a bucket."""
    s3.create_bucket(Bucket="scenes")
    s3.create_bucket(Bucket="mosaics")
    item = local_scene_item(data_dir)
    for key in ("red", "scl"):
        path = Path(item["assets"][key]["href"])
        s3.upload_file(str(path), "scenes", f"29RKH/{path.name}")
        item["assets"][key]["href"] = f"s3://scenes/29RKH/{path.name}"
    body = json.dumps({"type": "FeatureCollection", "features": [item]})
    s3.put_object(Bucket="scenes", Key="items.json", Body=body.encode())
    local = run_mosaic(tmp_path / "local", catalog=str(s2_catalog), **S2_SMALL)
    remote = run_mosaic(
        tmp_path / "remote", catalog="s3://scenes/items.json", dest="s3://mosaics/m", **S2_SMALL
    )
    assert local.exit_code == remote.exit_code == 0
    listed = s3.list_objects_v2(Bucket="mosaics", Prefix="m/")["Contents"]
    keys = sorted(obj["Key"] for obj in listed)
    assert "m/collection.json" in keys and not [k for k in keys if "partial" in k]
    tiles = outputs(tmp_path / "local/out", "2020-02")
    for path in [band for item in tiles for band in band_files(item)]:
        key = f"m/monthly-mosaic-2020-02/{path.name}"
        assert (
            key in keys and f"m/monthly-mosaic-2020-02/{path.stem.rsplit('-', 1)[0]}.json" in keys
        )
        data = s3.get_object(Bucket="mosaics", Key=key)["Body"].read()
        with rasterio.MemoryFile(data) as memory, memory.open() as two, rasterio.open(path) as one:
            np.testing.assert_array_equal(one.read(), two.read())
    assert tiles


def test_a_month_whose_pixels_are_all_masked_fails_with_that_reason(s2_catalog, tmp_path):
    result = run_mosaic(
        tmp_path,
        catalog=str(s2_catalog),
        **{**S2_SMALL, "bbox": "-11.5,24.6,-11.45,24.65"},
        scl_mask="0,1,2,3,4,5,6,7,8,9,10,11",  # every class: nothing is clear ground
    )
    assert result.exit_code == 2
    (row,) = read_csv(tmp_path / "run/failed.csv")
    assert "no valid pixel in 2020-02" in row["reason"] and "1 scene(s)" in row["reason"]
    assert not list((tmp_path / "out").rglob("*.tif"))
    collection = json.loads((tmp_path / "out/collection.json").read_text())
    assert not [link for link in collection["links"] if link["rel"] == "item"]


def test_a_dask_cluster_writes_the_same_mosaic(s2_catalog, tmp_path):
    local = run_mosaic(tmp_path / "local", catalog=str(s2_catalog), **S2_SMALL)
    dask = run_mosaic(tmp_path / "dask", catalog=str(s2_catalog), executor="dask", **S2_SMALL)
    assert local.exit_code == dask.exit_code == 0
    assert dask.report["executor"]["name"] == "dask"
    assert_same_mosaics(tmp_path / "local/out", tmp_path / "dask/out", "2020-02")


def _scene_catalog(tmp_path: Path, data_dir: Path, parts: dict[str, tuple[str, int]]) -> Path:
    """An ItemCollection of copies of the real scene's red band (no mask band), one item
    per part: ``{name: (columns kept, "west" or "east" of column SPLIT, or "all"; value
    added)}``, all of the same solar day, in the order given."""
    with rasterio.open(data_dir / S2_SCENE / "B04.tif") as src:
        red, profile = src.read(1), src.profile
    features = []
    for second, (name, (columns, add)) in enumerate(parts.items()):
        values = np.where(red > 0, red + add, 0).astype(red.dtype)
        if columns == "west":
            values[:, SPLIT:] = 0
        elif columns == "east":
            values[:, :SPLIT] = 0
        path = tmp_path / f"{name}.tif"
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(values, 1)
        item = local_scene_item(data_dir)
        item["id"] = name
        item["properties"]["datetime"] = f"2020-02-19T11:20:{second:02d}Z"
        item["assets"] = {"red": {**item["assets"]["red"], "href": str(path)}}
        features.append(item)
    catalog = tmp_path / f"{'-'.join(parts)}.json"
    catalog.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return catalog


SPLIT = 620  # a column of the scene's 100 m files inside S2_SMALL's area


def test_scenes_of_one_solar_day_are_merged_first_valid_pixel_first(data_dir, tmp_path):
    """Two granules of one pass: where the earlier one has data it wins, elsewhere the
    later one fills in; the day counts once in the median."""
    small = {**S2_SMALL, "tile_size": 10_000}
    catalogs = {
        "reference": {"whole": ("all", 0)},
        "west": {"west": ("west", 0)},
        "merged": {"west": ("west", 0), "later": ("all", 1)},
    }
    codes = {}
    for name, parts in catalogs.items():
        (tmp_path / name).mkdir()
        catalog = _scene_catalog(tmp_path / name, data_dir, parts)
        codes[name] = run_mosaic(tmp_path / name, catalog=str(catalog), **small).exit_code
    # West alone leaves the tiles east of the split without a valid pixel: they fail.
    assert codes == {"reference": 0, "west": 1, "merged": 0}
    reference = outputs(tmp_path / "reference/out", "2020-02")
    merged = outputs(tmp_path / "merged/out", "2020-02")
    assert [p.name for p in merged] == [p.name for p in reference] and len(merged) > 2
    west_of = {p.name: p for p in outputs(tmp_path / "west/out", "2020-02")}
    from_west = from_later = 0
    for whole, both in zip(reference, merged, strict=True):
        with TileStack(whole) as r, TileStack(both) as m:
            real, got = r.read(1), m.read(1)
            west = np.zeros_like(real)
            if whole.name in west_of:
                with TileStack(west_of[whole.name]) as w:
                    west = w.read(1)
        expected = np.where(west > 0, real, np.where(real > 0, real + 1, 0))
        np.testing.assert_array_equal(got, expected)
        from_west += int((west > 0).sum())
        from_later += int(((west == 0) & (real > 0)).sum())
    assert from_west > 0 and from_later > 0


def test_an_area_that_fits_one_tile_is_one_file_of_its_own_size(openeo_collection, tmp_path):
    result = run_mosaic(tmp_path, catalog=str(openeo_collection), **OPENEO_JUNE, bands="B04")
    assert result.exit_code == 0 and result.planned == 1
    area = transform_geometry(bbox_geometry(parse_bbox(OPENEO_BBOX)), 4326, 32631)
    grid = aligned_geobox(area.bounds, 10.0, "EPSG:32631")
    (tif,) = outputs(tmp_path / "out", "2023-06")
    with TileStack(tif) as cog:
        assert (cog.height, cog.width) == grid.shape and cog.height * cog.width < 5000
        assert cog.transform.almost_equals(grid.affine)
        assert (cog.read(1) != cog.nodata).all()  # no empty margin: the area lies on the chips
