"""The `tilefleet` command as users run it: job files, exit statuses, reports, the demo,
and a run killed with SIGKILL then resumed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import pytest
import yaml
from typer.testing import CliRunner

from conftest import no_partials
from helpers import assert_same_pixels, read_csv
from tilefleet.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def manifest(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("landsat/RGB.byte.tif,3\ns2/SCL.tif,1\nmissing.tif,1\n")
    return path


def test_job_file_does_what_the_equivalent_command_does(inputs, manifest, tmp_path):
    by_command = invoke(
        "cogify",
        manifest,
        "--input-root",
        inputs,
        "--dest",
        tmp_path / "a",
        "--run-dir",
        tmp_path / "run_a",
        "--workers",
        2,
        "--profile",
        "zstd",
        "--preview-max-size",
        200,
    )
    job = {
        "recipe": "cogify",
        "manifest": "manifest.csv",
        "input_root": str(inputs),
        "dest": "b",
        "run_dir": "run_b",
        "workers": 2,
        "profile": "zstd",
        "preview_max_size": 200,
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    by_file = invoke("run", tmp_path / "job.yaml")
    assert by_command.exit_code == by_file.exit_code == 1, by_file.output
    statuses = [(r["id"], r["status"], r["error"]) for r in read_csv(tmp_path / "run_a/tasks.csv")]
    assert statuses == [
        (r["id"], r["status"], r["error"]) for r in read_csv(tmp_path / "run_b/tasks.csv")
    ]
    for key in ("landsat/RGB.byte.tif", "s2/SCL.tif"):
        assert_same_pixels(str(tmp_path / "a" / key), str(tmp_path / "b" / key))
    for run in ("run_a", "run_b"):
        recorded = json.loads((tmp_path / run / "report.json").read_text())["job"]
        assert recorded["profile"] == "zstd" and recorded["preview_max_size"] == 200
    assert "succeeded       2" in by_file.output and "FAILED" not in by_file.stdout


def test_cli_options_override_job_file_keys(inputs, manifest, tmp_path):
    job = {
        "recipe": "cogify",
        "manifest": str(manifest),
        "input_root": str(inputs),
        "dest": str(tmp_path / "out"),
        "limit": 1,
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    result = invoke("plan", tmp_path / "job.yaml", "--limit", 2, "--run-dir", tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert "2 task(s) to run" in result.output and "dry run" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cogify", "nope.csv", "--input-root", ".", "--dest", "out"], "No such file"),
        (["cogify", "m.csv", "--input-root", ".", "--dest", "out", "--profile", "gif"], "profile"),
        (
            ["cogify", "m.csv", "--input-root", ".", "--dest", "out", "--executor", "pigeon"],
            "unknown executor",
        ),
        (["run", "nope.yaml"], "cannot read job file"),
        (["report", "not-a-run"], "not a tilefleet run directory"),
    ],
)
def test_invalid_jobs_exit_3_with_one_clear_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text("a.tif,1\n")
    result = invoke(*args)
    assert result.exit_code == 3, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_job_file_key_is_named(tmp_path):
    (tmp_path / "job.yaml").write_text(
        "recipe: cogify\nmanifest: m.csv\ninput_root: .\ndest: out\nprofle: zstd\n"
    )
    result = invoke("run", tmp_path / "job.yaml")
    assert result.exit_code == 3 and "profle: unknown key" in result.output


def test_report_rebuilds_reports_from_the_ledger(inputs, manifest, tmp_path):
    invoke(
        "cogify",
        manifest,
        "--input-root",
        inputs,
        "--dest",
        tmp_path / "out",
        "--run-dir",
        tmp_path / "run",
    )
    for name in ("report.txt", "report.json", "timeline.png"):
        (tmp_path / "run" / name).unlink()
    result = invoke("report", tmp_path / "run")
    assert result.exit_code == 0
    assert "succeeded       2" in result.output and "missing.tif" in result.output
    assert (tmp_path / "run/timeline.png").exists()


def test_schema_describes_every_option():
    schema = json.loads(invoke("schema").output)
    (cogify,) = [
        alternative["properties"]
        for alternative in schema["oneOf"]
        if alternative["properties"]["recipe"].get("const") == "cogify"
    ]
    for key in (
        "manifest",
        "input_root",
        "dest",
        "profile",
        "preview_bands",
        "run_dir",
        "executor",
        "workers",
        "retries",
        "overwrite",
        "dry_run",
        "yes",
        "only",
        "limit",
    ):
        assert key in cogify, key


def test_demo_runs_the_sample_workload(tmp_path):
    result = invoke("demo", "--out", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    assert "succeeded       6  (100.0 %)" in result.output
    cogs = sorted((tmp_path / "demo/output").rglob("*.tif"))
    assert len(cogs) == 6
    again = invoke("demo", "--out", tmp_path / "demo")
    assert again.exit_code == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/precious.txt").write_text("keep me")
    refused = invoke("demo", "--out", tmp_path / "mine")
    assert refused.exit_code == 3 and (tmp_path / "mine/precious.txt").exists()


DEM = "copernicus_dem/Copernicus_DSM_COG_10_N00_00_E006_00_DEM.tif"


def dem_cogify_command(data_dir, tmp_path, count: int) -> list[str]:
    """A `tilefleet cogify` command over ``count`` hard links to a real 3600² DEM (one worker), into
    ``tmp_path/out`` with run dir ``tmp_path/run``: slow enough to be interrupted midway."""
    root = tmp_path / "in"
    root.mkdir()
    for i in range(count):
        os.link(data_dir / DEM, root / f"dem_{i:02d}.tif")  # a symlink leads out of the root
    manifest = tmp_path / "m.csv"
    manifest.write_text("".join(f"dem_{i:02d}.tif,1\n" for i in range(count)))
    return [sys.executable, "-m", "tilefleet", "cogify", str(manifest), "--input-root",
            str(root), "--dest", str(tmp_path / "out"), "--run-dir", str(tmp_path / "run"),
            "--workers", "1"]  # fmt: skip


def test_sigkill_midway_then_resume_finishes_only_the_rest(data_dir, tmp_path):
    """Kill the whole process group (driver and workers) with SIGKILL while tasks run; the
    rerun with the same run dir does only what is missing and leaves no temporary files."""
    count = 10
    command = dem_cogify_command(data_dir, tmp_path, count)
    dest, run_dir = tmp_path / "out", tmp_path / "run"
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while len(list(dest.rglob("*.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = {p.stem for p in dest.rglob("*.json")}
    assert 2 <= len(done_before) < count, "the kill should land midway"

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    ran_again = {
        row[0].removesuffix(".tif")
        for row in db.execute("SELECT task_id FROM attempts WHERE session = 2")
    }
    assert ran_again == {f"dem_{i:02d}" for i in range(count)} - done_before
    assert len(list(dest.glob("*.tif"))) == count
    assert no_partials(dest) == []
    report = json.loads((run_dir / "report.json").read_text())
    # Tasks that finished just before the kill, unrecorded, are found done in the destination.
    assert report["succeeded"] + report["skipped"] == count and report["sessions"] == 2
    assert report["failed"] == 0
    assert_same_pixels(str(data_dir / DEM), str(dest / "dem_00.tif"))


def _succeeded_in_ledger(run_dir) -> int:
    try:
        db = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True)
        with closing(db):
            return db.execute("SELECT COUNT(*) FROM tasks WHERE status = 'succeeded'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_sigterm_stops_cleanly_with_reports(data_dir, tmp_path):
    command = dem_cogify_command(data_dir, tmp_path, 8)
    run_dir = tmp_path / "run"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _succeeded_in_ledger(run_dir) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    report = json.loads((run_dir / "report.json").read_text())
    assert report["interrupted"] and report["succeeded"] >= 1 and report["pending"] >= 1
    assert "rerun with --run-dir" in err
    assert no_partials(tmp_path / "out") == []


def test_every_cli_option_is_a_job_file_key_and_the_reverse():
    import typer.main

    from tilefleet.jobs import job_model

    command = typer.main.get_command(app).get_command(None, "cogify")
    # CLI-only: how this invocation logs and whether it serves the live monitor page.
    cli_only = {"verbose", "monitor", "monitor_port", "monitor_host"}
    cli_names = {param.name for param in command.params} - cli_only
    job_keys = set(job_model("cogify").model_fields) - {"recipe"}
    assert cli_names == job_keys


@pytest.mark.parametrize(
    "args",
    [
        ["cogify", "m.csv", "--input-root", ".", "--dest", "out", "--nope"],
        ["cogify", "--input-root", ".", "--dest", "out"],  # no MANIFEST
        ["cogify", "m.csv", "--input-root", ".", "--dest", "out", "--retries", "many"],
        ["cogify", "m.csv", "--input-root", ".", "--dest", "out", "--profile", "gif"],
        ["tiles", "utm", "--sise", "10"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_3_not_2(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text("a.tif,1\n")
    result = invoke(*args)
    assert result.exit_code == 3, result.output
    assert not (tmp_path / "runs").exists()


def test_help_shows_every_default_and_every_executor():
    wide = runner.invoke(app, ["cogify", "--help"], env={"COLUMNS": "400"})
    text = " ".join(wide.output.split())
    for default in (
        "[default: deflate]",
        "[default: 512]",
        "[default: 75]",
        "[default: 3]",
        "[default: 1.0]",
        "[default: CPU count]",
        "[default: local]",
        "[default: 1 or 1,2,3]",
    ):
        assert default in text, default
    assert "Execution engine: dask, htcondor, lithops, local, ray, routed" in text
    assert "local 2" in text and "dask 32" in text and "lithops 16" in text


def test_a_setting_of_another_executor_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text("a.tif,1\n")
    result = invoke(
        "cogify", "m.csv", "--input-root", ".", "--dest", "out", "--scheduler", "tcp://x:8786"
    )
    assert result.exit_code == 3
    assert "executor 'local': does not take: scheduler" in result.output


def test_a_repeated_list_option_keeps_every_value(inputs, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("landsat/RGB.byte.tif,3\n")
    result = invoke(
        "cogify", manifest, "--input-root", inputs, "--dest", tmp_path / "out",
        "--run-dir", tmp_path / "run", "--preview-bands", "3", "--preview-bands", "2",
        "--preview-bands", "1", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    from tilefleet.jobs import load_job

    (tmp_path / "job.yaml").write_text(
        f"recipe: cogify\nmanifest: {manifest}\ninput_root: {inputs}\ndest: out\n"
    )
    job = load_job(tmp_path / "job.yaml", {"preview_bands": ["3", "2,1"]})
    assert job.params.preview_bands == [3, 2, 1]


def test_a_bad_option_value_fails_before_any_row_runs_or_manifest_is_claimed(tmp_path):
    source = tmp_path / "bucket"
    source.mkdir()
    (source / "batch-raw.csv").write_text("a.tif,1\n")
    ran = invoke(
        "cogify", source / "batch-raw.csv", "--input-root", source, "--dest", tmp_path / "out",
        "--run-dir", tmp_path / "run", "--preview-bands", "4,3",
    )  # fmt: skip
    assert ran.exit_code == 3 and "give 1 or 3 band numbers from 1 up, got 4,3" in ran.output
    assert not (tmp_path / "run").exists()
    watched = invoke(
        "watch", source, "--dest", tmp_path / "out", "--runs-dir", tmp_path / "runs",
        "--preview-bands", "4,3", "--once",
    )  # fmt: skip
    assert watched.exit_code == 3 and "give 1 or 3 band numbers" in watched.output
    assert sorted(p.name for p in source.iterdir()) == ["batch-raw.csv"]  # left alone


def test_relative_paths_mean_the_same_files_wherever_the_job_runs(
    inputs, manifest, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    relative = [manifest, "--input-root", "input", "--dest", "out"]
    first = invoke("cogify", *relative, "--run-dir", "run")
    assert first.exit_code == 1, first.output  # missing.tif
    job = json.loads((tmp_path / "run/report.json").read_text())["job"]
    assert job["input_root"] == str(inputs) and job["dest"] == str(tmp_path / "out")
    assert job["manifest"] == str(manifest) and job["run_dir"] == str(tmp_path / "run")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    # The same words elsewhere name other files: not the job of that run dir.
    moved = invoke("cogify", *relative, "--run-dir", tmp_path / "run")
    assert moved.exit_code == 3 and "holds a different job" in moved.output
    # The same files spelt absolutely are the same job: resumed, nothing done twice.
    absolute = ["--input-root", inputs, "--dest", tmp_path / "out", "--run-dir", tmp_path / "run"]
    again = invoke("cogify", manifest, *absolute)
    assert again.exit_code == 1 and "1 task(s) to run, 0 already done" in again.output
    assert "succeeded       2" in again.output  # the manifest's two good rows, done once


def test_quiet_prints_no_summary_and_still_writes_and_exits_with_the_status(
    inputs, manifest, tmp_path
):
    common = ["cogify", manifest, "--input-root", inputs, "--workers", 1]
    loud = invoke(*common, "--dest", tmp_path / "a", "--run-dir", tmp_path / "ra")
    quiet = invoke("-q", *common, "--dest", tmp_path / "b", "--run-dir", tmp_path / "rb")
    assert loud.exit_code == quiet.exit_code == 1  # missing.tif fails: partial
    assert "succeeded" in loud.stdout and quiet.stdout == ""
    assert (tmp_path / "b/landsat/RGB.byte.tif").is_file()
    assert (tmp_path / "rb/report.json").is_file()


def test_shell_completion_is_on():
    env = {**os.environ, "_TILEFLEET_COMPLETE": "complete_bash"}
    env.update(COMP_WORDS="tilefleet mos", COMP_CWORD="1")
    program = os.path.join(os.path.dirname(sys.executable), "tilefleet")  # the installed command
    done = subprocess.run([program], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.split() == ["mosaic"], done.stderr
    assert "--install-completion" in invoke("--help").stdout


def test_old_option_spellings_are_aliases_of_the_new(data_dir, tmp_path):
    """cells: --store is --dest, --quality is --quality-flag; catalog: -o/--output is
    --dest, --version is --product-version. Both spellings, the same outputs."""
    import zarr

    granule = data_dir / "icesat2_atl06/ATL06_20181013235645_02340114_209_01.h5"
    flag = "land_ice_segments/atl06_quality_summary"
    counts = []
    for out, quality, name in (
        ("--store", "--quality", "old"),
        ("--dest", "--quality-flag", "new"),
    ):
        store = tmp_path / f"{name}.zarr"
        result = invoke(
            "cells",
            granule,
            out,
            store,
            quality,
            flag,
            "--run-dir",
            tmp_path / name,
            "--workers",
            1,
        )
        assert result.exit_code == 0, result.output
        counts.append(int(zarr.open_group(str(store), path="12")["count"][:].sum()))
    assert counts[0] == counts[1] == 81
    catalogs = []
    for out, version in (("-o", "--version"), ("--dest", "--product-version")):
        path = tmp_path / f"catalog{out}.json"
        result = invoke("cells", "catalog", granule, out, path, version, "006")
        assert result.exit_code == 0, result.output
        catalog = json.loads(path.read_text())
        del catalog["metadata"]["created"]
        catalogs.append(catalog)
    assert catalogs[0] == catalogs[1] and catalogs[0]
    assert invoke("demo", "--dest", tmp_path / "demo", "--workers", 1).exit_code == 0
