"""The cheaper ways cogify's tasks take: the COG layout check says what
``rio cogeo validate --strict`` says, on valid and invalid files; the numpy statistics are
rio-stac's; the items a run writes carry them; the public MEM copy makes the COG the
zero-copy one makes."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rio_cogeo.cogeo import cog_validate
from rio_stac.stac import _get_stats

from helpers import run_cogify
from tilefleet.errors import PermanentError
from tilefleet.ops.band_statistics import band_statistics
from tilefleet.store.cog import cog_options, overview_factors_for, staged_raster, write_cog
from tilefleet.store.cog_layout import cog_layout_errors
from tilefleet.store.stac_item import raster_bands, raster_bands_from

RASTERS = {
    "rgb": "non_cog_multiband/RGB.byte.tif",  # striped, no overviews, nodata 0
    "l7": "non_cog_multiband/L7_ETMs.tif",  # overviews written before the image
    "polar": "copernicus_dem/Copernicus_DSM_COG_30_S90_00_W164_00_DEM.tif",  # float32 COG
    "b11": "s2_l2a_29RKH_20200219/B11.tif",  # uint16 COG, nodata 0
    "scl": "s2_l2a_29RKH_20200219/SCL.tif",  # uint8 classes
    "openeo": "s2_openeo_3dates_be/openEO_2023-06-01Z.tif",  # int16, nodata -32768
    "s1": "s1_grd_20180716/iw-vh.tiff",  # GCPs, no CRS
}


def strict_rio_cogeo(path: Path) -> bool:
    valid, _errors, _warnings = cog_validate(str(path), strict=True, quiet=True)
    return valid


def invalid_layouts(source: Path, folder: Path) -> dict[str, Path]:
    """Files that are no COG, each in its own way."""
    with rasterio.open(source) as src:
        profile, values = src.profile, src.read()
    tiled = {**profile, "tiled": True, "blockxsize": 256, "blockysize": 256}
    files = {}
    files["no-overviews"] = folder / "no-overviews.tif"  # tiled, > 512, no overviews
    with rasterio.open(files["no-overviews"], "w", **tiled) as dst:
        dst.write(values)
    files["overviews-after"] = folder / "overviews-after.tif"  # overviews added later
    shutil.copy(files["no-overviews"], files["overviews-after"])
    with rasterio.open(files["overviews-after"], "r+") as dst:
        dst.build_overviews([2, 4])
    files["striped"] = folder / "striped.tif"
    with rasterio.open(files["striped"], "w", **{**profile, "tiled": False}) as dst:
        dst.write(values)
    files["edited"] = folder / "edited.tif"  # a COG whose block was rewritten in place
    rasterio.shutil.copy(str(source), str(files["edited"]), driver="COG", **cog_options("deflate"))
    with rasterio.open(files["edited"], "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        dst.write(np.full((len(values), 64, 64), 7, values.dtype), window=((0, 64), (0, 64)))
    return files


def test_the_layout_check_says_what_rio_cogeo_strict_says(data_dir, tmp_path):
    checked = {name: data_dir / path for name, path in RASTERS.items()}
    for name, path in list(checked.items()):  # and the COGs of them
        cog = tmp_path / f"{name}-cog.tif"
        rasterio.shutil.copy(str(path), str(cog), driver="COG", **cog_options("deflate"))
        checked[f"{name}-cog"] = cog
    big = tmp_path / "bigtiff-cog.tif"
    options = {**cog_options("deflate", blocksize=256), "BIGTIFF": "YES"}
    rasterio.shutil.copy(str(checked["rgb"]), str(big), driver="COG", **options)
    checked["bigtiff-cog"] = big
    checked.update(invalid_layouts(checked["rgb"], tmp_path))
    verdicts = {
        name: (not cog_layout_errors(path), strict_rio_cogeo(path))
        for name, path in checked.items()
    }
    assert all(ours == theirs for ours, theirs in verdicts.values()), verdicts
    # Both kinds are there: the check can fail.
    valid = {name for name, (ours, _) in verdicts.items() if ours}
    assert {"rgb-cog", "l7-cog", "polar-cog", "bigtiff-cog", "b11"} <= valid
    invalid = {"rgb", "l7", "no-overviews", "overviews-after", "striped", "edited"}
    assert not valid & invalid


def test_the_layout_check_of_a_file_that_is_no_tiff_is_one_error(tmp_path):
    jpeg = tmp_path / "a.tif"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0 not a tiff")
    (error,) = cog_layout_errors(jpeg)
    assert "not a readable GeoTIFF" in error


def test_write_cog_refuses_what_the_layout_check_fails(data_dir, tmp_path):
    """A COG with an external overview file next to it is no COG: never returned."""
    dst = tmp_path / "out.tif"
    shutil.copy(data_dir / RASTERS["b11"], f"{dst}.ovr")
    with pytest.raises(PermanentError, match="invalid COG.*external .ovr"):
        write_cog(str(data_dir / RASTERS["rgb"]), dst, cog_options("deflate"))


def same_bands(ours: list[dict], theirs: list[dict]) -> None:
    """rio-stac's figures: exactly, but for float rounding of means and deviations."""
    assert len(ours) == len(theirs)
    for mine, other in zip(ours, theirs, strict=True):
        assert {k: v for k, v in mine.items() if k not in ("statistics", "histogram")} == {
            k: v for k, v in other.items() if k not in ("statistics", "histogram")
        }
        assert mine["histogram"] == other["histogram"]
        for key, value in other["statistics"].items():
            whole = isinstance(value, int | np.integer)
            assert isinstance(mine["statistics"][key], int) == whole, key  # JSON 7 or 7.0
            assert math.isclose(mine["statistics"][key], value, rel_tol=1e-6, abs_tol=1e-9), key


