"""What a worker and the ``tilefleet`` command import before their first task: a local
worker defers boto3 until a task uses it (and then gets the real one), and a recipe's
command imports that recipe's modules and no other's."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import rasterio

import tilefleet
from tilefleet.recipes import get_recipe

RGB = "non_cog_multiband/RGB.byte.tif"


def test_a_worker_executes_boto3_only_when_a_task_reads_s3(s3, data_dir, tmp_path):
    s3.create_bucket(Bucket="tf-probe")
    s3.upload_file(str(data_dir / RGB), "tf-probe", "RGB.byte.tif")
    result = tilefleet.run(
        "start_probe_recipe:StartProbeRecipe",
        raster="s3://tf-probe/RGB.byte.tif",
        dest=str(tmp_path / "out"),
        run_dir=str(tmp_path / "run"),
        workers=1,
        progress=False,
    )
    assert result.ok, result.failed
    seen = json.loads((tmp_path / "out/probe.json").read_text())
    # rasterio (imported with cogify's modules) imported boto3, which ran no code yet ...
    assert seen["boto3_imported_at_start"] and not seen["boto3_executed_at_start"]
    # ... until the task read from S3: through a real boto3 session, the right pixels.
    assert seen["session"] == "AWSSession" and seen["boto3_executed_at_end"]
    assert seen["boto3_session"] == "boto3.session.Session"
    with rasterio.open(data_dir / RGB) as src:
        assert seen["checksums"] == [src.checksum(band) for band in src.indexes]


def _cogify_task(data_dir, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path,num_bands\n{RGB},3\n")
    recipe = get_recipe("cogify")
    params = recipe.Params(
        manifest=str(manifest), input_root=str(data_dir), dest=str(tmp_path / "outputs")
    )
    return next(iter(recipe.plan(params)))


def _tile_index_task(data_dir, tmp_path):
    recipe = get_recipe("tile-index")
    tiledb = str(data_dir / "ttc_tiledb/tiledb.parquet")
    tiles = {"grid": "ttc", "bbox": [-52.6, -13.2, -52.5, -13.1], "tiledb": tiledb, "year": 2023}
    params = recipe.Params(tiles=tiles, dest=str(tmp_path / "outputs"), resolution=0.0001)
    return next(iter(recipe.plan(params)))


@pytest.mark.parametrize("planned", [_cogify_task, _tile_index_task])
def test_a_worker_runs_its_task_without_pydantic(planned, data_dir, tmp_path):
    # The parameters models (pydantic's) are the driver's: a worker is handed tasks whose
    # parameters were validated already.
    task = planned(data_dir, tmp_path)
    result = tilefleet.run(
        "start_probe_recipe:StartProbeRecipe",
        raster=str(data_dir / RGB),
        dest=str(tmp_path / "out"),
        task=dataclasses.asdict(task),
        run_dir=str(tmp_path / "run"),
        workers=1,
        progress=False,
    )
    assert result.ok, result.failed
    seen = json.loads((tmp_path / "out/probe.json").read_text())
    assert not seen["pydantic_at_start"] and not seen["pydantic_after_task"]
    written = json.loads((tmp_path / "outputs" / task.marker).read_text())  # its STAC item
    assert written["type"] == "Feature" and seen["metrics"]["bytes_out"] > 0
    if planned is _cogify_task:
        with rasterio.open(tmp_path / "outputs" / RGB) as cog, rasterio.open(data_dir / RGB) as src:
            assert cog.overviews(1)
            assert [cog.checksum(b) for b in cog.indexes] == [src.checksum(b) for b in src.indexes]
    else:
        assert written["properties"]["proj:shape"]


DEFERRING = """
import sys
from tilefleet.engine.worker_process import defer_imports
if sys.argv[1] == "defer":
    defer_imports(("boto3", "tilefleet_no_such_module"))
import rasterio.session
executed = "botocore.session" in sys.modules
try:
    import tilefleet_no_such_module
    missing = "found"
except ImportError:
    missing = "ImportError"
session = rasterio.session.Session.from_path("s3://bucket/key.tif")
import boto3.session
print(executed, missing, type(session).__name__, boto3.Session is boto3.session.Session)
"""


@pytest.mark.parametrize(("mode", "executed"), [("defer", False), ("plain", True)])
def test_deferred_modules_run_on_first_use_and_missing_ones_stay_missing(mode, executed):
    found = subprocess.run(
        [sys.executable, "-c", DEFERRING, mode], capture_output=True, text=True, check=True
    )
    assert found.stdout.split() == [str(executed), "ImportError", "AWSSession", "True"]


IMPORTS_OF = """
import json, sys
from tilefleet.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
modules = [m for m in sys.modules if m.startswith(("tilefleet.recipes", "tilefleet.sources"))]
print(json.dumps(sorted(modules)), file=sys.stderr)
"""


def _command(*args: str) -> tuple[str, set[str]]:
    """The output of ``tilefleet ARGS`` run in a fresh Python, and the recipe and source
    modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS_OF, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    return done.stdout, set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_a_recipes_command_imports_that_recipe_only():
    help_text, modules = _command("cogify", "--help")
    assert "--input-root" in help_text and "--profile" in help_text
    assert modules == {
        "tilefleet.recipes",
        "tilefleet.recipes.base",
        "tilefleet.recipes.params",
        "tilefleet.recipes.cogify",
        "tilefleet.recipes.cogify.params",
    }


def test_the_root_help_still_lists_every_command():
    from tilefleet.recipes import get_recipe, recipe_names

    help_text, modules = _command("--help")
    listed = {line.split()[1] for line in help_text.splitlines() if line.startswith("│ ")}
    for name in recipe_names():
        assert name in listed
        if name != "cells":  # the cells group's own help (its recipe runs as `cells run`)
            summary = get_recipe(name).describe()
            assert " ".join(summary.split()[:4]) in " ".join(help_text.split())
    assert {
        "run",
        "plan",
        "report",
        "monitor",
        "schema",
        "demo",
        "watch",
        "tiles",
        "task",
    } <= listed
    assert "tilefleet.sources.atl06" in modules  # listing every command makes every command
