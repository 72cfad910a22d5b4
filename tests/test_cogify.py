"""cogify end to end on real rasters from the shared data, on local processes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from conftest import link_rasters, no_partials, truncated_copy
from helpers import assert_same_pixels, read_csv, run_cogify
from tilefleet.errors import JobError

ALL = [
    "landsat/RGB.byte.tif",
    "landsat/L7_ETMs.tif",
    "dem/glo30.tif",
    "dem/glo90_polar.tif",
    "s2/B02.tif",
    "s2/SCL.tif",
]


@pytest.fixture
def manifest(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("".join(f"{key},\n" for key in ALL))
    return path


def test_every_output_is_a_valid_cog_with_identical_pixels(inputs, manifest, tmp_path):
    dest = tmp_path / "out"
    result = run_cogify(manifest, inputs, dest, tmp_path / "run")
    assert result.exit_code == 0
    assert result.report["succeeded"] == len(ALL) and result.report["failed"] == 0
    for key in ALL:
        cog = dest / key
        valid, errors, _ = cog_validate(str(cog), quiet=True)
        assert valid, (key, errors)
        assert_same_pixels(str(inputs / key), str(cog))
        with rasterio.open(cog) as ds:
            assert ds.overviews(1), f"{key} has no internal overviews"
            assert ds.profile["compress"].lower() == "deflate"
    assert no_partials(dest) == []


def test_previews_are_8_bit_jpegs_with_the_expected_bands(inputs, manifest, tmp_path):
    dest = tmp_path / "out"
    run_cogify(manifest, inputs, dest, tmp_path / "run")
    expected = {
        "landsat/RGB.byte.tif": 3,
        "landsat/L7_ETMs.tif": 3,
        "dem/glo30.tif": 1,
        "s2/B02.tif": 1,
    }
    for key, bands in expected.items():
        jpg = (dest / key).with_suffix(".jpg")
        with rasterio.open(jpg) as preview, rasterio.open(inputs / key) as src:
            assert preview.driver == "JPEG"
            assert (preview.count, preview.dtypes[0]) == (bands, "uint8")
            assert (preview.width, preview.height) == (src.width, src.height)
            image = preview.read()
            valid = src.dataset_mask() > 0
        assert np.percentile(image[:, valid], 99) > 100, "valid pixels should be visible"
        if (~valid).sum() > 1000:  # nodata is black (JPEG blurs edges a little)
            assert np.median(image[:, ~valid]) <= 2


def test_float_dem_preview_is_stretched_over_its_range(inputs, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("dem/glo30.tif,1\n")
    run_cogify(manifest, inputs, tmp_path / "out", tmp_path / "run")
    with rasterio.open(tmp_path / "out/dem/glo30.jpg") as jpg:
        image = jpg.read(1)
    # São Tomé: sea (0 m) and mountains up to ~1940 m: a stretch uses the whole 8-bit range.
    assert image.min() <= 5 and image.max() >= 250


def test_preview_bands_and_max_size(inputs, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("landsat/L7_ETMs.tif,6\n")
    dest = tmp_path / "out"
    result = run_cogify(
        manifest, inputs, dest, tmp_path / "run", preview_bands="4,3,2", preview_max_size=128
    )
    assert result.exit_code == 0
    with (
        rasterio.open(dest / "landsat/L7_ETMs.jpg") as jpg,
        rasterio.open(inputs / "landsat/L7_ETMs.tif") as src,
    ):
        assert max(jpg.width, jpg.height) == 128 and jpg.count == 3
        assert jpg.width / jpg.height == pytest.approx(src.width / src.height, rel=0.02)
        first = jpg.read(1).astype(float)
        nir, blue = src.read((4, 1), out_shape=(2, jpg.height, jpg.width)).astype(float)
    # Band 4 (near infrared), not band 1, drives the first channel of a 4,3,2 preview.
    with_nir = np.corrcoef(first.ravel(), nir.ravel())[0, 1]
    with_blue = np.corrcoef(first.ravel(), blue.ravel())[0, 1]
    assert with_nir > 0.8 and with_nir > with_blue + 0.2


def test_stac_item_marks_the_task_done(inputs, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("s2/B02.tif,1\n")
    dest = tmp_path / "out"
    run_cogify(manifest, inputs, dest, tmp_path / "run")
    item = json.loads((dest / "s2/B02.json").read_text())
    assert item["type"] == "Feature" and item["id"] == "s2-B02"  # unique: from the path
    assert any("projection" in ext for ext in item["stac_extensions"])
    assert any("raster" in ext for ext in item["stac_extensions"])
    assert item["properties"]["proj:code"] == "EPSG:32629"
    assert item["properties"]["proj:shape"] == [1098, 1098]
    assert item["assets"]["data"]["href"] == "./B02.tif"
    assert item["assets"]["data"]["raster:bands"][0]["nodata"] == 0
    assert item["assets"]["preview"]["href"] == "./B02.jpg"
    west, south, east, north = item["bbox"]
    assert -12.1 < west < east < -10.7 and 24.2 < south < north < 25.4


def test_lossy_profile_on_byte_rgb_and_clear_error_on_other_types(inputs, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("landsat/RGB.byte.tif,3\ndem/glo30.tif,1\n")
    dest = tmp_path / "out"
    result = run_cogify(manifest, inputs, dest, tmp_path / "run", profile="jpeg")
    assert result.exit_code == 1
    with rasterio.open(dest / "landsat/RGB.byte.tif") as ds:
        assert ds.profile["compress"].lower() == "jpeg"
    failed = read_csv(tmp_path / "run/failed.csv")
    assert [row["path"] for row in failed] == ["dem/glo30.tif"]
    assert "needs uint8" in failed[0]["reason"]
    assert not (dest / "dem/glo30.tif").exists()


def test_bad_rows_fail_alone_with_reasons_and_nothing_half_written(inputs, data_dir, tmp_path):
    truncated_copy(data_dir / "non_cog_multiband/RGB.byte.tif", inputs / "truncated.tif")
    (inputs / "not_a_raster.tif").write_text("this is not a TIFF")
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(
        "\ufeff"
        "landsat/RGB.byte.tif,3\n"
        "truncated.tif,3\n"
        "missing/nowhere.tif,1\n"
        "../escape.tif,1\n"
        "/etc/hostname,1\n"
        "s2/B02.tif,1,extra\n"
        "\n"
        "landsat/L7_ETMs.tif,3\n"
        "not_a_raster.tif,1\n"
        "dem/glo30.tif,\n".encode()
    )
    dest = tmp_path / "out"
    result = run_cogify(manifest, inputs, dest, tmp_path / "run")
    assert result.exit_code == 1
    report = result.report
    assert (report["succeeded"], report["failed"]) == (2, 7)
    reasons = {row["path"]: row["reason"] for row in read_csv(tmp_path / "run/failed.csv")}
    assert set(reasons) == {
        "truncated.tif",
        "missing/nowhere.tif",
        "../escape.tif",
        "/etc/hostname",
        "s2/B02.tif",
        "landsat/L7_ETMs.tif",
        "not_a_raster.tif",
    }
    assert "not found" in reasons["missing/nowhere.tif"]
    assert "escapes the input root" in reasons["../escape.tif"]
    assert "absolute" in reasons["/etc/hostname"]
    assert "expected 2 columns" in reasons["s2/B02.tif"]
    assert "manifest says 3 band(s)" in reasons["landsat/L7_ETMs.tif"]
    assert reasons["truncated.tif"] and reasons["not_a_raster.tif"]
    assert all("\n" not in reason for reason in reasons.values())
    # Permanent errors are not retried.
    tasks = {row["id"]: row for row in read_csv(tmp_path / "run/tasks.csv")}
    assert tasks["truncated.tif"]["attempts"] == "1"
    assert tasks["missing/nowhere.tif"]["attempts"] == "1"
    # Nothing of a failed row reached the destination; the good rows are complete.
    written = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert written == sorted(
        [
            "collection.json",
            "dem/glo30.jpg",
            "dem/glo30.json",
            "dem/glo30.tif",
            "landsat/RGB.byte.jpg",
            "landsat/RGB.byte.json",
            "landsat/RGB.byte.tif",
        ]
    )
    # failed.csv is itself a manifest: fed back, it plans exactly the failed rows again.
    retry = run_cogify(tmp_path / "run/failed.csv", inputs, dest, tmp_path / "run2")
    assert retry.report["tasks"] == 7 and retry.report["failed"] == 7


def test_all_failed_exits_2(inputs, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("missing.tif,1\nalso_missing.tif,1\n")
    result = run_cogify(manifest, inputs, tmp_path / "out", tmp_path / "run")
    assert result.exit_code == 2


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_empty_manifest_is_an_invalid_job(inputs, tmp_path, content):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(content)
    with pytest.raises(JobError, match="no rows"):
        run_cogify(manifest, inputs, tmp_path / "out", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_missing_manifest_is_an_invalid_job(inputs, tmp_path):
    with pytest.raises(JobError, match="does not exist|cannot read"):
        run_cogify(tmp_path / "nope.csv", inputs, tmp_path / "out", tmp_path / "run")


def test_rerun_into_same_destination_skips_everything(inputs, manifest, tmp_path):
    dest = tmp_path / "out"
    run_cogify(manifest, inputs, dest, tmp_path / "run1")
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()}
    second = run_cogify(manifest, inputs, dest, tmp_path / "run2")
    assert second.exit_code == 0
    assert (second.report["skipped"], second.report["succeeded"]) == (len(ALL), 0)
    assert second.report["attempts"] == 0
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()} == before
    third = run_cogify(manifest, inputs, dest, tmp_path / "run3", overwrite=True)
    assert (third.report["succeeded"], third.report["skipped"]) == (len(ALL), 0)


def test_a_half_written_output_is_not_taken_for_done(inputs, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("s2/B02.tif,1\ns2/SCL.tif,1\n")
    dest = tmp_path / "out"
    (dest / "s2").mkdir(parents=True)
    # A COG without its marker, an empty marker, and the leftover of a killed local write.
    (dest / "s2/B02.tif").write_bytes(b"partial")
    (dest / "s2/SCL.tif").write_bytes(b"partial")
    (dest / "s2/SCL.json").write_bytes(b"")
    (dest / "s2/B02.tif.tilefleet-partial-0123456789ab").write_bytes(b"junk")
    result = run_cogify(manifest, inputs, dest, tmp_path / "run")
    assert (result.report["succeeded"], result.report["skipped"]) == (2, 0)
    assert no_partials(dest) == []
    assert_same_pixels(str(inputs / "s2/B02.tif"), str(dest / "s2/B02.tif"))


def test_only_and_limit_run_a_subset(inputs, manifest, tmp_path):
    only = run_cogify(
        manifest, inputs, tmp_path / "a", tmp_path / "run_a", only="dem/glo30.tif,s2/SCL.tif"
    )
    assert only.report["succeeded"] == 2 and only.report["pending"] == len(ALL) - 2
    assert sorted(p.name for p in (tmp_path / "a").rglob("*.tif")) == ["SCL.tif", "glo30.tif"]
    limited = run_cogify(manifest, inputs, tmp_path / "b", tmp_path / "run_b", limit=1)
    assert limited.report["succeeded"] == 1 and limited.exit_code == 0
    with pytest.raises(JobError, match="unknown task id"):
        run_cogify(manifest, inputs, tmp_path / "c", tmp_path / "run_c", only="nope.tif")


def test_dry_run_plans_and_estimates_without_running(inputs, manifest, tmp_path):
    result = run_cogify(manifest, inputs, tmp_path / "out", tmp_path / "run", dry_run=True)
    assert result.dry_run and result.planned == len(ALL)
    assert result.estimate.tasks == len(ALL) and result.estimate.task_s_source == "default"
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()


def test_estimate_learns_from_earlier_runs(inputs, manifest, tmp_path):
    run_cogify(manifest, inputs, tmp_path / "out", tmp_path / "run")
    again = run_cogify(manifest, inputs, tmp_path / "out2", tmp_path / "run2", dry_run=True)
    assert again.estimate.task_s_source.startswith("history")  # scaled by size where known
    assert again.estimate.task_s < 2.0  # measured, not the default


def test_manifest_paths_that_start_with_the_bucket_name(data_dir, tmp_path):
    """The crank's manifests name ``bucket/path/img.tif``; the bucket part is dropped."""
    bucket = link_rasters(tmp_path / "raw-bucket", data_dir, keys=["landsat/RGB.byte.tif"])
    manifest = tmp_path / "m.csv"
    manifest.write_text("raw-bucket/landsat/RGB.byte.tif,3\nother-bucket/landsat/x.tif,1\n")
    result = run_cogify(
        manifest, bucket, tmp_path / "out", tmp_path / "run", paths_include_bucket=True
    )
    assert result.exit_code == 1
    assert (tmp_path / "out/landsat/RGB.byte.tif").is_file()
    (failed,) = read_csv(tmp_path / "run/failed.csv")
    assert failed["path"] == "other-bucket/landsat/x.tif"
    assert "does not start with the bucket raw-bucket/" in failed["reason"]
    with pytest.raises(JobError, match="must be the bucket itself"):
        run_cogify(
            manifest, "s3://raw-bucket/incoming", tmp_path / "o2", tmp_path / "r2",
            paths_include_bucket=True,
        )  # fmt: skip


