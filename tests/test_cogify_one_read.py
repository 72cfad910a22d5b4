"""cogify's one read of each input: the COG from an in-memory copy is the one GDAL's COG
driver writes from the file, the STAC statistics come from its overviews, the preview's
sampled stretch stays within a grey level of the exact one; and the collection is read
back with concurrent GETs, on a real S3 API (moto's server on loopback)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import MaskFlags
from rio_cogeo.cogeo import cog_validate

from helpers import assert_same_pixels, run_cogify
from tilefleet.ops.stretch import _stretch_any, to_display_bytes
from tilefleet.store.cog import (
    can_stage,
    cog_options,
    overview_factors_for,
    staged_raster,
    write_cog,
)
from tilefleet.store.objects import open_store
from tilefleet.store.stac_item import ITEM_READERS, publish_collection, raster_bands

# Real rasters of every kind the crank meets: striped and tiled, byte, integer and float,
# with and without overviews, nodata, a colour-less class band, GCPs instead of a CRS,
# band descriptions and dataset tags.
SOURCES = [
    "non_cog_multiband/RGB.byte.tif",
    "non_cog_multiband/L7_ETMs.tif",
    "copernicus_dem/Copernicus_DSM_COG_30_S90_00_W164_00_DEM.tif",
    "s2_l2a_29RKH_20200219/B11.tif",
    "s2_l2a_29RKH_20200219/SCL.tif",
    "s1_grd_20180716/iw-vh.tiff",
    "s2_openeo_3dates_be/openEO_2023-06-01Z.tif",
]


def metadata(path) -> dict:
    """What a user of the COG sees besides its pixels."""
    with rasterio.open(path) as ds:
        domains = sorted(set(ds.tag_namespaces()) - {"IMAGE_STRUCTURE", "DERIVED_SUBDATASETS"})
        return {
            "profile": {k: v for k, v in ds.profile.items() if k != "blockxsize"},
            "tags": ds.tags(),
            "domains": {d: ds.tags(ns=d) for d in domains},
            "band_tags": [ds.tags(b) for b in ds.indexes],
            "descriptions": ds.descriptions,
            "colorinterp": ds.colorinterp,
            "units": ds.units,
            "scales": ds.scales,
            "offsets": ds.offsets,
            "gcps": [(g.row, g.col, g.x, g.y, g.z) for g in ds.gcps[0]],  # no __eq__
            "gcp_crs": ds.gcps[1],
            "overviews": ds.overviews(1),
            "masks": ds.mask_flag_enums,
            "structure": ds.tags(ns="IMAGE_STRUCTURE"),
        }


def staged_cog(source: Path, dest: Path, resampling: str = "nearest") -> list[dict]:
    """The COG of ``source`` made as cogify makes it; returns the staged copy's raster:bands."""
    with rasterio.open(source) as ds:
        assert can_stage(ds)
        factors = overview_factors_for(ds, 512)
        with staged_raster(ds, ds.read(), factors=factors or [], resampling=resampling) as mem:
            write_cog(mem, dest, cog_options("deflate", overview_resampling=resampling))
            if factors is not None:
                return raster_bands(mem)
    with rasterio.open(dest) as cog:
        return raster_bands(cog)


def all_levels(path) -> list[np.ndarray]:
    with rasterio.open(path) as ds:
        levels, count = [ds.read()], len(ds.overviews(1))
    for level in range(count):
        with rasterio.open(path, overview_level=level) as ds:
            levels.append(ds.read())
    return levels


@pytest.mark.parametrize("name", SOURCES, ids=lambda name: Path(name).stem)
def test_the_staged_cog_is_the_one_gdal_writes_from_the_file(name, data_dir, tmp_path):
    source = data_dir / name
    direct, staged = tmp_path / "direct.tif", tmp_path / "staged.tif"
    write_cog(str(source), direct, cog_options("deflate"))
    bands = staged_cog(source, staged)
    assert cog_validate(str(staged), strict=True, quiet=True) == (True, [], [])
    assert metadata(staged) == metadata(direct)
    assert_same_pixels(str(source), str(staged))
    # The STAC statistics from the staged overviews are those of the COG written from them.
    with rasterio.open(staged) as cog:
        assert bands == raster_bands(cog)


