"""Settings of the distributed executors that need no running engine: what they take and
refuse, what they record (never secrets), how serverless runs are priced, and the Dask
Gateway path, tested against a stand-in Gateway because no gateway server runs here."""

from __future__ import annotations

import sys
import types

import pytest

from tilefleet.engine.estimate import PRICE_PER_GB_S
from tilefleet.engine.executors import create_executor
from tilefleet.engine.executors.worker_env import forwarded_environment
from tilefleet.engine.run import run_job
from tilefleet.errors import redact
from tilefleet.jobs import build_job


def test_executors_refuse_settings_of_other_engines():
    with pytest.raises(ValueError, match="does not take: lithops_config"):
        create_executor("dask", 2, lithops_config="x.yaml")
    with pytest.raises(ValueError, match="does not take: scheduler"):
        create_executor("ray", 2, scheduler="tcp://x:8786")
    with pytest.raises(ValueError, match="either scheduler or gateway"):
        create_executor("dask", 2, scheduler="tcp://x:8786", gateway="https://gw")


def test_lambda_runs_are_priced_per_gb_second_and_localhost_is_free(tmp_path):
    config = tmp_path / "lambda.yaml"
    config.write_text(
        "lithops: {backend: aws_lambda, storage: aws_s3}\n"
        "aws_lambda: {region: eu-central-1, architecture: arm64, runtime_memory: 1024}\n"
    )
    executor = create_executor("lithops", 300, lithops_config=str(config), mem=4096)
    assert executor.billing.memory_gb == 4.0
    assert executor.billing.usd_per_gb_s == PRICE_PER_GB_S["aws-lambda-arm"]
    assert executor.describe() == {
        "name": "lithops",
        "workers": 300,
        "lithops_config": str(config),
        "mem": 4096,
        "backend": "aws_lambda",
        "region": "eu-central-1",
    }
    assert create_executor("lithops", 300, lithops_config=str(config)).billing.memory_gb == 1.0
    assert create_executor("lithops", 2).billing is None
    # Lambda gets a few invocations queued per worker; the localhost backend, which runs
    # map jobs one after another, gets large batches.
    assert executor.default_max_in_flight == 16 * 300
    assert create_executor("lithops", 2).default_max_in_flight == 512


def test_the_engine_estimates_a_lambda_run_before_starting_it(tmp_path):
    config = tmp_path / "lambda.yaml"
    config.write_text("lithops: {backend: aws_lambda, storage: aws_s3}\n")
    job = build_job(
        {
            "recipe": "engine_recipes:FlakyRecipe",
            "dest": str(tmp_path / "d"),
            "state_dir": str(tmp_path / "s"),
            "count": 10,
            "executor": "lithops",
            "lithops_config": str(config),
            "mem": 2048,
            "dry_run": True,
        }
    )
    estimate = run_job(job).estimate
    assert estimate.cost_usd == pytest.approx(10 * 0.1 * 2.0 * PRICE_PER_GB_S["aws-lambda-x86"])


def test_only_settings_travel_to_remote_workers_never_credentials():
    environ = {
        "GDAL_CACHEMAX": "512",
        "AWS_REGION": "us-west-2",
        "AWS_ENDPOINT_URL": "http://s3",
        "AWS_ACCESS_KEY_ID": "AKIA",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_SESSION_TOKEN": "t",
        "GDAL_HTTP_BEARER_TOKEN": "t",
        "HOME": "/root",
    }
    assert forwarded_environment(environ) == {
        "GDAL_CACHEMAX": "512",
        "AWS_REGION": "us-west-2",
        "AWS_ENDPOINT_URL": "http://s3",
    }


#: GDAL's own credential settings, each holding a secret a remote worker must not be sent.
GDAL_CREDENTIALS = {
    "GDAL_HTTP_USERPWD": "alice:hunter2-password",
    "GDAL_HTTP_PROXYUSERPWD": "proxy:hunter3-password",
    "GDAL_HTTP_HEADERS": "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.token",
    "GDAL_HTTP_BEARER": "eyJhbGciOiJIUzI1NiJ9.bearer",
    "AZURE_STORAGE_CONNECTION_STRING": "AccountName=a;AccountKey=c2VjcmV0LWtleQ==",
}


def test_gdal_credential_settings_are_neither_forwarded_nor_named_in_a_submit_file():
    from tilefleet.engine.executors.htcondor.dag import getenv_names

    environ = {"GDAL_CACHEMAX": "512", "GDAL_HTTP_TIMEOUT": "30", **GDAL_CREDENTIALS}
    assert forwarded_environment(environ) == {"GDAL_CACHEMAX": "512", "GDAL_HTTP_TIMEOUT": "30"}
    # HTCondor copies what getenv names (wildcards included) into the job ad, on disk.
    assert getenv_names(environ) == "GDAL_CACHEMAX, GDAL_HTTP_TIMEOUT"
    assert getenv_names({"HOME": "/root"}) == "false"


def test_gdal_credential_values_are_redacted_from_error_text():
    text = " ".join(f"[{value}]" for value in GDAL_CREDENTIALS.values())
    assert redact(text, GDAL_CREDENTIALS) == " ".join(["[***]"] * len(GDAL_CREDENTIALS))


