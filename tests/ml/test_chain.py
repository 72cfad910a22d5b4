"""The example chain end to end: on Dask, and killed mid-way and resumed on Ray (every step
runs on any executor with the same outputs as on local processes), then rerun, which does
nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import rasterio

from ml.conftest import ChainRun, run_chain_file, write_chain

REPO = Path(__file__).resolve().parents[2]


def _kill_during_features(path: Path, features: Path) -> None:
    """Run the chain in its own process and kill it (SIGKILL, no clean-up) once the
    features step has finished a patch."""
    command = [sys.executable, "-m", "tilefleet", "run", str(path), "--workers", "1"]
    process = subprocess.Popen(
        command,
        cwd=path.parent,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(features.glob("*.json")):
            assert process.poll() is None, "the chain ended before it could be killed"
            assert time.monotonic() < deadline, "the features step never started"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_a_killed_chain_resumes_on_ray_with_the_same_outputs_and_a_rerun_does_nothing(
    data_dir, stac_api_server, tmp_path, local_chain, ray_started
):
    path = write_chain(data_dir, stac_api_server.url, tmp_path)
    out = tmp_path / "out"
    _kill_during_features(path, out / "features")
    assert not (out / "stac" / "collection.json").exists()
    done_before = {p: p.stat().st_mtime_ns for p in (out / "features").glob("*.json")}

    resumed = run_chain_file(path, executor="ray", workers=2)
    assert resumed.exit_code == 0, resumed.summary()
    steps = {step.name: step.result.report for step in resumed.steps}
    assert steps["data"]["attempts"] == 8 and steps["data"]["sessions"] == 2  # none redone
    # The patches whose features were done before the kill are not redone either.
    assert {p: p.stat().st_mtime_ns for p in done_before} == done_before
    # A patch whose marker was written just before the kill, with its success not yet in
    # the ledger, is found done in the destination: skipped, not run again.
    features = steps["features"]
    assert features["succeeded"] + features["skipped"] == 8 and features["failed"] == 0
    attempts = {name: report["attempts"] for name, report in steps.items()}

    assert_same_outputs(out, local_chain)  # Ray's outputs are the local run's

    outputs = sorted(p for p in out.rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in outputs}
    again = run_chain_file(path)
    assert again.exit_code == 0
    assert {step.name: step.result.report["attempts"] for step in again.steps} == attempts
    assert sorted(p for p in out.rglob("*") if p.is_file()) == outputs
    assert {p: p.stat().st_mtime_ns for p in outputs} == stamps


def test_predict_and_export_on_dask_give_the_local_map(local_chain, tmp_path):
    import tilefleet

    common = {"executor": "dask", "workers": 1, "progress": False}
    tiles = local_chain.variables["patches"]
    predicted = tilefleet.run(
        "predict",
        run_dir=tmp_path / "runs/predict",
        tiles=tiles,
        resolution=100,
        features=str(local_chain["features"]),
        model=str(local_chain["model"]),
        dest=str(tmp_path / "predictions"),
        **common,
    )
    assert predicted.exit_code == 0 and predicted.report["executor"]["name"] == "dask"
    assert predicted.report["results"]["model_loads"] == 1  # one worker: loaded once
    exported = tilefleet.run(
        "export",
        run_dir=tmp_path / "runs/export",
        tiles=tiles,
        input=str(tmp_path / "predictions"),
        dest=str(tmp_path / "maps"),
        **common,
    )
    assert exported.exit_code == 0
    with (
        rasterio.open(tmp_path / "maps" / "UTM_32629.tif") as a,
        rasterio.open(local_chain["maps"] / "UTM_32629.tif") as b,
    ):
        np.testing.assert_array_equal(a.read(), b.read())


def test_the_example_chain_file_is_a_valid_chain_of_the_nine_recipes():
    from tilefleet.chain import load_chain

    chain = load_chain(REPO / "examples" / "ml-chain" / "chain.yaml")
    recipes = [step.job.recipe for step in chain.steps]
    assert recipes == [
        "patch-data",
        "features",
        "reference",
        "sample",
        "merge-samples",
        "train",
        "predict",
        "export",
        "publish",
    ]
    example = REPO / "examples" / "ml-chain"
    (data,) = [s.job for s in chain.steps if s.name == "data"]
    assert Path(data.params.catalog) == example / "scene.json"
    assert chain.run_dir == example / "runs" / "ml-chain"


def test_the_whole_chain_on_dask_writes_what_local_processes_write(
    data_dir, stac_api_server, tmp_path, local_chain
):
    path = write_chain(data_dir, stac_api_server.url, tmp_path)
    result = run_chain_file(path, executor="dask", workers=2)
    assert result.exit_code == 0, result.summary()
    assert [step.result.report["executor"]["name"] for step in result.steps] == ["dask"] * 9
    assert_same_outputs(tmp_path / "out", local_chain)


def assert_same_outputs(out: Path, local_chain: ChainRun) -> None:
    """The zone map, the merged tables and the model equal those of the local run."""
    with (
        rasterio.open(out / "maps" / "UTM_32629.tif") as a,
        rasterio.open(local_chain["maps"] / "UTM_32629.tif") as b,
    ):
        np.testing.assert_array_equal(a.read(), b.read())
    keys = [(k, "ascending") for k in ("tile", "row", "col")]
    for table in ("train", "validation"):
        mine = ds.dataset(str(out / "merged" / table)).to_table().sort_by(keys)
        theirs = ds.dataset(str(local_chain["merged"] / table)).to_table().sort_by(keys)
        assert mine.equals(theirs)
    model = (out / "model" / "model.txt").read_text().split("parameters:")[0]
    assert model == (local_chain["model"] / "model.txt").read_text().split("parameters:")[0]