@pytest.mark.parametrize("resampling", ["nearest", "average"])
@pytest.mark.parametrize(
    ("name", "size", "in_memory"),
    [
        # 2048 halves evenly: its overviews are built in memory, at factors 2 and 4.
        ("copernicus_dem/Copernicus_DSM_COG_10_N00_00_E006_00_DEM.tif", 2048, True),
        # 1098 makes 549 and then 274, which no factor gives: the COG driver builds them.
        ("s2_l2a_29RKH_20200219/B04.tif", 1098, False),
    ],
    ids=["dem-2048", "s2-1098"],
)
def test_overviews_of_an_input_without_any_are_gdals_pixel_for_pixel(
    name, size, in_memory, resampling, data_dir, tmp_path
):
    """An input without overviews (a striped copy of a real raster) gets the overviews
    GDAL's COG driver would build from it, at every level."""
    plain = tmp_path / "plain.tif"
    with rasterio.open(data_dir / name) as src:
        profile = {**src.profile, "tiled": False, "compress": "none", "width": size}
        profile.update(height=size)
        profile.pop("blockxsize"), profile.pop("blockysize")
        values = src.read(window=((0, size), (0, size)))
    with rasterio.open(plain, "w", **profile) as dst:
        dst.write(values)
    with rasterio.open(plain) as ds:
        assert (overview_factors_for(ds, 512) is not None) == in_memory
    direct, staged = tmp_path / "direct.tif", tmp_path / "staged.tif"
    write_cog(str(plain), direct, cog_options("deflate", overview_resampling=resampling))
    staged_cog(plain, staged, resampling)
    gdal, ours = all_levels(direct), all_levels(staged)
    assert len(ours) == len(gdal) == 3
    for level, (a, b) in enumerate(zip(ours, gdal, strict=True)):
        assert np.array_equal(a, b, equal_nan=True), f"level {level}"


