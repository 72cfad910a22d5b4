"""Limits on one task: a timeout that stops an attempt that hangs (a FIFO in the input root
blocks its reader forever) and a memory guard that refuses a task before it reads a pixel."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest
import rasterio
from affine import Affine

from helpers import read_csv, run_cogify
from tilefleet.engine.job import RunOptions
from tilefleet.recipes.cogify import CogifyRecipe
from tilefleet.task import Task


def attempts_of(run_dir, task_id: str) -> list[tuple[int, str | None]]:
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    try:
        rows = db.execute(
            "SELECT ok, error FROM attempts WHERE task_id = ? ORDER BY rowid", (task_id,)
        ).fetchall()
    finally:
        db.close()
    return rows


@pytest.mark.slow
def test_an_attempt_blocked_on_a_fifo_is_stopped_and_retried_and_the_others_go_on(inputs, tmp_path):
    os.mkfifo(inputs / "landsat" / "stuck.tif")  # opening it for reading blocks for ever
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\nlandsat/stuck.tif\nlandsat/RGB.byte.tif\ndem/glo90_polar.tif\n")
    result = run_cogify(
        manifest, inputs, tmp_path / "out", tmp_path / "run", task_timeout=3, retries=1
    )

    assert result.exit_code == 1
    assert (result.report["succeeded"], result.report["failed"]) == (2, 1)
    tried = attempts_of(tmp_path / "run", "landsat/stuck.tif")
    assert [ok for ok, _ in tried] == [0, 0]  # stopped, retried once, stopped again
    assert all(error == "timed out after 3 s" for _, error in tried)
    (failed,) = read_csv(tmp_path / "run/failed.csv")
    assert failed["path"] == "landsat/stuck.tif" and failed["reason"] == "timed out after 3 s"
    # The good rows each ran once and wrote valid outputs.
    for key in ("landsat/RGB.byte", "dem/glo90_polar"):
        assert [ok for ok, _ in attempts_of(tmp_path / "run", f"{key}.tif")] == [1]
        assert (tmp_path / "out" / f"{key}.json").is_file()
    assert not (tmp_path / "out/landsat/stuck.json").exists()


def test_a_recipe_sets_the_timeout_unless_the_job_does():
    assert RunOptions().task_timeout is None  # the recipe's default applies
    assert CogifyRecipe.default_task_timeout_s >= 600
    with pytest.raises(ValueError):
        RunOptions(task_timeout=0)


def sparse_raster(path, size: int = 40_000):
    """A 40000 × 40000 GeoTIFF of a few KB: its blocks are never written."""
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32631",
        "transform": Affine(10, 0, 500_000, 0, -10, 5_000_000),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "sparse_ok": True,
    }
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.ones((1, 512, 512), "uint8"), window=((0, 512), (0, 512)))
    return path


def test_a_task_over_the_memory_limit_fails_alone_before_reading_pixels(inputs, tmp_path):
    sparse_raster(inputs / "huge.tif")
    assert (inputs / "huge.tif").stat().st_size < 200_000
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\nhuge.tif\nlandsat/RGB.byte.tif\n")
    result = run_cogify(manifest, inputs, tmp_path / "out", tmp_path / "run", max_task_memory=1024)

    assert result.exit_code == 1
    assert (result.report["succeeded"], result.report["failed"]) == (1, 1)
    (failed,) = read_csv(tmp_path / "run/failed.csv")
    assert failed["path"] == "huge.tif"
    assert "more than max_task_memory (1,024 MB)" in failed["reason"]
    assert "needs about 3,0" in failed["reason"]  # 40000² preview values and masks
    [(ok, _)] = attempts_of(tmp_path / "run", "huge.tif")  # permanent: not retried
    assert ok == 0
    assert not list((tmp_path / "out").glob("huge.*"))
    assert (tmp_path / "out/landsat/RGB.byte.json").is_file()


def test_the_estimate_follows_the_preview_size(inputs):
    sparse_raster(inputs / "huge.tif")
    params = {"input_root": str(inputs), "key": "huge.tif", "blocksize": 512}
    full = Task("t", "cogify", {**params, "preview_bands": None, "preview_max_size": None}, "", "")
    capped = Task(
        "t", "cogify", {**params, "preview_bands": None, "preview_max_size": 1024}, "", ""
    )
    missing = Task("t", "cogify", {**full.params, "key": "nothing.tif"}, "", "")
    recipe = CogifyRecipe()
    assert recipe.task_memory(full) == 40_000**2 * 2 + 512 * 40_000
    assert recipe.task_memory(capped) == 1024**2 * 2 + 512 * 40_000
    assert recipe.task_memory(missing) is None  # the run itself reports a missing input
