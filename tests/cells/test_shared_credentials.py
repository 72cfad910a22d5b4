"""Earthdata S3 credentials obtained once by the driver and shared with every worker.

A real ``s3credentials`` endpoint on loopback (the NSIDC answer's shape: accessKeyId,
secretAccessKey, sessionToken, expiration; a Bearer EDL token required) hands out
credentials for the loopback S3 server holding the real granule. The workers have no AWS
credentials of their own, so a task that reads the granule proves the shared ones reached
it; the endpoint counts how often it was asked.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tilefleet import secrets
from tilefleet.engine.job import build_job
from tilefleet.engine.run import run_job
from tilefleet.engine.secrets import SecretKeeper
from tilefleet.errors import JobError
from tilefleet.secrets import Secret

TOKEN = "edl-test-token-0123456789abcdef"
SESSION_TOKEN = "FwoGZXIvYXdzEShared-session-token-9f8e7d6c5b4a"


class CredentialsEndpoint:
    """An s3credentials endpoint on a free loopback port."""

    def __init__(self, access_key: str, secret_key: str):
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                endpoint.requests += 1
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.send_response(401)
                    self.end_headers()
                    return
                expires = datetime.now(UTC) + timedelta(hours=1)
                body = json.dumps(
                    {
                        "accessKeyId": access_key,
                        "secretAccessKey": secret_key,
                        "sessionToken": SESSION_TOKEN,
                        "expiration": expires.isoformat(),
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/s3credentials"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def protected_granule(real_granule, s3, monkeypatch, tmp_path):
    """The real granule in a loopback bucket, and an environment without AWS credentials."""
    import os

    s3.create_bucket(Bucket="nsidc-protected")
    s3.upload_file(str(real_granule), "nsidc-protected", "ATL06/g.h5")
    endpoint = CredentialsEndpoint(
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield "s3://nsidc-protected/ATL06/g.h5", endpoint
    endpoint.close()


def cells_job(tmp_path, url, **values):
    return build_job(
        {
            "recipe": "cells",
            "granules": [url],
            "store": str(tmp_path / "cells.zarr"),
            "run_dir": str(tmp_path / "run"),
            "workers": 2,
            "retries": 0,
            **values,
        }
    )


def test_workers_read_with_the_credentials_the_driver_got_once(
    protected_granule, tmp_path, monkeypatch
):
    url, endpoint = protected_granule
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    result = run_job(cells_job(tmp_path, url, s3_credentials=endpoint.url))
    assert result.exit_code == 0, result.failed
    assert result.report["succeeded"] == 2  # two parent cells, on two workers
    assert endpoint.requests == 1
    assert secrets.get("earthdata-s3") is None  # dropped by the driver once the run ended
    # The credentials travelled in memory only: nothing in the run dir holds them.
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert SESSION_TOKEN.encode() not in path.read_bytes(), path


def test_without_shared_credentials_the_workers_cannot_read(protected_granule, tmp_path):
    url, _ = protected_granule
    result = run_job(cells_job(tmp_path, url))
    # Refused where the granule is first opened: by the plan's read of its cells, or by
    # each worker's.
    assert result.report["succeeded"] == 0 and result.failed
    assert all("no AWS credentials" in task.reason for task in result.failed), result.failed


def test_a_refused_token_is_one_line_before_any_task(protected_granule, tmp_path, monkeypatch):
    url, endpoint = protected_granule
    monkeypatch.setenv("EARTHDATA_TOKEN", "expired-token")
    with pytest.raises(JobError, match=r"refused the token in EARTHDATA_TOKEN \(HTTP 401\)"):
        run_job(cells_job(tmp_path, url, s3_credentials=endpoint.url))
    monkeypatch.delenv("EARTHDATA_TOKEN")
    with pytest.raises(JobError, match="need an Earthdata Login token in EARTHDATA_TOKEN"):
        run_job(cells_job(tmp_path, url, s3_credentials=endpoint.url))
    assert not (tmp_path / "cells.zarr").exists()


def test_nsidc_names_its_endpoint():
    job = build_job(
        {"recipe": "cells", "granules": ["g.h5"], "store": "s", "s3_credentials": "nsidc"}
    )
    assert job.params.s3_credentials == "https://data.nsidc.earthdatacloud.nasa.gov/s3credentials"
    with pytest.raises(JobError, match="s3_credentials"):
        build_job({"recipe": "cells", "granules": ["g.h5"], "store": "s", "s3_credentials": "x"})


class CountingSource:
    name = "test"

    def __init__(self, lifetime_s: float, clock):
        self.lifetime_s, self.clock, self.calls, self.fail = lifetime_s, clock, 0, False

    def fetch(self) -> Secret:
        self.calls += 1
        if self.fail:
            raise ConnectionError("endpoint down")
        return Secret({"key": f"value-{self.calls}"}, self.clock() + self.lifetime_s)


def test_secrets_are_refreshed_before_they_expire_and_kept_when_a_refresh_fails():
    now = [1000.0]
    source = CountingSource(3600, lambda: now[0])
    keeper = SecretKeeper([source], refresh_margin_s=600, clock=lambda: now[0])
    keeper.start()
    assert keeper.current() == {"test": {"key": "value-1"}}
    now[0] += 2900  # 700 s left: still fine
    assert keeper.current()["test"]["key"] == "value-1" and source.calls == 1
    now[0] += 200  # 500 s left: refreshed
    assert keeper.current()["test"]["key"] == "value-2" and source.calls == 2
    now[0] += 3100
    source.fail = True
    assert keeper.current()["test"]["key"] == "value-2"  # kept, tried once
    assert keeper.current()["test"]["key"] == "value-2" and source.calls == 3  # not hammered
    now[0] += 61
    source.fail = False
    assert keeper.current()["test"]["key"] == "value-4"
