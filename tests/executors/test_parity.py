"""The same cogify job on every engine that runs here writes the same outputs and the same
record: local processes, a Dask LocalCluster, a local Ray and Lithops' localhost backend,
all for real on real rasters."""

from __future__ import annotations

import json

import pytest

from conftest import link_rasters
from helpers import assert_same_pixels, read_csv, run_cogify

#: Real rasters of three kinds, and a row whose file is missing (a permanent failure whose
#: reason must read the same whatever ran it).
ROWS = ["landsat/RGB.byte.tif", "dem/glo90_polar.tif", "s2/SCL.tif"]
MISSING = "landsat/missing.tif"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """The job run on local processes, the reference every engine must match."""
    return _run("local", tmp_path_factory.mktemp("local"), data_dir)


def _run(executor: str, root, data_dir):
    inputs = link_rasters(root / "input", data_dir, ROWS)
    manifest = root / "manifest.csv"
    manifest.write_text("".join(f"{key},\n" for key in [*ROWS, MISSING]))
    result = run_cogify(manifest, inputs, root / "out", root / "run", executor=executor)
    return root, result


def _record(root) -> list[tuple[str, str, str]]:
    return [(r["id"], r["status"], r["error"]) for r in read_csv(root / "run/tasks.csv")]


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["dask", "ray", "lithops"])
def test_every_engine_writes_the_same_pixels_and_record(
    executor, reference, tmp_path, data_dir, request
):
    if executor == "ray":
        request.getfixturevalue("ray_session")
    local_root, local_result = reference
    root, result = _run(executor, tmp_path, data_dir)

    assert result.exit_code == local_result.exit_code == 1  # the missing row fails
    assert _record(root) == _record(local_root)
    statuses = {row[0]: row[1] for row in _record(root)}
    assert statuses == {**dict.fromkeys(ROWS, "succeeded"), MISSING: "failed"}
    for key in ROWS:
        assert_same_pixels(str(local_root / "out" / key), str(root / "out" / key))
        assert (root / "out" / key).read_bytes() == (local_root / "out" / key).read_bytes()
        jpg = (root / "out" / key).with_suffix(".jpg")
        assert jpg.read_bytes() == (local_root / "out" / key).with_suffix(".jpg").read_bytes()
    report = json.loads((root / "run/report.json").read_text())
    assert report["executor"]["name"] == executor
    assert read_csv(root / "run/failed.csv") == read_csv(local_root / "run/failed.csv")