@pytest.mark.parametrize("name", RASTERS)
def test_numpy_statistics_are_rio_stacs(name, data_dir):
    with rasterio.open(data_dir / RASTERS[name]) as ds:
        size = max(ds.width, ds.height)  # read whole: the same pixels on both sides
        same_bands(raster_bands_from(ds, ds.read()), raster_bands(ds, max_size=size))


@pytest.mark.parametrize(
    ("values", "nodata"),
    [
        (np.zeros((8, 8), np.uint16), 0),  # no valid pixel
        (np.full((8, 8), 7, np.uint8), None),  # one value
        (np.array([[1.5, np.nan], [np.inf, 3.0]], np.float32), None),  # non-finite
        (np.array([[1.5, np.nan], [-9999.0, 3.0]], np.float32), -9999.0),
        (np.array([[-5, 3], [-32768, 3]], np.int16), -32768),  # signed, nodata at the bottom
        (np.arange(64, dtype=np.uint16).reshape(8, 8), -9999),  # a nodata no pixel can be
    ],
    ids=["all-nodata", "constant", "non-finite", "float-nodata", "int16", "out-of-range"],
)
def test_band_statistics_at_the_edges_are_rio_stacs(values, nodata):
    invalid = np.zeros(values.shape, bool)
    if nodata is not None and (values.dtype.kind == "f" or nodata >= np.iinfo(values.dtype).min):
        invalid = values == nodata
    theirs = _get_stats(np.ma.masked_array(values, invalid))
    theirs["statistics"].pop("valid_percent")
    ours = band_statistics(values, nodata)
    assert ours["histogram"] == theirs["histogram"]
    for key, value in theirs["statistics"].items():
        assert math.isclose(ours["statistics"][key], value, rel_tol=1e-6, abs_tol=1e-9), key


def test_a_run_writes_the_statistics_of_its_cogs(data_dir, tmp_path):
    """The items of a run carry the statistics rio-stac takes from the COG at the size of
    the level they were taken from: the full resolution (B11, RGB), an overview built in
    memory (B04: 549 of 1098), or, for a 1098-pixel input without overviews, whose
    overviews GDAL builds, rio-stac's 1024 pixels."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    names = {
        "b11.tif": ("s2_l2a_29RKH_20200219/B11.tif", 549),
        "b04.tif": ("s2_l2a_29RKH_20200219/B04.tif", 549),
        "rgb.tif": (RASTERS["rgb"], 791),
    }
    for name, (source, _size) in names.items():
        shutil.copy(data_dir / source, inputs / name)
    with rasterio.open(data_dir / "s2_l2a_29RKH_20200219/B04.tif") as src:
        profile = {**src.profile, "tiled": False, "compress": "none"}
        profile.pop("blockxsize"), profile.pop("blockysize")
        with rasterio.open(inputs / "plain.tif", "w", **profile) as dst:
            dst.write(src.read())
    names["plain.tif"] = ("", 1024)
    manifest = tmp_path / "m.csv"
    manifest.write_text("".join(f"{name},\n" for name in names))
    out = tmp_path / "out"
    assert run_cogify(manifest, inputs, out, tmp_path / "run").exit_code == 0
    for name in names:
        cog = out / name
        assert strict_rio_cogeo(cog)
        item = json.loads(cog.with_suffix(".json").read_text())
        with rasterio.open(cog) as ds:
            expected = raster_bands(ds, max_size=names[name][1])
        same_bands(item["assets"]["data"]["raster:bands"], expected)


@pytest.mark.parametrize("name", ["b11", "rgb", "s1"])
def test_the_public_mem_copy_makes_the_zero_copy_cog(name, data_dir, tmp_path):
    """The fallback where rasterio's zero-copy MEM class is gone (a MEM dataset the
    pixels are written into) makes the same file."""
    with rasterio.open(data_dir / RASTERS[name]) as ds:
        pixels, factors = ds.read(), overview_factors_for(ds, 512) or []
        for zero_copy in (True, False):
            with staged_raster(
                ds, pixels, factors=factors, resampling="nearest", zero_copy=zero_copy
            ) as mem:
                write_cog(mem, tmp_path / f"{zero_copy}.tif", cog_options("deflate"))
    assert (tmp_path / "True.tif").read_bytes() == (tmp_path / "False.tif").read_bytes()
