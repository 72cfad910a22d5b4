"""Fixtures of the chaos suite: a fault-injecting proxy in front of moto's S3 server, and the
environment that sends obstore and GDAL through it with short timeouts (a stall is then
seconds, not minutes). ``--chaos-soak`` (``pytest tests/chaos --chaos-soak``) adds the long
soak: many runs with faults of every kind at once, seeded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chaos.proxy import FaultProxy
from conftest import S3_SECRET
from tilefleet.store.gdal_env import clear_network_cache

ACCESS_KEY = "tilefleet-test-key"

#: The buckets of the chaos runs, and the real rasters that are their inputs.
IN, OUT = "chaos-in", "chaos-out"
INPUTS = {
    "scenes/RGB.byte.tif": "non_cog_multiband/RGB.byte.tif",
    "scenes/L7_ETMs.tif": "non_cog_multiband/L7_ETMs.tif",
    "scenes/b/SCL.tif": "s2_l2a_29RKH_20200219/SCL.tif",
    "dem/polar.tif": "copernicus_dem/Copernicus_DSM_COG_30_S90_00_W164_00_DEM.tif",
}
MANIFEST = f"s3://{IN}/manifest.csv"


def pytest_addoption(parser):
    parser.addoption(
        "--chaos-soak",
        action="store_true",
        default=False,
        help="also run the chaos soak: many seeded runs with every fault at once (minutes)",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--chaos-soak"):
        return
    skip = pytest.mark.skip(reason="the chaos soak runs with --chaos-soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    config.addinivalue_line("markers", "soak: part of the long chaos soak (--chaos-soak)")


@pytest.fixture(scope="session")
def chaos_proxy(moto_endpoint):
    proxy = FaultProxy(moto_endpoint)
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(chaos_proxy, s3, monkeypatch):
    """The proxy, with no fault yet, and this test's clients (obstore, GDAL) going through
    it; ``s3`` (boto3) talks to moto directly, to set up and to check."""
    chaos_proxy.clear()
    chaos_proxy.log.clear()
    monkeypatch.setenv("AWS_ENDPOINT_URL", chaos_proxy.url)
    # Short limits, so that a stalled request times out (and is retried) within seconds.
    monkeypatch.setenv("TILEFLEET_STORE_READ_TIMEOUT", "2s")
    monkeypatch.setenv("TILEFLEET_STORE_TIMEOUT", "20s")
    monkeypatch.setenv("TILEFLEET_STORE_RETRIES", "3")
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "3")
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.1")
    yield chaos_proxy
    chaos_proxy.clear()


def secrets() -> tuple[str, ...]:
    """The credentials of the test environment, which no file of a run may hold."""
    return (S3_SECRET, ACCESS_KEY)


@pytest.fixture
def buckets(proxy, s3, data_dir, tmp_path):
    """Inputs and manifest in one bucket, an empty output bucket (set up past the proxy)."""
    s3.create_bucket(Bucket=IN)
    s3.create_bucket(Bucket=OUT)
    for key, source in INPUTS.items():
        s3.upload_file(str(data_dir / source), IN, f"raw/{key}")
    write_manifest(s3, list(INPUTS))
    clear_network_cache()
    return s3


def write_manifest(s3, keys: list[str]) -> None:
    s3.put_object(Bucket=IN, Key="manifest.csv", Body=("path\n" + "\n".join(keys)).encode())


def attempts(run_dir: Path) -> dict[str, list[int]]:
    """ok flags of each task's attempts, in order."""
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    try:
        rows = db.execute("SELECT task_id, ok FROM attempts ORDER BY rowid").fetchall()
    finally:
        db.close()
    tried: dict[str, list[int]] = {}
    for task_id, ok in rows:
        tried.setdefault(task_id, []).append(ok)
    return tried
