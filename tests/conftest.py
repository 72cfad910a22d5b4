"""Shared fixtures: the real test data, an isolated run history, and a real S3 API server
(moto's) on loopback."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

# The STAC API on loopback (stac_fixtures.py), for every test folder.
pytest_plugins = ["stac_fixtures"]

REPO = Path(__file__).resolve().parents[1]
S3_SECRET = "tilefleet-test-secret-5f3b9c2e71d04a8a"


def data_root() -> Path:
    # Absolute, so that tools the tests start in other folders (cwltool) find it too.
    return Path(os.environ.get("TILEFLEET_TEST_DATA", REPO.parent / "shared" / "data")).absolute()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not (root / "SOURCES.md").is_file():
        pytest.skip(f"real test data not found at {root} (set TILEFLEET_TEST_DATA)")
    return root


@pytest.fixture(autouse=True)
def isolated_history(tmp_path_factory, monkeypatch):
    """Keep estimates from earlier runs of the user (or of other tests) out of each test."""
    monkeypatch.setenv("TILEFLEET_HISTORY", str(tmp_path_factory.mktemp("hist") / "h.sqlite"))


@pytest.fixture(autouse=True)
def cli_logging_undone():
    """The CLI points the tilefleet logger at the stderr of its invocation, which the test
    runner closes afterwards: put the logger back as it was after every test."""
    logger = logging.getLogger("tilefleet")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real S3 API (moto's server) on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint, monkeypatch):
    """Environment pointing obstore, GDAL and boto3 at the loopback S3 server; returns a
    boto3 client. Buckets are emptied after each test."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "tilefleet-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    yield client
    for bucket in client.list_buckets().get("Buckets", []):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket["Name"], Delete={"Objects": keys})
        client.delete_bucket(Bucket=bucket["Name"])


# Real rasters from the shared data, by the key they get below a test's input root.
RASTERS = {
    "landsat/RGB.byte.tif": "non_cog_multiband/RGB.byte.tif",
    "landsat/L7_ETMs.tif": "non_cog_multiband/L7_ETMs.tif",
    "dem/glo30.tif": "copernicus_dem/Copernicus_DSM_COG_10_N00_00_E006_00_DEM.tif",
    "dem/glo90_polar.tif": "copernicus_dem/Copernicus_DSM_COG_30_S90_00_W164_00_DEM.tif",
    "s2/B02.tif": "s2_l2a_29RKH_20200219/B02.tif",
    "s2/SCL.tif": "s2_l2a_29RKH_20200219/SCL.tif",
}


def link_rasters(root: Path, data_dir: Path, keys=RASTERS) -> Path:
    """Make ``root`` an input root of hard links to (or, across file systems, copies of)
    the real rasters named by ``keys``; not symbolic links, which lead outside the root
    and are refused there."""
    for key in keys:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(data_dir / RASTERS[key], root / key)
        except OSError:
            shutil.copyfile(data_dir / RASTERS[key], root / key)
    return root


@pytest.fixture
def inputs(data_dir, tmp_path) -> Path:
    """An input root holding links to real rasters from the shared data, in nested folders."""
    return link_rasters(tmp_path / "input", data_dir)


def truncated_copy(source: Path, target: Path, fraction: float = 0.4) -> Path:
    """A damaged raster made in a temporary folder: the first part of a real file."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def no_partials(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tilefleet-partial-" in p.name]