@pytest.mark.parametrize("profile", ["deflate", "zstd", "lzw"])
def test_lossless_profiles_use_the_predictor_of_the_data_type(profile, inputs, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("dem/glo30.tif,1\nlandsat/L7_ETMs.tif,\n")
    dest = tmp_path / "out"
    result = run_cogify(manifest, inputs, dest, tmp_path / "run", profile=profile)
    assert result.exit_code == 0
    for key, predictor in (("dem/glo30.tif", "3"), ("landsat/L7_ETMs.tif", "2")):
        with rasterio.open(dest / key) as cog:
            assert cog.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == predictor
        assert_same_pixels(str(inputs / key), str(dest / key))
    if profile == "deflate":  # the float DEM, deflated with a predictor, is no bigger
        assert (dest / "dem/glo30.tif").stat().st_size < (inputs / "dem/glo30.tif").stat().st_size


def test_the_estimate_scales_with_the_input_bytes_of_the_tasks(inputs, tmp_path):
    """Durations of small files do not predict big ones: history keeps seconds per input
    byte, and a plan of a big file is estimated by its size."""
    from tilefleet.engine.history import median_rate

    small = tmp_path / "small.csv"
    small.write_text("s2/SCL.tif,1\ns2/B02.tif,1\n")
    assert run_cogify(small, inputs, tmp_path / "out", tmp_path / "run").exit_code == 0
    rate = median_rate("cogify")
    assert rate is not None and rate > 0
    big = tmp_path / "big.csv"
    big.write_text("dem/glo30.tif,1\n")
    planned = run_cogify(big, inputs, tmp_path / "out2", tmp_path / "run2", dry_run=True)
    estimate = planned.estimate
    assert estimate.task_s_source == "history, scaled by task size"
    dem_bytes = (inputs / "dem/glo30.tif").stat().st_size
    assert estimate.task_s == pytest.approx(rate * dem_bytes)
    assert estimate.wall_s == pytest.approx(rate * dem_bytes)  # one task: its own time


def test_a_path_with_a_control_character_fails_its_row_alone(inputs, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"path\nlandsat/RGB.byte.tif\nnul\x00byte.tif\ntab\tin.tif\n")
    result = run_cogify(manifest, inputs, tmp_path / "out", tmp_path / "run")
    assert result.exit_code == 1 and result.counts["succeeded"] == 1
    reasons = sorted(t.reason for t in result.failed)
    assert reasons == [
        "line 3: path 'nul\\x00byte.tif' holds a control character ('\\x00')",
        "line 4: path 'tab\\tin.tif' holds a control character ('\\t')",
    ]


def test_rows_that_would_write_the_same_outputs_fail_instead_of_replacing(inputs, tmp_path):
    for alias in ("landsat/RGB.byte.tiff", "landsat/RGB.byte.img"):
        (inputs / alias).symlink_to(inputs / "landsat/RGB.byte.tif")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "landsat/RGB.byte.tif,3\nlandsat/RGB.byte.tiff,3\nlandsat/RGB.byte.img,3\ns2/SCL.tif,1\n"
    )
    result = run_cogify(manifest, inputs, tmp_path / "out", tmp_path / "run")
    assert result.exit_code == 1 and result.counts["succeeded"] == 2
    assert {(t.id, t.reason) for t in result.failed} == {
        (alias, "its outputs (landsat/RGB.byte.json) are also those of landsat/RGB.byte.tif")
        for alias in ("landsat/RGB.byte.tiff", "landsat/RGB.byte.img")
    }
    failed = read_csv(tmp_path / "run/failed.csv")  # a valid manifest of the refused rows
    assert [row["path"] for row in failed] == ["landsat/RGB.byte.tiff", "landsat/RGB.byte.img"]


