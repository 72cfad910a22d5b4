"""What a failed read is, from the real errors GDAL (/vsis3) and obstore raise when S3 or
the network misbehaves (through the fault proxy): throttling, server errors, dropped
connections, stalls and bodies cut mid-way are retryable; a missing key, a denied access
and a damaged local file are permanent."""

from __future__ import annotations

import pytest
import rasterio

from chaos.proxy import Fault
from conftest import truncated_copy
from tilefleet.errors import PERMANENT, RETRYABLE, RetryableError, classify, one_line
from tilefleet.store import objects
from tilefleet.store.gdal_env import clear_network_cache, gdal_session
from tilefleet.store.objects import open_store

BUCKET = "chaos-reads"
SOURCE = "s2_l2a_29RKH_20200219/B02.tif"  # 2.2 MB, tiled: read in a few range requests


@pytest.fixture
def bucket(proxy, s3, data_dir, monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")  # GDAL's own retries would hide the fault
    s3.create_bucket(Bucket=BUCKET)
    for name in ("a", "b", "c"):
        s3.upload_file(str(data_dir / SOURCE), BUCKET, f"in/{name}.tif")
    clear_network_cache()  # what this process's GDAL read in an earlier test is gone
    return proxy


def read_with_gdal(name: str) -> None:
    path = f"/vsis3/{BUCKET}/in/{name}.tif"
    with gdal_session(path), rasterio.open(path) as ds:
        ds.read(1)


def failure(read, *args) -> BaseException:
    with pytest.raises(Exception) as caught:
        read(*args)
    return caught.value


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault("503", method="GET"), RETRYABLE),  # SlowDown
        (Fault("500", method="GET"), RETRYABLE),
        (Fault("reset", method="GET"), RETRYABLE),
        (Fault("stall", method="GET", stall_s=5), RETRYABLE),  # > GDAL_HTTP_TIMEOUT
        (Fault("cut", method="GET", every=2), RETRYABLE),  # the data, not the header
        (Fault("403", method="GET"), PERMANENT),
    ],
    ids=lambda value: value.kind if isinstance(value, Fault) else value,
)
def test_gdal_read_faults_are_classified(bucket, fault, kind):
    bucket.inject(fault)
    error = failure(read_with_gdal, "a")
    assert bucket.injected(), "the fault never fired: the test read nothing through it"
    assert classify(error) == kind, one_line(error)
    assert "\n" not in one_line(error) and "See previous exception" not in one_line(error)


def test_a_cut_read_is_read_afresh_by_the_next_attempt_in_the_same_process(bucket):
    bucket.inject(Fault("cut", method="GET", key="in/b.tif", times=1, every=2))
    error = failure(read_with_gdal, "b")
    assert isinstance(error, RetryableError)
    assert "over the network" in str(error) and "TIFFReadEncodedTile" in str(error)
    bucket.clear()
    read_with_gdal("b")  # GDAL's cache of the cut bytes was dropped


def test_a_missing_key_is_permanent(bucket):
    assert classify(failure(read_with_gdal, "nothing")) == PERMANENT


def test_a_damaged_local_file_is_permanent(data_dir, tmp_path):
    damaged = str(truncated_copy(data_dir / SOURCE, tmp_path / "damaged.tif", 0.5))

    def read_local():
        with gdal_session(damaged), rasterio.open(damaged) as ds:
            ds.read(1)

    error = failure(read_local)
    assert "TIFFReadEncodedTile" in one_line(error) or "IReadBlock" in one_line(error)
    assert classify(error) == PERMANENT


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault("503", method="GET"), RETRYABLE),
        (Fault("500", method="GET"), RETRYABLE),
        (Fault("reset", method="GET"), RETRYABLE),
        (Fault("cut", method="GET"), RETRYABLE),
        (Fault("403", method="GET"), PERMANENT),
    ],
    ids=lambda value: value.kind if isinstance(value, Fault) else value,
)
def test_object_store_read_faults_are_classified(bucket, monkeypatch, fault, kind):
    monkeypatch.setenv("TILEFLEET_STORE_TIMEOUT", "3s")  # obstore retries until then
    monkeypatch.setattr(objects, "READ_AGAIN_DELAYS_S", (0.01,))  # the store's own reads again
    bucket.inject(fault)
    error = failure(open_store(f"s3://{BUCKET}/in").get_bytes, "a.tif")
    assert bucket.injected()
    assert classify(error) == kind, one_line(error)
    assert "Debug source" not in one_line(error)


def test_an_object_store_stall_is_a_timeout_retried_by_obstore(bucket):
    bucket.inject(Fault("stall", method="GET", times=1, stall_s=4))  # > the 2 s read timeout
    data = open_store(f"s3://{BUCKET}/in").get_bytes("a.tif")
    assert len(data) > 2_000_000
    assert [fault for _kind, _path, fault in bucket.log] == ["stall", None]


def test_a_body_cut_once_is_read_again_by_the_store(bucket):
    bucket.inject(Fault("cut", method="GET", times=1))
    assert len(open_store(f"s3://{BUCKET}/in").get_bytes("a.tif")) > 2_000_000
    assert [fault for _kind, _path, fault in bucket.log] == ["cut", None]


def test_a_missing_object_is_permanent(bucket):
    error = failure(open_store(f"s3://{BUCKET}/in").get_bytes, "nothing.tif")
    assert classify(error) == PERMANENT
