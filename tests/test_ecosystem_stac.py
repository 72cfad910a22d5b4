"""What tilefleet publishes, read by the ecosystem's own tools on real outputs of real data:
odc-stac and stackstac load mosaic items by band and common name (pixels equal to the
COGs'), stac-validator accepts every STAC file, every COG passes rio-cogeo's validation."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import odc.stac
import pystac
import pytest
import rasterio
import stackstac
from rio_cogeo.cogeo import cog_validate

from conftest import RASTERS
from mosaic.outputs import TileStack, band_files, outputs
from mosaic.scenes import local_scene_item
from stac_validation import stac_errors
from tilefleet.engine.run import run_job
from tilefleet.jobs import build_job
from tilefleet.store.stac_item import raster_bands

OPENEO_JUNE = {
    "bbox": "5.0705,51.2155,5.0795,51.2195",
    "start_date": "2023-06-01",
    "end_date": "2023-06-30",
}


def run(tmp_path: Path, **values) -> Path:
    values = {"dest": str(tmp_path / "out"), "run_dir": str(tmp_path / "run"), **values}
    result = run_job(build_job({"workers": 1, **values}))
    assert result.exit_code == 0, result.report
    return tmp_path / "out"


@pytest.fixture(scope="module")
def openeo_mosaic(data_dir, tmp_path_factory) -> Path:
    """Three real openEO dates, bands by their ids, with the RGBA rendering; 2 tiles."""
    tmp = tmp_path_factory.mktemp("openeo")
    catalog = data_dir / "s2_openeo_3dates_be" / "collection.json"
    return run(
        tmp,
        recipe="mosaic",
        catalog=str(catalog),
        **OPENEO_JUNE,
        bands="B04,B03,B02",
        tile_size=500,
        visual=True,
    )


@pytest.fixture(scope="module")
def s2_mosaic(data_dir, tmp_path_factory) -> Path:
    """The real L2A scene (Earth Search assets) by common names, masked with its SCL."""
    tmp = tmp_path_factory.mktemp("s2")
    catalog = tmp / "items.json"
    items = {"type": "FeatureCollection", "features": [local_scene_item(data_dir)]}
    catalog.write_text(json.dumps(items))
    return run(
        tmp,
        recipe="mosaic",
        catalog=str(catalog),
        bbox="-11.5,24.6,-11.2,24.9",
        start_date="2020-02-01",
        end_date="2020-02-29",
        bands="red,nir",
        resolution=100,
        tile_size=15_000,
    )


def items_of(dest: Path, month: str) -> list[pystac.Item]:
    # stackstac reads hrefs as they are written: absolute ones, as a loader's user makes them.
    return [pystac.Item.from_file(str(p)).make_asset_hrefs_absolute() for p in outputs(dest, month)]


def test_odc_stac_loads_mosaic_bands_by_name_and_common_name(openeo_mosaic, s2_mosaic):
    for dest, month, names, commons in (
        (openeo_mosaic, "2023-06", ["B04", "B03", "B02"], ["red", "green", "blue"]),
        (s2_mosaic, "2020-02", ["red", "nir"], ["red", "nir"]),
    ):
        tiles = outputs(dest, month)
        items = items_of(dest, month)
        assert len(items) == len(tiles) >= 2
        for item_path, item in zip(tiles, items, strict=True):
            code = item.properties["proj:code"]
            with TileStack(item_path) as stack:
                want = stack.read()
                assert code == f"EPSG:{stack.crs.to_epsg()}"
            # One item on its own grid: odc-stac's pixels are the COGs' pixels.
            loaded = odc.stac.load([item], bands=names + commons, chunks=None)
            assert loaded.odc.geobox.affine == stack.transform
            for index, (name, common) in enumerate(zip(names, commons, strict=True)):
                got = loaded[name].isel(time=0).values
                np.testing.assert_array_equal(got, want[index])
                np.testing.assert_array_equal(loaded[common].isel(time=0).values, got)


def test_stackstac_stacks_the_same_items_with_the_same_pixels(openeo_mosaic):
    tiles = outputs(openeo_mosaic, "2023-06")
    for item_path, item in zip(tiles, items_of(openeo_mosaic, "2023-06"), strict=True):
        epsg = int(item.properties["proj:code"].split(":")[1])
        array = stackstac.stack(
            [item],
            assets=["B04", "B03", "B02"],
            epsg=epsg,  # stackstac 0.5 reads proj:epsg only, which projection v2 replaced
            resolution=10,
            bounds=item.properties["proj:bbox"],
            dtype="int16",
            fill_value=np.int16(-32768),
            rescale=False,
        ).compute()
        assert list(array.band.values) == ["B04", "B03", "B02"]
        assert list(array.common_name.values) == ["red", "green", "blue"]
        with TileStack(item_path) as stack:
            np.testing.assert_array_equal(array.isel(time=0).values, stack.read())


def test_mosaic_items_describe_every_asset(openeo_mosaic):
    (item_path, *_) = outputs(openeo_mosaic, "2023-06")
    item = json.loads(item_path.read_text())
    assert set(item["assets"]) == {"B04", "B03", "B02", "visual"}
    for key in ("B04", "B03", "B02"):
        (band,) = item["assets"][key]["raster:bands"]
        assert band["data_type"] == "int16" and band["nodata"] == -32768
        assert 0 < band["statistics"]["valid_percent"] <= 100
        assert item["assets"][key]["eo:bands"][0]["name"] == key
    visual = item["assets"]["visual"]
    assert visual["roles"] == ["visual"] and "eo:bands" not in visual
    assert [b["data_type"] for b in visual["raster:bands"]] == ["uint8"] * 4
    # No nodata value (the mask is the alpha band, opaque over this area): 100 %, not the
    # one-in-a-million rio-stac reports for rasters without nodata.
    assert [b["statistics"]["valid_percent"] for b in visual["raster:bands"]] == [100.0] * 4
    assert set(item["stac_extensions"]) == {
        "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
        "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
        "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    }
    assert "proj:epsg" not in json.dumps(item)


def test_the_collection_extent_is_that_of_its_items(openeo_mosaic):
    collection = pystac.Collection.from_file(str(openeo_mosaic / "collection.json"))
    items = list(collection.get_items())
    assert len(items) == len(outputs(openeo_mosaic, "2023-06")) >= 2
    (bbox,) = collection.extent.spatial.bboxes
    assert bbox == [
        min(i.bbox[0] for i in items),
        min(i.bbox[1] for i in items),
        max(i.bbox[2] for i in items),
        max(i.bbox[3] for i in items),
    ]
    ((start, end),) = collection.extent.temporal.intervals
    assert (start.isoformat(), end.isoformat()) == (
        "2023-06-01T00:00:00+00:00",
        "2023-06-30T23:59:59.999999+00:00",
    )
    for item in items:  # each item links back to the collection it is in
        assert item.collection_id == collection.id
        assert item.get_single_link("collection").href.endswith("collection.json")


def test_every_stac_file_and_cog_of_the_mosaics_passes_the_validators(openeo_mosaic, s2_mosaic):
    for dest in (openeo_mosaic, s2_mosaic):
        stac_files = sorted(dest.rglob("*.json"))
        assert len(stac_files) >= 3
        assert [error for path in stac_files for error in stac_errors(path)] == []
        cogs = sorted(dest.rglob("*.tif"))
        assert cogs and all(cog_validate(str(p), strict=True, quiet=True)[0] for p in cogs)
        assert {p for item in outputs(dest, "*") for p in band_files(item)} <= set(cogs)


def test_cogify_items_are_unique_dated_from_the_file_and_in_a_collection(
    inputs, data_dir, tmp_path
):
    # Two images of one name in two folders; one tagged with its acquisition time.
    shutil.copy(data_dir / RASTERS["s2/B02.tif"], inputs / "dated.tif")
    with rasterio.open(inputs / "dated.tif", "r+") as ds:
        ds.update_tags(TIFFTAG_DATETIME="2020:02:19 11:21:34")
    (inputs / "other").mkdir()
    os.link(data_dir / RASTERS["s2/B02.tif"], inputs / "other/B02.tif")
    manifest = tmp_path / "m.csv"
    manifest.write_text("s2/B02.tif,1\nother/B02.tif,1\ndated.tif,1\nlandsat/RGB.byte.tif,3\n")
    dest = run(tmp_path, recipe="cogify", manifest=str(manifest), input_root=str(inputs), workers=2)
    items = {
        p.relative_to(dest).as_posix(): json.loads(p.read_text()) for p in dest.rglob("*.json")
    }
    collection = items.pop("collection.json")
    assert sorted(item["id"] for item in items.values()) == [
        "dated",
        "landsat-RGB.byte",
        "other-B02",
        "s2-B02",
    ]
    assert items["dated.json"]["properties"]["datetime"] == "2020-02-19T11:21:34Z"
    undated = items["s2/B02.json"]["properties"]
    # No acquisition time in the file: null, and the interval it lies in, never "now" alone.
    assert undated["datetime"] is None and undated["start_datetime"] == "1970-01-01T00:00:00Z"
    # RGB.byte has nodata 0 on its margins: some but not all of its pixels are valid.
    rgb = items["landsat/RGB.byte.json"]["assets"]["data"]["raster:bands"]
    assert all(0 < band["statistics"]["valid_percent"] < 100 for band in rgb)
    linked = sorted(link["href"] for link in collection["links"] if link["rel"] == "item")
    assert linked == sorted(f"./{key}" for key in items)
    for key, item in items.items():
        assert item["collection"] == collection["id"] == "cogs"
        (up,) = [link["href"] for link in item["links"] if link["rel"] == "collection"]
        assert (dest / key).parent.joinpath(up).resolve() == dest / "collection.json"
    catalog = pystac.Collection.from_file(str(dest / "collection.json"))
    assert len(list(catalog.get_items())) == 4
    assert [e for p in sorted(dest.rglob("*.json")) for e in stac_errors(p)] == []
    assert all(cog_validate(str(p), strict=True, quiet=True)[0] for p in dest.rglob("*.tif"))


def test_a_raster_without_nodata_is_all_valid(data_dir, tmp_path):
    path = tmp_path / "plain.tif"
    with rasterio.open(data_dir / RASTERS["s2/B02.tif"]) as src:
        profile = {**src.profile, "nodata": None}
        values = src.read()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values)
    with rasterio.open(path) as ds:
        (band,) = raster_bands(ds)
    assert band["statistics"]["valid_percent"] == 100.0 and "nodata" not in band


def test_tile_index_items_are_in_a_collection_that_validates(data_dir, tmp_path):
    dest = run(
        tmp_path,
        recipe="tile-index",
        tiles={"grid": "utm", "aoi": str(data_dir / "aoi/grandmesa.geojson"), "size": 40000},
        resolution=10,
    )
    files = sorted(dest.glob("*.json"))
    collection = json.loads((dest / "collection.json").read_text())
    items = [json.loads(p.read_text()) for p in files if p.name != "collection.json"]
    assert len(items) > 2 and all(item["collection"] == "tile-index" for item in items)
    assert len([link for link in collection["links"] if link["rel"] == "item"]) == len(items)
    assert all(item["properties"]["proj:code"].startswith("EPSG:326") for item in items)
    assert [e for p in files for e in stac_errors(p)] == []