def test_hostile_rows_fail_alone_and_no_report_cell_runs_as_a_formula(inputs, tmp_path):
    manifest = tmp_path / "m.csv"
    long_path = "a/" * 100_000 + "x.tif"  # past the csv module's own 128 KiB field limit
    manifest.write_text(
        f"landsat/RGB.byte.tif,3\n=cmd|' /C calc'!A0,1\n{long_path},1\n@SUM(1+1)*cmd,1\n"
    )
    result = run_cogify(manifest, inputs, tmp_path / "out", tmp_path / "run")
    assert result.exit_code == 1 and result.counts == {
        "succeeded": 1,
        "skipped": 0,
        "failed": 3,
        "pending": 0,
    }
    reasons = {t.id: t.reason for t in result.failed}
    assert reasons["line-2"] == "line 2: path starts with '=', as a spreadsheet formula does"
    assert reasons["line-3"] == "line 3: path of 200005 characters (at most 4096)"
    assert reasons["line-4"].startswith("line 4: path starts with '@'")
    for name in ("failed.csv", "tasks.csv", "succeeded.csv"):
        for row in read_csv(tmp_path / "run" / name):
            for cell in row.values():
                assert not cell.startswith(("=", "+", "@")), (name, cell)
    failed = read_csv(tmp_path / "run/failed.csv")
    assert failed[0]["path"] == "'=cmd|' /C calc'!A0"
