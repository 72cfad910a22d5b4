"""cogify from S3 inputs to S3 outputs through the fault proxy: throttling, server errors,
dropped connections, bodies cut mid-way and stalls, on GET, PUT, LIST and multipart parts.

Every case checks the same things: nothing lost (every row ends succeeded, or failed with
its reason), nothing half-written (a done marker only beside a whole, valid COG and its
preview; no partial object, no multipart upload left open), no done work redone (one
successful attempt per task; a rerun runs only what is not done), the counts and exit
status, and no credential in any file of the run directory."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from chaos.conftest import IN, INPUTS, MANIFEST, OUT, attempts, secrets, write_manifest
from chaos.proxy import KINDS, Fault
from helpers import read_csv, run_cogify
from tilefleet.errors import JobError
from tilefleet.store import objects
from tilefleet.store.gdal_env import clear_network_cache, gdal_config

#: An input whose COG (about 7 MB of noise) is uploaded as a multipart upload of 2 parts.
LARGE = "large/noise.tif"


def outputs_of(key: str) -> tuple[str, str, str]:
    stem = key.removesuffix(".tif")
    return f"cogs/{stem}.tif", f"cogs/{stem}.jpg", f"cogs/{stem}.json"


def noise_raster(path: Path) -> Path:
    pixels = np.random.default_rng(15).random((1, 1300, 1300), dtype="float32")
    profile = {"driver": "GTiff", "width": 1300, "height": 1300, "count": 1, "dtype": "float32"}
    transform = Affine(10, 0, 500_000, 0, -10, 5_000_000)
    with rasterio.open(path, "w", crs="EPSG:32631", transform=transform, **profile) as ds:
        ds.write(pixels)
    return path


def with_large_input(s3, tmp_path) -> list[str]:
    s3.upload_file(str(noise_raster(tmp_path / "noise.tif")), IN, f"raw/{LARGE}")
    keys = [*INPUTS, LARGE]
    write_manifest(s3, keys)
    return keys


def run(run_dir: Path, **options):
    options = {"retries": 3, **options}
    return run_cogify(MANIFEST, f"s3://{IN}/raw", f"s3://{OUT}/cogs", run_dir, **options)


def assert_whole(s3, moto_endpoint: str, run_dir: Path, keys: list[str], failed=()) -> None:
    """The run's outputs and record after faults: see the module's docstring."""
    listed = s3.list_objects_v2(Bucket=OUT).get("Contents", [])
    present = {obj["Key"]: obj["Size"] for obj in listed}
    assert not [key for key in present if ".tilefleet-partial-" in key]
    assert not s3.list_multipart_uploads(Bucket=OUT).get("Uploads")
    config = gdal_config({"AWS_ENDPOINT_URL": moto_endpoint})
    clear_network_cache()
    for key in keys:
        cog, preview, marker = outputs_of(key)
        if key in failed:
            assert marker not in present, f"{key} failed but looks done"
            continue
        assert present.get(cog) and present.get(preview) and present.get(marker), key
        with rasterio.Env(**config):
            assert cog_validate(f"/vsis3/{OUT}/{cog}", quiet=True)[0], cog
    tried = attempts(run_dir)
    for key in keys:
        assert tried[key].count(1) == (0 if key in failed else 1), (key, tried[key])
    rows = {row["path"]: row["reason"] for row in read_csv(run_dir / "failed.csv")}
    assert set(rows) == set(failed)
    for path in run_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not [s for s in secrets() if s.encode() in content], path


CASES = {
    "get-503-every-3rd": [Fault("503", method="GET", every=3)],
    "get-500-every-2nd": [Fault("500", method="GET", every=2)],
    "get-reset-every-3rd": [Fault("reset", method="GET", every=3)],
    "get-stall-once": [Fault("stall", method="GET", key="L7_ETMs", times=1, stall_s=5)],
    "put-503-every-2nd": [Fault("503", method="PUT", every=2)],
    "put-reset-every-3rd": [Fault("reset", method="PUT", every=3)],
    "list-500": [Fault("500", method="LIST", times=3)],
    "manifest-503": [Fault("503", method="GET", key="manifest.csv", times=2)],
}


@pytest.mark.parametrize("faults", CASES.values(), ids=CASES.keys())
def test_faults_are_absorbed_and_every_row_is_converted_once(
    buckets, proxy, moto_endpoint, tmp_path, faults
):
    proxy.inject(*faults)
    result = run(tmp_path / "run")
    assert proxy.injected(), "no fault fired: the case tests nothing"
    assert (result.exit_code, result.report["succeeded"], result.report["failed"]) == (0, 4, 0)
    assert_whole(buckets, moto_endpoint, tmp_path / "run", list(INPUTS))


def test_a_body_cut_mid_way_is_retried_not_taken_for_a_damaged_file(
    buckets, proxy, moto_endpoint, tmp_path
):
    proxy.inject(Fault("cut", method="GET", key="raw/scenes/L7_ETMs.tif", times=2))
    result = run(tmp_path / "run")
    assert (result.exit_code, result.report["succeeded"]) == (0, 4)
    assert len(attempts(tmp_path / "run")["scenes/L7_ETMs.tif"]) >= 2  # retried
    assert_whole(buckets, moto_endpoint, tmp_path / "run", list(INPUTS))


def test_multipart_parts_that_fail_are_retried(buckets, proxy, moto_endpoint, tmp_path):
    keys = with_large_input(buckets, tmp_path)
    proxy.inject(Fault("503", method="PART", every=2), Fault("reset", method="PART", every=5))
    result = run(tmp_path / "run")
    assert [kind for kind, _path, fault in proxy.log if fault] and any(
        kind == "PART" for kind, _path, _fault in proxy.log
    )
    assert (result.exit_code, result.report["succeeded"]) == (0, 5)
    assert_whole(buckets, moto_endpoint, tmp_path / "run", keys)


def test_an_upload_that_keeps_failing_fails_its_row_and_a_rerun_finishes_it(
    buckets, proxy, moto_endpoint, tmp_path, monkeypatch
):
    monkeypatch.setenv("TILEFLEET_STORE_RETRIES", "1")
    keys = with_large_input(buckets, tmp_path)
    proxy.inject(Fault("503", method="PART", key=LARGE.removesuffix(".tif")))  # every part
    first = run(tmp_path / "run", backoff_s=0.01, retries=1)
    assert (first.exit_code, first.report["succeeded"], first.report["failed"]) == (1, 4, 1)
    assert_whole(buckets, moto_endpoint, tmp_path / "run", keys, failed=[LARGE])
    (row,) = read_csv(tmp_path / "run/failed.csv")
    assert "503" in row["reason"] or "reduce your request rate" in row["reason"]
    assert len(attempts(tmp_path / "run")[LARGE]) == 2  # retryable: the retry was used

    proxy.clear()
    again = run(tmp_path / "run")
    assert (again.exit_code, again.report["succeeded"], again.report["failed"]) == (0, 5, 0)
    tried = attempts(tmp_path / "run")
    assert all(len(tried[key]) == 1 for key in INPUTS)  # done work was not redone
    assert tried[LARGE][-1] == 1
    assert_whole(buckets, moto_endpoint, tmp_path / "run", keys)


def test_an_attempt_killed_mid_upload_leaves_no_upload_open(
    buckets, proxy, moto_endpoint, tmp_path, monkeypatch
):
    """A part stalls past the task timeout: the worker is killed mid-upload, leaving the
    multipart upload open on S3; the next attempt aborts it before uploading again."""
    monkeypatch.setenv("TILEFLEET_STORE_READ_TIMEOUT", "60s")  # the task timeout acts first
    keys = with_large_input(buckets, tmp_path)
    proxy.inject(Fault("stall", method="PART", key=LARGE.removesuffix(".tif"), times=1, stall_s=8))
    result = run(tmp_path / "run", task_timeout=5)
    assert (result.exit_code, result.report["succeeded"]) == (0, 5)
    tried = attempts(tmp_path / "run")[LARGE]
    assert tried == [0, 1]  # killed once, then done
    creates = [path for kind, path, _ in proxy.log if kind == "POST" and LARGE[:-4] in path]
    assert len(creates) >= 2  # the killed attempt had opened an upload of its own
    assert_whole(buckets, moto_endpoint, tmp_path / "run", keys)


def test_a_denied_input_fails_at_once_and_the_others_go_on(buckets, proxy, moto_endpoint, tmp_path):
    proxy.inject(Fault("403", method="GET", key="raw/scenes/b/SCL.tif"))
    result = run(tmp_path / "run")
    assert (result.exit_code, result.report["succeeded"], result.report["failed"]) == (1, 3, 1)
    assert attempts(tmp_path / "run")["scenes/b/SCL.tif"] == [0]  # permanent: not retried
    assert_whole(
        buckets, moto_endpoint, tmp_path / "run", list(INPUTS), failed=["scenes/b/SCL.tif"]
    )


def test_a_marker_that_cannot_be_written_leaves_the_row_not_done(
    buckets, proxy, moto_endpoint, tmp_path, monkeypatch
):
    monkeypatch.setenv("TILEFLEET_STORE_RETRIES", "1")
    proxy.inject(Fault("500", method="PUT", key="cogs/dem/polar.json"))
    first = run(tmp_path / "run", backoff_s=0.01, retries=1)
    assert (first.exit_code, first.report["failed"]) == (1, 1)
    assert_whole(buckets, moto_endpoint, tmp_path / "run", list(INPUTS), failed=["dem/polar.tif"])
    proxy.clear()
    again = run(tmp_path / "run")
    assert (again.exit_code, again.report["succeeded"]) == (0, 4)
    assert_whole(buckets, moto_endpoint, tmp_path / "run", list(INPUTS))


def test_a_destination_that_cannot_be_listed_stops_the_run_in_one_line(
    buckets, proxy, tmp_path, monkeypatch
):
    monkeypatch.setattr(objects, "READ_AGAIN_DELAYS_S", (0.01,))
    proxy.inject(Fault("500", method="LIST", key=OUT))
    with pytest.raises(JobError, match="cannot list the destination for done tasks: ") as caught:
        run(tmp_path / "run")
    assert "\n" not in str(caught.value) and "Debug source" not in str(caught.value)
    assert not (tmp_path / "run").exists()  # refused before anything was written
    assert not buckets.list_objects_v2(Bucket=OUT).get("Contents")


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(12))
def test_soak_every_fault_at_once(buckets, proxy, moto_endpoint, tmp_path, seed):
    """Seeded mixes of every fault on every kind of request; runs until done (each rerun
    resumes), then checks the whole. With ``--chaos-soak`` only."""
    keys = with_large_input(buckets, tmp_path)
    rng = random.Random(seed)
    methods = ("GET", "PUT", "LIST", "PART", "HEAD", "POST")
    transient = [kind for kind in KINDS if kind != "403"]
    proxy.inject(
        *[
            Fault(kind, method=method, every=rng.randint(3, 9), stall_s=4)
            for method in methods
            for kind in rng.sample(transient, 2)
        ]
    )
    for _ in range(6):
        result = run(tmp_path / "run", backoff_s=0.01)
        if result.report["succeeded"] + result.report.get("skipped", 0) == len(keys):
            break
    proxy.clear()
    final = run(tmp_path / "run")
    assert final.exit_code == 0
    assert_whole(buckets, moto_endpoint, tmp_path / "run", keys)
