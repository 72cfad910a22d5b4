"""`tilefleet watch` against a real S3 API (moto's server on loopback) and real rasters:
claiming, nested manifests with the same base name, two watchers at once, a watcher killed
midway and resumed, BOM and empty manifests, files that are not manifests, the loop."""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import rasterio
from typer.testing import CliRunner

from helpers import assert_same_pixels
from tilefleet.cli import app
from tilefleet.engine.claims import CLAIMS_DIR, ClaimBook, claims_location
from tilefleet.engine.watch import Watcher, WatchOptions, parse_duration
from tilefleet.errors import JobError
from tilefleet.store.gdal_env import gdal_config
from tilefleet.store.location import Location
from tilefleet.store.objects import open_store
from tilefleet.tiles.manifest import parse_manifest

SOURCE, DEST = "tf-watch", "tf-cogs"
RGB, SCL = "non_cog_multiband/RGB.byte.tif", "s2_l2a_29RKH_20200219/SCL.tif"
DEM = "copernicus_dem/Copernicus_DSM_COG_30_S90_00_W164_00_DEM.tif"
STAMP = r"\d{8}T\d{6}Z"


@pytest.fixture
def buckets(s3, data_dir):
    s3.create_bucket(Bucket=SOURCE)
    s3.create_bucket(Bucket=DEST)
    s3.upload_file(str(data_dir / RGB), SOURCE, "scenes/RGB.byte.tif")
    s3.upload_file(str(data_dir / SCL), SOURCE, "scenes/SCL.tif")
    s3.upload_file(str(data_dir / SCL), SOURCE, "scenes/other/SCL.tif")
    return s3


