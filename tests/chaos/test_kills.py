"""SIGKILL at seeded random moments, through the fault proxy: of the whole process group
(then a rerun finishes the job) and of one worker (the run itself finishes it).

After either: every row is done, each COG is valid beside its preview and item, nothing is
half-written (no partial object, no multipart upload left open), no task succeeded twice,
and no credential is in the run directory. A task killed after its marker was written but
before the ledger heard of it is found done in the destination by the rerun (skipped).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from chaos.conftest import IN, INPUTS, MANIFEST, OUT, secrets
from chaos.test_cogify_chaos import attempts, outputs_of, run
from tilefleet.engine.executors.local import WORKER_MARK
from tilefleet.errors import ExitCode
from tilefleet.store.gdal_env import clear_network_cache, gdal_config

SEEDS = range(3)


def cogify_process(run_dir: Path, proxy_url: str) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "tilefleet", "cogify", MANIFEST, "--input-root",
        f"s3://{IN}/raw", "--dest", f"s3://{OUT}/cogs", "--run-dir", str(run_dir),
        "--workers", "2", "--retries", "3",
    ]  # fmt: skip
    env = {**os.environ, "AWS_ENDPOINT_URL": proxy_url}
    return subprocess.Popen(
        command, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def worker_pids(parent: int) -> list[int]:
    """The local executor's worker processes of ``parent``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and WORKER_MARK.encode() in command:
            pids.append(int(entry.name))
    return pids


def assert_done_once(s3, moto_endpoint: str, run_dir: Path) -> None:
    listed = s3.list_objects_v2(Bucket=OUT).get("Contents", [])
    present = {obj["Key"] for obj in listed}
    assert not [key for key in present if ".tilefleet-partial-" in key]
    assert not s3.list_multipart_uploads(Bucket=OUT).get("Uploads")
    clear_network_cache()
    with rasterio.Env(**gdal_config({"AWS_ENDPOINT_URL": moto_endpoint})):
        for key in INPUTS:
            cog, preview, marker = outputs_of(key)
            assert {cog, preview, marker} <= present, key
            assert cog_validate(f"/vsis3/{OUT}/{cog}", quiet=True)[0], cog
    for key, oks in attempts(run_dir).items():
        assert oks.count(1) <= 1, (key, oks)  # never converted twice
    for path in run_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not [s for s in secrets() if s.encode() in content], path


@pytest.mark.parametrize("seed", SEEDS)
def test_the_group_killed_at_a_random_moment_then_a_rerun_finishes(
    buckets, proxy, moto_endpoint, tmp_path, seed
):
    run_dir = tmp_path / "run"
    process = cogify_process(run_dir, proxy.url)
    time.sleep(random.Random(seed).uniform(0.5, 4.0))
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    result = run(run_dir)
    assert result.exit_code == ExitCode.OK, result.failed
    counts = result.report
    assert counts["succeeded"] + counts["skipped"] == len(INPUTS) and counts["failed"] == 0
    assert_done_once(buckets, moto_endpoint, run_dir)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_worker_killed_at_a_random_moment_costs_one_attempt(
    buckets, proxy, moto_endpoint, tmp_path, seed
):
    run_dir = tmp_path / "run"
    process = cogify_process(run_dir, proxy.url)
    deadline = time.monotonic() + 60
    while not worker_pids(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(random.Random(seed).uniform(0.2, 2.0))
    workers = worker_pids(process.pid)
    if workers:
        os.kill(random.Random(seed).choice(workers), signal.SIGKILL)
    assert process.wait(timeout=120) == ExitCode.OK
    assert_done_once(buckets, moto_endpoint, run_dir)