def test_an_input_with_a_mask_band_is_converted_by_gdal_from_the_file(data_dir, tmp_path):
    """Masks other than nodata are GDAL's to carry: such an input takes the direct way,
    and its COG keeps the mask; its preview is black where the mask is."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    with rasterio.open(data_dir / "non_cog_multiband/RGB.byte.tif") as src:
        profile = {**src.profile, "nodata": None}
        values, mask = src.read(), src.dataset_mask()
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(inputs / "masked.tif", "w", **profile) as dst,
    ):
        dst.write(values)
        dst.write_mask(mask)
    with rasterio.open(inputs / "masked.tif") as ds:
        assert MaskFlags.per_dataset in ds.mask_flag_enums[0] and not can_stage(ds)
    manifest = tmp_path / "m.csv"
    manifest.write_text("masked.tif,3\n")
    result = run_cogify(manifest, inputs, tmp_path / "out", tmp_path / "run")
    assert result.exit_code == 0
    assert_same_pixels(str(inputs / "masked.tif"), str(tmp_path / "out/masked.tif"))
    with rasterio.open(tmp_path / "out/masked.jpg") as jpg:
        image = jpg.read()
    assert np.median(image[:, mask == 0]) <= 2 and np.percentile(image[:, mask > 0], 99) > 100


def test_can_stage_refuses_a_raster_bigger_than_the_limit(data_dir):
    with rasterio.open(data_dir / "non_cog_multiband/RGB.byte.tif") as ds:
        size = ds.width * ds.height * ds.count
        assert can_stage(ds, limit=size * 2)
        assert not can_stage(ds, limit=size)  # its overviews would not fit


@pytest.mark.parametrize(
    "name",
    [
        "copernicus_dem/Copernicus_DSM_COG_10_N00_00_E006_00_DEM.tif",  # float32, 3600²
        "s2_l2a_29RKH_20200219/B04.tif",  # uint16 with nodata, 1098²
    ],
    ids=["dem", "s2"],
)
def test_the_sampled_stretch_is_within_a_grey_level_of_the_exact_one(name, data_dir):
    with rasterio.open(data_dir / name) as ds:
        band = ds.read(masked=True)
    assert band.shape[1] * band.shape[2] > 1 << 20  # big enough to be sampled
    valid = ~np.ma.getmaskarray(band[0])
    exact = _stretch_any(np.ma.getdata(band[0]), valid, (2.0, 98.0))
    exact[~valid] = 0
    sampled = to_display_bytes(band)[0].astype(int)
    difference = np.abs(sampled - exact)
    assert difference.max() <= 1 and difference.mean() < 0.2
    assert (sampled[~valid] == 0).all() and sampled[valid].min() >= 1


def stac_item(index: int) -> dict:
    """A small STAC item of a 1° cell, dated one day after another."""
    west, south = -180 + index % 360, -60 + index // 360
    return {
        "type": "Feature",
        "id": f"cell-{index}",
        "bbox": [west, south, west + 1, south + 1],
        "properties": {"datetime": f"2020-01-{1 + index % 28:02d}T00:00:00Z"},
    }


class CountingStore:
    """A real store whose reads are counted while in flight (how many at once)."""

    def __init__(self, store):
        self.store, self.lock, self.now, self.most = store, threading.Lock(), 0, 0

    def get_bytes(self, key: str) -> bytes:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return self.store.get_bytes(key)
        finally:
            with self.lock:
                self.now -= 1

    def put_bytes(self, body: bytes, key: str) -> None:
        self.store.put_bytes(body, key)


def test_the_collection_reads_its_items_with_bounded_concurrent_gets(s3):
    s3.create_bucket(Bucket="tf-items")
    store = open_store("s3://tf-items/cogs")
    count = 400
    keys = [f"cells/{i // 100}/cell-{i}.json" for i in range(count)]
    for index, key in enumerate(keys):
        s3.put_object(Bucket="tf-items", Key=f"cogs/{key}", Body=json.dumps(stac_item(index)))
    counting = CountingStore(store)
    collection = publish_collection(counting, "cells", "1° cells", reversed(keys))
    assert 1 < counting.most <= ITEM_READERS
    assert collection["extent"]["spatial"]["bbox"] == [[-180, -60, 180, -58]]
    assert collection["extent"]["temporal"]["interval"] == [
        ["2020-01-01T00:00:00Z", "2020-01-28T00:00:00Z"]
    ]
    linked = [link["href"] for link in collection["links"] if link["rel"] == "item"]
    assert linked == [f"./{key}" for key in sorted(keys)]
    assert json.loads(store.get_bytes("collection.json")) == collection


def test_a_resumed_run_on_s3_lists_the_items_of_both_sessions(s3, data_dir, tmp_path):
    s3.create_bucket(Bucket="tf-in")
    s3.create_bucket(Bucket="tf-out")
    rasters = {
        "a/RGB.byte.tif": "non_cog_multiband/RGB.byte.tif",
        "b/SCL.tif": "s2_l2a_29RKH_20200219/SCL.tif",
        "b/glo90.tif": "copernicus_dem/Copernicus_DSM_COG_30_S90_00_W164_00_DEM.tif",
    }
    for key, source in rasters.items():
        s3.upload_file(str(data_dir / source), "tf-in", key)
    first, both = tmp_path / "first.csv", tmp_path / "all.csv"
    first.write_text("a/RGB.byte.tif,3\n")
    both.write_text("".join(f"{key},\n" for key in rasters))
    assert run_cogify(first, "s3://tf-in", "s3://tf-out/cogs", tmp_path / "r1").exit_code == 0
    second = run_cogify(both, "s3://tf-in", "s3://tf-out/cogs", tmp_path / "r2")
    assert (second.report["skipped"], second.report["succeeded"]) == (1, 2)
    body = s3.get_object(Bucket="tf-out", Key="cogs/collection.json")["Body"].read()
    collection = json.loads(body)
    linked = sorted(link["href"] for link in collection["links"] if link["rel"] == "item")
    assert linked == ["./a/RGB.byte.json", "./b/SCL.json", "./b/glo90.json"]
    boxes = []
    for href in linked:
        item_body = s3.get_object(Bucket="tf-out", Key=f"cogs/{href[2:]}")["Body"].read()
        boxes.append(json.loads(item_body)["bbox"])
    (bbox,) = collection["extent"]["spatial"]["bbox"]
    assert bbox == [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]
    assert bbox[1] < -80 and bbox[3] > 10  # the polar tile of the second session is in