def put(s3, key: str, body: str | bytes, bucket: str = SOURCE) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def keys(s3, bucket: str = SOURCE, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def body(s3, key: str, bucket: str = SOURCE) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def the_one(s3, pattern: str) -> str:
    """The single source key matching ``pattern`` (a regex, {ts} for the timestamp)."""
    regex = re.compile(pattern.replace("{ts}", STAMP) + "$")
    found = [key for key in keys(s3) if regex.match(key)]
    assert len(found) == 1, (pattern, keys(s3))
    return found[0]


def options(tmp_path: Path, runs: str = "runs", **changes) -> WatchOptions:
    values = {
        "source": f"s3://{SOURCE}",
        "dest": f"s3://{DEST}",
        "runs_dir": tmp_path / runs,
        "job_options": {"workers": 1, "retries": 1, "backoff_s": 0.05},
    }
    return WatchOptions(**{**values, **changes})


def one_pass(tmp_path: Path, **changes):
    return Watcher(options(tmp_path, **changes)).run_pass()


def read_failed(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def test_good_and_bad_rows_split_into_processed_and_failed(buckets, data_dir, tmp_path):
    manifest = (
        "scenes/RGB.byte.tif,3\nscenes/SCL.tif,1\nscenes/missing.tif,1\nscenes/other/SCL.tif,3\n"
    )
    put(buckets, "incoming/batch-raw.csv", manifest)
    bystanders = {
        "incoming/notes.txt": "keep me",
        "incoming/readme-raw.txt": "not a csv",
        "incoming/batch.csv": "scenes/SCL.tif,1\n",
    }
    for key, text in bystanders.items():
        put(buckets, key, text)

    result = one_pass(tmp_path)

    assert result.exit_code == 1
    (manifest_result,) = result.manifests
    assert (manifest_result.succeeded, manifest_result.failed) == (2, 2)
    processed = the_one(buckets, r"incoming/batch-processed-{ts}\.csv")
    failed = the_one(buckets, r"incoming/batch-failed-{ts}\.csv")
    assert processed.split("-")[-1] == failed.split("-")[-1]
    assert body(buckets, processed) == b"scenes/RGB.byte.tif,3\nscenes/SCL.tif,1\n"
    failed_rows = read_failed(body(buckets, failed))
    assert list(failed_rows[0]) == ["path", "num_bands", "reason"]
    reasons = {row["path"]: row["reason"] for row in failed_rows}
    assert "not found" in reasons["scenes/missing.tif"]
    assert "band" in reasons["scenes/other/SCL.tif"]
    assert [row.path for row in parse_manifest(body(buckets, failed))] == list(reasons)
    assert not [k for k in keys(buckets) if "raw.csv" in k and k.startswith("incoming/batch")]
    assert not [k for k in keys(buckets) if "processing" in k or k.startswith(".tilefleet")]
    for key, text in bystanders.items():
        assert body(buckets, key) == text.encode()
    written = [f"scenes/{n}.{ext}" for n in ("RGB.byte", "SCL") for ext in ("tif", "jpg", "json")]
    assert keys(buckets, DEST) == sorted([*written, "collection.json"])
    with rasterio.Env(**gdal_config()):
        assert_same_pixels(str(data_dir / RGB), f"/vsis3/{DEST}/scenes/RGB.byte.tif")
        assert_same_pixels(str(data_dir / SCL), f"/vsis3/{DEST}/scenes/SCL.tif")


def test_nested_same_names_bom_and_empty_manifests(buckets, tmp_path):
    put(buckets, "a/x-raw.csv", "scenes/RGB.byte.tif,3\n")
    put(buckets, "b/x-raw.csv", "scenes/SCL.tif,1\n")
    put(buckets, "c/bom-raw.csv", "\ufeffscenes/SCL.tif,1\r\n".encode())
    put(buckets, "d/empty-raw.csv", b"")

    result = one_pass(tmp_path)

    assert result.exit_code == 1  # the empty manifest failed
    assert body(buckets, the_one(buckets, r"a/x-processed-{ts}\.csv")) == b"scenes/RGB.byte.tif,3\n"
    assert body(buckets, the_one(buckets, r"b/x-processed-{ts}\.csv")) == b"scenes/SCL.tif,1\n"
    assert body(buckets, the_one(buckets, r"c/bom-processed-{ts}\.csv")) == b"scenes/SCL.tif,1\n"
    (empty,) = read_failed(body(buckets, the_one(buckets, r"d/empty-failed-{ts}\.csv")))
    assert empty["path"] == f"s3://{SOURCE}/d/empty-raw.csv"
    assert "no rows" in empty["reason"]
    assert not [k for k in keys(buckets) if k.endswith("raw.csv") or "processing" in k]
    by_name = {m.manifest.removeprefix(f"s3://{SOURCE}/"): m for m in result.manifests}
    assert by_name["b/x-raw.csv"].succeeded == 1
    assert by_name["c/bom-raw.csv"].skipped == 1  # the same row was done by b/: not redone
    assert by_name["a/x-raw.csv"].run_dir != by_name["b/x-raw.csv"].run_dir
    assert len({m.run_dir for m in result.manifests}) == 4


def test_two_watchers_at_once_process_each_manifest_exactly_once(buckets, data_dir, tmp_path):
    count = 4
    for i in range(count):
        buckets.upload_file(str(data_dir / SCL), SOURCE, f"tiles/t{i}.tif")
        put(buckets, f"drop/m{i}/batch-raw.csv", f"tiles/t{i}.tif,1\n")
    watchers = [Watcher(options(tmp_path, runs=f"runs{n}")) for n in range(2)]
    start = threading.Barrier(len(watchers))
    results: dict[int, object] = {}

    def run(n: int) -> None:
        start.wait()
        results[n] = watchers[n].run_pass()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(watchers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)

    taken = [m.manifest for n in results for m in results[n].manifests]
    assert sorted(taken) == sorted(f"s3://{SOURCE}/drop/m{i}/batch-raw.csv" for i in range(count))
    for i in range(count):
        processed = the_one(buckets, rf"drop/m{i}/batch-processed-{{ts}}\.csv")
        assert body(buckets, processed) == f"tiles/t{i}.tif,1\n".encode()
    assert not [k for k in keys(buckets) if "raw.csv" in k or "processing" in k]
    attempts = []
    for ledger in tmp_path.glob("runs*/*/ledger.sqlite"):
        attempts += [
            row[0] for row in sqlite3.connect(ledger).execute("SELECT task_id FROM attempts")
        ]
    assert sorted(attempts) == sorted(f"tiles/t{i}.tif" for i in range(count))


def test_claims_are_won_by_exactly_one_of_many_contenders(s3):
    """The claim primitive alone, hammered: 8 threads race for each of 20 subjects."""
    s3.create_bucket(Bucket=SOURCE)
    location = claims_location(Location.parse(f"s3://{SOURCE}/drop"))
    subjects = [f"s3://{SOURCE}/drop/{i}-raw.csv" for i in range(20)]
    winners: dict[str, list[int]] = {subject: [] for subject in subjects}
    start = threading.Barrier(8)

    def contend(n: int) -> None:
        book = ClaimBook(open_store(location), stale_after_s=3600)
        book.load()
        start.wait()
        for subject in subjects:
            if book.acquire(subject, None) is not None:
                winners[subject].append(n)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(won) == 1 for won in winners.values()), winners
    assert len(keys(s3, prefix=CLAIMS_DIR)) == len(subjects)


def watch_command(runs, *mode: str) -> list[str]:
    """`tilefleet watch` of the source bucket into the destination bucket, one worker."""
    return [sys.executable, "-m", "tilefleet", "watch", f"s3://{SOURCE}", "--dest",
            f"s3://{DEST}", "--runs-dir", str(runs), "--workers", "1", *mode]  # fmt: skip


def test_watcher_killed_midway_is_resumed_without_redoing_rows(buckets, data_dir, tmp_path):
    count = 8
    for i in range(count):
        buckets.upload_file(str(data_dir / DEM), SOURCE, f"dem/d{i}.tif")
    rows = "".join(f"dem/d{i}.tif,1\n" for i in range(count))
    put(buckets, "jobs/dem-raw.csv", rows)
    runs = tmp_path / "runs"
    command = watch_command(runs, "--once")
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while len([k for k in keys(buckets, DEST) if k.endswith(".json")]) < 2:
        assert time.monotonic() < deadline and process.poll() is None, "no progress to kill"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = {k.removesuffix(".json") for k in keys(buckets, DEST) if k.endswith(".json")}
    assert 2 <= len(done_before) < count, "the kill should land midway"
    processing = the_one(buckets, r"jobs/dem-processing-{ts}\.csv")
    assert "jobs/dem-raw.csv" not in keys(buckets)

    fresh = one_pass(tmp_path)  # default --stale-after 2h: the file is not stale yet
    assert fresh.manifests == [] and processing in keys(buckets)

    resumed = one_pass(tmp_path, stale_after_s=0)

    assert resumed.exit_code == 0, body(buckets, resumed.manifests[0].failed_key or "x")
    (result,) = resumed.manifests
    assert result.succeeded + result.skipped == count
    processed = the_one(buckets, r"jobs/dem-processed-{ts}\.csv")
    assert processed == processing.replace("processing", "processed")
    assert body(buckets, processed).decode() == rows
    assert not [k for k in keys(buckets) if "processing" in k or k.startswith(".tilefleet")]
    (ledger,) = runs.glob("*/ledger.sqlite")  # the restarted watcher resumed the same run dir
    db = sqlite3.connect(ledger)
    ran_again = {
        row[0].removesuffix(".tif")
        for row in db.execute("SELECT task_id FROM attempts WHERE session = 2")
    }
    assert ran_again == {f"dem/d{i}" for i in range(count)} - done_before
    converted = [row[0] for row in db.execute("SELECT task_id FROM attempts WHERE ok = 1")]
    assert len(converted) == len(set(converted))
    with rasterio.Env(**gdal_config()):
        assert_same_pixels(str(data_dir / DEM), f"/vsis3/{DEST}/dem/d0.tif")


def test_a_claim_whose_watcher_died_is_taken_over_once_stale(buckets, tmp_path):
    put(buckets, "late/x-raw.csv", "scenes/SCL.tif,1\n")
    dead = ClaimBook(open_store(f"s3://{SOURCE}"), stale_after_s=3600)
    dead.load()
    assert dead.acquire(f"s3://{SOURCE}/late/x-raw.csv", None) is not None  # then it "dies"

    assert one_pass(tmp_path).manifests == []
    assert "late/x-raw.csv" in keys(buckets)

    result = one_pass(tmp_path, stale_after_s=0)
    assert result.exit_code == 0 and len(result.manifests) == 1
    the_one(buckets, r"late/x-processed-{ts}\.csv")
    assert not [k for k in keys(buckets) if k.startswith(".tilefleet") or "raw.csv" in k]


def test_a_manifest_handed_off_before_the_crash_is_not_processed_twice(buckets, tmp_path):
    """The holder wrote the processing copy and died before deleting raw."""
    put(buckets, "late/x-raw.csv", "scenes/SCL.tif,1\n")
    put(buckets, "late/x-processing-20200101T000000Z.csv", "scenes/SCL.tif,1\n")
    dead = ClaimBook(open_store(f"s3://{SOURCE}"), stale_after_s=3600)
    dead.load()
    dead.acquire(
        f"s3://{SOURCE}/late/x-raw.csv",
        None,
        {"processing": "late/x-processing-20200101T000000Z.csv"},
    )

    result = one_pass(tmp_path, stale_after_s=0)

    assert [m.processing_key for m in result.manifests] == [
        "late/x-processing-20200101T000000Z.csv"
    ]
    assert keys(buckets, prefix="late/") == ["late/x-processed-20200101T000000Z.csv"]


def test_every_loops_until_sigterm(buckets, tmp_path):
    command = watch_command(tmp_path / "runs", "--every", "1s")
    log_path = tmp_path / "watch.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log_file, text=True)
    try:
        time.sleep(1.5)
        put(buckets, "later/x-raw.csv", "scenes/SCL.tif,1\n")
        deadline = time.monotonic() + 120
        # Stop between passes: after the pass that finished the manifest has been reported.
        while "watch pass: 1 manifest(s)" not in log_path.read_text():
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    err = log_path.read_text()
    assert process.returncode == 0, err
    assert f"manifest s3://{SOURCE}/later/x-raw.csv: claimed as later/x-processing-" in err
    assert "1 succeeded, 0 already done, 0 failed; processed → later/x-processed-" in err


def test_a_local_folder_is_watched_the_same_way(inputs, tmp_path):
    (inputs / "drop").mkdir()
    (inputs / "drop/one-raw.csv").write_text("s2/SCL.tif,1\nlandsat/RGB.byte.tif,3\n")
    (inputs / "drop/notes.txt").write_text("keep me")
    result = one_pass(tmp_path, source=str(inputs), dest=str(tmp_path / "out"))
    assert result.exit_code == 0
    names = sorted(p.name for p in (inputs / "drop").iterdir())
    assert names[0] == "notes.txt" and re.fullmatch(rf"one-processed-{STAMP}\.csv", names[1])
    assert len(names) == 2
    assert (tmp_path / "out/s2/SCL.tif").is_file() and (tmp_path / "out/landsat/RGB.byte.jpg")
    assert not list((inputs / ".tilefleet-watch").rglob("*.json"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--once", "--every", "15m"], "not both"),
        (["--stale-after", "soon"], "invalid duration"),
        (["--profile", "bogus"], "profile"),
        (["--executor", "nope"], "unknown executor"),
    ],
)
def test_invalid_options_exit_3(s3, tmp_path, args, message):
    result = CliRunner().invoke(
        app, ["watch", f"s3://{SOURCE}", "--dest", str(tmp_path / "o"), *args]
    )
    assert result.exit_code == 3, result.output
    assert message in result.output


def test_missing_local_source_exits_3(tmp_path):
    result = CliRunner().invoke(
        app, ["watch", str(tmp_path / "nowhere"), "--dest", str(tmp_path / "o"), "--once"]
    )
    assert result.exit_code == 3 and "does not exist" in result.output


def test_durations():
    assert [parse_duration(t) for t in ("90", "30s", "15m", "2h", "1h30m", "1d")] == [
        90,
        30,
        900,
        7200,
        5400,
        86400,
    ]
    for bad in ("", "soon", "15x", "-5m"):
        with pytest.raises(JobError):
            parse_duration(bad)


def test_a_plan_executor_finishes_its_manifest_once_the_dag_is_done(inputs, tmp_path, monkeypatch):
    """HTCondor cannot run here: the schedd is stood in for (it takes the DAG and answers
    a cluster id), and the DAG's nodes are run as a pool would run them, from its files."""
    from executors.test_htcondor import node_command, parse_dag, parse_submit
    from tilefleet.engine.executors.htcondor import executor as htcondor

    monkeypatch.setattr(htcondor, "submit_dag", lambda dag: 4242)
    source = tmp_path / "drop"
    source.mkdir()
    rows = "landsat/RGB.byte.tif,3\nlandsat/missing.tif,1\n"
    (source / "batch-raw.csv").write_text(rows)
    watch = WatchOptions(
        source=str(source),
        dest=str(tmp_path / "out"),
        input_root=str(inputs),
        runs_dir=tmp_path / "runs",
        job_options={"executor": "htcondor", "retries": 0},
    )
    launched = Watcher(watch).run_pass()
    (manifest,) = launched.manifests
    assert launched.exit_code == 0 and manifest.pending == 2
    (processing,) = [p.name for p in source.iterdir() if p.suffix == ".csv"]
    assert "processing" in processing  # no processed/failed CSV while the DAG runs

    again = Watcher(watch).run_pass()  # the nodes have not run: nothing is redone
    assert [m.pending for m in again.manifests] == [2]
    assert not (tmp_path / "out").exists()

    folder = manifest.run_dir / "htcondor"
    nodes, _ = parse_dag(folder / "tilefleet.dag")
    task_submit = parse_submit(folder / "task.sub")
    for node in nodes.values():
        command = node_command(task_submit, node["vars"])
        subprocess.run(command, cwd=task_submit["initialdir"], timeout=120, capture_output=True)

    finished = Watcher(watch).run_pass()
    (done,) = finished.manifests
    assert (done.succeeded, done.failed, done.pending) == (1, 1, 0)
    assert finished.exit_code == 1  # one row failed
    names = sorted(p.name for p in source.iterdir() if p.suffix == ".csv")
    assert [n.split("-")[1] for n in names] == ["failed", "processed"]
    processed = (source / names[1]).read_text()
    assert processed == "landsat/RGB.byte.tif,3\n"
    (failed,) = read_failed((source / names[0]).read_bytes())
    assert failed["path"] == "landsat/missing.tif" and "not found" in failed["reason"]
    assert (tmp_path / "out/landsat/RGB.byte.tif").is_file()


def test_callbacks_follow_each_manifest_run(inputs, tmp_path):
    """What --monitor relies on: one callback sees every manifest's run start and end."""
    from tilefleet.engine.callbacks import RunCallback

    class Recorder(RunCallback):
        def __init__(self):
            self.started, self.ended = [], []

        def on_run_start(self, run):
            self.started.append(run.run_dir)

        def on_run_end(self, result):
            self.ended.append(result.exit_code)

    source = tmp_path / "drop"
    (source / "a").mkdir(parents=True)
    (source / "a/one-raw.csv").write_text("landsat/RGB.byte.tif,3\n")
    (source / "two-raw.csv").write_text("s2/SCL.tif,1\n")
    recorder = Recorder()
    watch = WatchOptions(
        source=str(source),
        dest=str(tmp_path / "out"),
        input_root=str(inputs),
        runs_dir=tmp_path / "runs",
        callbacks=(recorder,),
    )
    result = Watcher(watch).run_pass()
    assert result.exit_code == 0 and len(result.manifests) == 2
    assert len(set(recorder.started)) == 2 and recorder.ended == [0, 0]
    assert {m.run_dir for m in result.manifests} == set(recorder.started)
