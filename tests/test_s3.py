"""cogify against a real S3 API (moto's server on loopback): inputs, manifest and outputs in
buckets, GDAL reading through /vsis3/, skip by listing, and no secret in the record."""

from __future__ import annotations

import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from conftest import S3_SECRET
from helpers import assert_same_pixels, read_csv, run_cogify
from tilefleet.errors import JobError
from tilefleet.store import objects
from tilefleet.store.gdal_env import gdal_config

KEYS = {
    "scenes/a/RGB.byte.tif": "non_cog_multiband/RGB.byte.tif",
    "scenes/b/L7_ETMs.tif": "non_cog_multiband/L7_ETMs.tif",
    "scenes/SCL.tif": "s2_l2a_29RKH_20200219/SCL.tif",
}


@pytest.fixture
def buckets(s3, data_dir):
    s3.create_bucket(Bucket="tf-input")
    s3.create_bucket(Bucket="tf-output")
    for key, source in KEYS.items():
        s3.upload_file(str(data_dir / source), "tf-input", f"raw/{key}")
    manifest = "".join(f"{key},\n" for key in KEYS) + "scenes/missing.tif,1\n"
    s3.put_object(Bucket="tf-input", Key="manifests/batch-raw.csv", Body=manifest.encode())
    return s3


def test_cogify_from_bucket_to_bucket(buckets, data_dir, tmp_path):
    result = run_cogify(
        "s3://tf-input/manifests/batch-raw.csv",
        "s3://tf-input/raw",
        "s3://tf-output/cogs",
        tmp_path / "run",
    )
    assert result.exit_code == 1
    assert (result.report["succeeded"], result.report["failed"]) == (3, 1)
    assert "not found" in read_csv(tmp_path / "run/failed.csv")[0]["reason"]
    listed = buckets.list_objects_v2(Bucket="tf-output")["Contents"]
    keys = sorted(obj["Key"] for obj in listed)
    written = [f"cogs/{k[:-4]}{ext}" for k in KEYS for ext in (".tif", ".jpg", ".json")]
    assert keys == sorted([*written, "cogs/collection.json"])  # the collection of the items
    with rasterio.Env(**gdal_config()):
        for key, source in KEYS.items():
            remote = f"/vsis3/tf-output/cogs/{key}"
            assert cog_validate(remote, quiet=True)[0]
            assert_same_pixels(str(data_dir / source), remote)


def test_rerun_skips_by_listing_each_folder_once(buckets, tmp_path, monkeypatch):
    run_cogify(
        "s3://tf-input/manifests/batch-raw.csv",
        "s3://tf-input/raw",
        "s3://tf-output/cogs",
        tmp_path / "run1",
    )
    listings = []
    original = objects.ObjectStore.list_dir
    monkeypatch.setattr(
        objects.ObjectStore,
        "list_dir",
        lambda self, prefix: (
            listings.append((self.location.bucket, prefix)) or original(self, prefix)
        ),
    )
    monkeypatch.setattr(
        objects.ObjectStore,
        "exists",
        lambda self, key: pytest.fail(f"HEAD of {key}: skip must list"),
    )
    second = run_cogify(
        "s3://tf-input/manifests/batch-raw.csv",
        "s3://tf-input/raw",
        "s3://tf-output/cogs",
        tmp_path / "run2",
    )
    assert (second.report["skipped"], second.report["attempts"]) == (3, 1)
    # Once per output folder for the skip; once per input folder of what is left to run
    # (its input bytes scale the estimate).
    assert sorted(p for bucket, p in listings if bucket == "tf-output") == [
        "scenes",
        "scenes/a",
        "scenes/b",
    ]
    assert [p for bucket, p in listings if bucket == "tf-input"] == ["scenes"]


def test_no_secret_reaches_the_run_directory(buckets, tmp_path):
    run_cogify(
        "s3://tf-input/manifests/batch-raw.csv",
        "s3://tf-input/raw",
        "s3://tf-output/cogs",
        tmp_path / "run",
    )
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(files) >= 7
    for path in files:
        assert S3_SECRET.encode() not in path.read_bytes(), path


def test_store_listing_is_paginated(s3):
    s3.create_bucket(Bucket="tf-many")
    store = objects.open_store("s3://tf-many/p")
    for i in range(1203):  # more than one page of 1000
        store.put_bytes(b"x", f"dir/{i:05d}.json")
    store.put_bytes(b"x", "dir/sub/deeper.json")
    assert len(store.list_dir("dir")) == 1203
    assert len(list(store.list("dir"))) == 1204
    assert store.put_bytes(b"y", "dir/00000.json", if_absent=True) is False
    assert store.put_bytes(b"y", "dir/new.json", if_absent=True) is True


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("s3://tf-input/manifests/nope.csv", "manifest s3://tf-input/manifests/nope.csv does not"),
        ("s3://no-such-bucket/m.csv", "manifest s3://no-such-bucket/m.csv does not exist"),
    ],
)
def test_an_unreadable_s3_manifest_is_one_line(buckets, tmp_path, manifest, message):
    with pytest.raises(JobError) as caught:
        run_cogify(manifest, "s3://tf-input/raw", "s3://tf-output/cogs", tmp_path / "run")
    text = str(caught.value)
    assert text.startswith(message) and "\n" not in text and len(text) < 320, text
