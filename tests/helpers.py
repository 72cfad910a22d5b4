"""Small helpers shared by tests: running cogify in-process, building jobs of the engine's
test recipe, comparing rasters, and a local Ray."""

from __future__ import annotations

import contextlib
import csv
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import rasterio

from tilefleet.engine.result import RunResult
from tilefleet.engine.run import run_job
from tilefleet.jobs import build_job


def run_cogify(manifest, input_root, dest, run_dir, **options) -> RunResult:
    values = {
        "recipe": "cogify",
        "manifest": str(manifest),
        "input_root": str(input_root),
        "dest": str(dest),
        "run_dir": str(run_dir),
        "workers": 2,
        "backoff_s": 0.05,
        **options,
    }
    return run_job(build_job(values))


def flaky_job(tmp_path: Path, **values):
    """A job of ``engine_recipes:FlakyRecipe`` writing below ``tmp_path``; ``values`` add
    to or override its keys (count, mode, executor, …)."""
    base = {
        "recipe": "engine_recipes:FlakyRecipe",
        "dest": str(tmp_path / "dest"),
        "state_dir": str(tmp_path / "st"),
        "run_dir": str(tmp_path / "run"),
        "workers": 2,
        "backoff_s": 0.01,
    }
    return build_job({**base, **values})


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def assert_same_pixels(source: str, cog: str) -> None:
    """Every band, the nodata value and the validity mask are identical."""
    with rasterio.open(source) as a, rasterio.open(cog) as b:
        assert (a.count, a.width, a.height, a.dtypes) == (b.count, b.width, b.height, b.dtypes)
        assert a.crs == b.crs and a.transform.almost_equals(b.transform)
        assert a.nodata == b.nodata or (np.isnan(a.nodata) and np.isnan(b.nodata))
        assert np.array_equal(a.read(), b.read(), equal_nan=a.dtypes[0].startswith("float"))
        assert np.array_equal(a.dataset_mask(), b.dataset_mask())


@contextlib.contextmanager
def local_ray() -> Iterator:
    """A local Ray of 2 CPUs (it takes seconds to start and ~1 GB of RAM), shut down and its
    temporary folder removed after."""
    import ray

    temp_dir = tempfile.mkdtemp(prefix="tf-ray-")  # short: Ray's socket paths are bounded
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
        _temp_dir=temp_dir,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def kinded_billed_run(tmp_path: Path, monkeypatch) -> RunResult:
    """A run of the test recipe with kinds of tasks (``scale_recipes:KindedRecipe``: even
    and odd, every fifth failing for good), one task done before, on a local executor
    billed as a cloud one would be."""
    from tilefleet.engine.executors.base import Billing
    from tilefleet.engine.executors.local import LocalExecutor

    monkeypatch.setattr(LocalExecutor, "billing", Billing(memory_gb=1.0, usd_per_gb_s=1e-5))
    done = tmp_path / "dest/000/t000000.json"
    done.parent.mkdir(parents=True)
    done.write_bytes(b"{}")
    values = {"recipe": "scale_recipes:KindedRecipe", "count": 10, "folders": 1, "yes": True}
    values |= {"dest": str(tmp_path / "dest"), "run_dir": str(tmp_path / "run"), "workers": 2}
    return run_job(build_job(values))
