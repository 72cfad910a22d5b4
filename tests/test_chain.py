"""Chains: job files of steps, each an ordinary run in its own run dir, run in order.

The steps here are real recipes on real data: ``tile-index`` over a UTM area (one STAC item
per patch) and ``cogify`` of real rasters, sharing variables and named folders.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import tilefleet
from tilefleet.chain import load_chain
from tilefleet.cli import app
from tilefleet.errors import ExitCode, JobError

RASTERS = ["landsat/RGB.byte.tif", "landsat/L7_ETMs.tif", "dem/glo30.tif", "s2/B02.tif"]


def write_chain(folder: Path, inputs: Path, manifest_rows=RASTERS, **top) -> Path:
    (folder / "m.csv").write_text("path\n" + "\n".join(manifest_rows) + "\n")
    chain = {
        "variables": {
            "zone": "utm",
            "patches": {"grid": "${zone}", "bbox": [6.2, 0.1, 6.5, 0.4], "size": 10000},
        },
        "folders": {"index": "out/index-${zone}", "cogs": "out/cogs"},
        "workers": 2,
        "run_dir": "runs",
        **top,
        "steps": [
            {
                "name": "index",
                "recipe": "tile-index",
                "tiles": "${patches}",
                "dest": "${folders.index}",
            },
            {
                "name": "cogs",
                "recipe": "cogify",
                "manifest": "m.csv",
                "input_root": str(inputs),
                "dest": "${folders.cogs}",
                "retries": 0,
            },
        ],
    }
    path = folder / "chain.yaml"
    path.write_text(yaml.safe_dump(chain, sort_keys=False))
    return path


def counts(run_dir: Path) -> dict[str, int]:
    report = json.loads((run_dir / "report.json").read_text())
    return {k: report[k] for k in ("succeeded", "skipped", "failed")}


def attempts(run_dir: Path) -> int:
    """Attempts made in a run dir, over all its sessions."""
    return json.loads((run_dir / "report.json").read_text())["attempts"]


def test_a_chain_runs_its_steps_in_order_and_a_rerun_does_nothing(inputs, tmp_path):
    chain_file = write_chain(tmp_path, inputs)
    result = CliRunner().invoke(app, ["run", str(chain_file)])
    assert result.exit_code == 0, result.output
    runs = tmp_path / "runs"
    index = counts(runs / "index")
    assert index["succeeded"] > 4 and index["failed"] == 0
    assert counts(runs / "cogs") == {"succeeded": 4, "skipped": 0, "failed": 0}
    # Variables and folders: the folder name took the variable, relative to the chain file.
    items = sorted((tmp_path / "out/index-utm").glob("*.json"))
    items.remove(tmp_path / "out/index-utm/collection.json")  # the step's collection
    assert len(items) == index["succeeded"]
    assert json.loads(items[0].read_text())["properties"]["tilefleet:grid"] == "utm"
    assert (tmp_path / "out/cogs/dem/glo30.tif").exists()
    record = json.loads((runs / "chain.json").read_text())
    assert [(s["name"], s["state"], s["exit_code"]) for s in record["steps"]] == [
        ("index", "ran", 0),
        ("cogs", "ran", 0),
    ]
    assert "step 1 index (tile-index)" in result.output
    made = {name: attempts(runs / name) for name in ("index", "cogs")}

    again = tilefleet.run(chain_file, progress=False)
    assert again.exit_code == ExitCode.OK and len(again.steps) == 2
    for step in again.steps:  # a second session of each step, which attempted nothing
        assert step.result.report["sessions"] == 2
        assert attempts(step.run_dir) == made[step.name]


def test_from_and_to_choose_the_steps(inputs, tmp_path):
    chain_file = write_chain(tmp_path, inputs)
    only_cogs = tilefleet.run(chain_file, from_step="cogs", progress=False)
    assert [s.name for s in only_cogs.steps] == ["cogs"]
    assert not (tmp_path / "runs/index").exists()
    first = tilefleet.run(chain_file, to_step="1", progress=False)
    assert [s.name for s in first.steps] == ["index"]
    with pytest.raises(JobError, match="--from nope: no such step; the chain has index, cogs"):
        tilefleet.run(chain_file, from_step="nope", progress=False)
    with pytest.raises(JobError, match="for chains"):
        tilefleet.run("tile-index", from_step="x", progress=False)


def test_plan_shows_every_step_and_runs_nothing(inputs, tmp_path):
    chain_file = write_chain(tmp_path, inputs)
    result = CliRunner().invoke(app, ["plan", str(chain_file)])
    assert result.exit_code == 0, result.output
    assert "step 1 index (tile-index):" in result.output
    assert "step 2 cogs (cogify):" in result.output
    assert "plan: 4 task(s) for recipe cogify" in result.output
    assert not (tmp_path / "out").exists()


def test_a_failed_step_stops_the_chain_and_says_why(inputs, tmp_path):
    chain_file = write_chain(tmp_path, inputs)
    data = yaml.safe_load(chain_file.read_text())
    data["steps"].reverse()  # cogify first, with a row whose file does not exist
    chain_file.write_text(yaml.safe_dump(data, sort_keys=False))
    (tmp_path / "m.csv").write_text("path\ndem/glo30.tif\nmissing/nothing.tif\n")
    result = CliRunner().invoke(app, ["run", str(chain_file)])
    assert result.exit_code == ExitCode.PARTIAL, result.output
    assert "index (tile-index): not run: step cogs did not finish every task" in result.output
    record = json.loads((tmp_path / "runs/chain.json").read_text())
    assert record["steps"][1]["state"] == "not run"
    assert not (tmp_path / "runs/index").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"steps": [{"recipe": "tile-index", "tiles": "${nope}", "dest": "x"}]},
            "step tile-index.tiles: ${nope} names no variable, folder or environment variable",
        ),
        (
            {"steps": [{"recipe": "tile-index", "tiles": "${patches}", "dest": "${folders.x}"}]},
            "step tile-index.dest: ${folders.x}: no such folder (folders: index, cogs)",
        ),
        (
            {"steps": [{"recipe": "tile-index", "tiles": "${patches}", "dest": "o", "bogus": 1}]},
            "step tile-index: invalid job: bogus: unknown key",
        ),
        ({"tiles": {"grid": "utm"}}, "chain: unknown key(s) tiles"),
        ({"steps": []}, "steps: a chain needs a list of steps"),
        (
            {"steps": [{"recipe": "tile-index", "tiles": "${patches}", "dest": "o"}] * 2},
            "steps: step names must be unique; repeated: tile-index",
        ),
    ],
)
def test_an_invalid_chain_is_one_line_before_any_step_runs(inputs, tmp_path, change, message):
    chain_file = write_chain(tmp_path, inputs)
    data = {**yaml.safe_load(chain_file.read_text()), **change}
    chain_file.write_text(yaml.safe_dump(data, sort_keys=False))
    result = CliRunner().invoke(app, ["run", str(chain_file)])
    assert result.exit_code == ExitCode.INVALID
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {message}")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


def test_overrides_apply_to_every_step_and_run_dirs_nest(inputs, tmp_path):
    chain = load_chain(write_chain(tmp_path, inputs), {"workers": 1, "run_dir": None})
    assert [step.job.workers for step in chain.steps] == [1, 1]
    assert [step.job.run_dir for step in chain.steps] == [
        tmp_path / "runs/index",
        tmp_path / "runs/cogs",
    ]
    assert chain.steps[1].job.retries == 0 and chain.steps[0].job.retries == 3
    with pytest.raises(JobError, match="is a chain of steps"):
        tilefleet.load_job(tmp_path / "chain.yaml")


def test_a_killed_chain_resumes_where_it_stopped(inputs, tmp_path):
    chain_file = write_chain(tmp_path, inputs)
    command = [sys.executable, "-m", "tilefleet", "run", str(chain_file)]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    # Killed once the first step is done and the second has started.
    while not (tmp_path / "runs/cogs/ledger.sqlite").exists() and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert counts(tmp_path / "runs/index")["failed"] == 0
    index_attempts = attempts(tmp_path / "runs/index")
    index_items = {p: p.stat().st_mtime_ns for p in (tmp_path / "out/index-utm").glob("*.json")}

    resumed = tilefleet.run(chain_file, progress=False)
    assert resumed.exit_code == ExitCode.OK
    assert counts(tmp_path / "runs/cogs")["failed"] == 0
    assert len(list((tmp_path / "out/cogs").rglob("*.json"))) == 4 + 1  # + collection.json
    # Nothing of the first step was done again.
    assert attempts(tmp_path / "runs/index") == index_attempts
    assert {p: p.stat().st_mtime_ns for p in index_items} == index_items