class FakeGatewayCluster:
    def __init__(self, options):
        self.options, self.adapted, self.scaled, self.closed = options, None, None, False

    def adapt(self, minimum, maximum):
        self.adapted = (minimum, maximum)

    def scale(self, n):
        self.scaled = n

    def get_client(self):
        return types.SimpleNamespace(run=lambda *a: None, close=lambda: None)

    def close(self):
        self.closed = True


@pytest.fixture
def fake_gateway(monkeypatch):
    """A stand-in for dask_gateway (no Dask Gateway server runs here)."""
    made = {}

    class Gateway:
        def __init__(self, address):
            made["address"] = address

        def cluster_options(self):
            return {}

        def new_cluster(self, options):
            made["cluster"] = FakeGatewayCluster(options)
            return made["cluster"]

        def connect(self, name):
            made["cluster"] = FakeGatewayCluster({"joined": name})
            return made["cluster"]

    monkeypatch.setitem(sys.modules, "dask_gateway", types.SimpleNamespace(Gateway=Gateway))
    return made


def test_a_dask_gateway_cluster_gets_its_options_and_scales_adaptively(fake_gateway, monkeypatch):
    monkeypatch.setenv("GDAL_CACHEMAX", "512")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-record")
    options = {
        "image": "ghcr.io/org/tilefleet:1.0",
        "worker_cores": 1,
        "worker_memory": 4,
        "adaptive_minimum": 2,
        "adaptive_maximum": 40,
        "environment": ["GDAL_CACHEMAX", "AWS_SECRET_ACCESS_KEY"],
    }
    executor = create_executor("dask", 4, gateway="https://gw.example", cluster_options=options)
    executor.start()
    cluster = fake_gateway["cluster"]
    assert fake_gateway["address"] == "https://gw.example"
    assert cluster.options == {
        "image": "ghcr.io/org/tilefleet:1.0",
        "worker_cores": 1,
        "worker_memory": 4,
        "environment": {"GDAL_CACHEMAX": "512", "AWS_SECRET_ACCESS_KEY": "do-not-record"},
    }
    assert cluster.adapted == (2, 40)
    recorded = executor.describe()
    assert "do-not-record" not in repr(recorded)
    assert recorded["cluster_options"]["environment"] == ["GDAL_CACHEMAX", "AWS_SECRET_ACCESS_KEY"]
    executor.shutdown()
    assert cluster.closed


def test_a_gateway_cluster_named_by_the_workflow_engine_is_joined_and_left_running(
    fake_gateway, monkeypatch
):
    monkeypatch.setenv("DASK_CLUSTER", "calrissian.4f1c2a")
    executor = create_executor("dask", 4, gateway="https://gw.example")
    executor.start()
    cluster = fake_gateway["cluster"]
    assert cluster.options == {"joined": "calrissian.4f1c2a"}
    executor.shutdown()
    assert not cluster.closed


def test_a_missing_engine_is_a_clear_job_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ValueError, match=r"pip install 'tilefleet\[ray\]'"):
        create_executor("ray", 2)


def test_a_gateway_without_its_client_is_an_invalid_job_before_anything_starts(
    monkeypatch, tmp_path
):
    from typer.testing import CliRunner

    from tilefleet.cli import app

    monkeypatch.setitem(sys.modules, "dask_gateway", None)  # as if it were not installed
    (tmp_path / "m.csv").write_text("a.tif,1\n")
    result = CliRunner().invoke(
        app,
        ["cogify", str(tmp_path / "m.csv"), "--input-root", str(tmp_path), "--dest",
         str(tmp_path / "out"), "--run-dir", str(tmp_path / "run"), "--executor", "dask",
         "--gateway", "https://gw.example"],
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "needs dask-gateway" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_the_localhost_runtime_runs_lithops_scripts_with_the_task_modules_imported(tmp_path):
    import subprocess

    from tilefleet.engine.executors.lithops import preloading_runtime

    script = tmp_path / "runner.py"
    script.write_text(
        "import sys\nprint(__name__, sys.argv[1:], 'tilefleet.engine.worker' in sys.modules)\n"
    )
    modules = ("tilefleet.engine.worker", "no_such_module_here")  # one that cannot import
    runtime = preloading_runtime(sys.executable, modules, tmp_path / "rt")
    assert preloading_runtime(sys.executable, modules, tmp_path / "rt") == runtime  # by content
    shown = subprocess.run(
        [str(runtime), str(script), "run_job", "a job.json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert shown.strip() == "__main__ ['run_job', 'a job.json'] True"
    plain = subprocess.run(
        [sys.executable, str(script)], check=True, capture_output=True, text=True
    ).stdout
    assert plain.strip() == "__main__ [] False"


def test_a_runtime_named_in_the_lithops_config_is_left_alone(tmp_path):
    config = tmp_path / "local.yaml"
    config.write_text("lithops: {backend: localhost}\nlocalhost: {runtime: /opt/py/bin/python3}\n")
    executor = create_executor("lithops", 1, lithops_config=str(config))
    assert executor.backend_config["localhost"]["runtime"] == "/opt/py/bin/python3"
    assert not executor._own_runtime
    assert create_executor("lithops", 1)._own_runtime
