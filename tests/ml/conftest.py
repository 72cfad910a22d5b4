"""The ML chain's tests run the example chain (examples/ml-chain/chain.yaml) on the real
29RKH L2A scene served by the loopback STAC API: its cloudy north-east corner, cut into
8 UTM patches of 10 km (110 x 110 pixels of 100 m with the 500 m buffer; the northern
ones reach past the scene's edge by the buffer, so they have invalid pixels).

Label rule (the example's, documented in docs/ml-chain.md): the scene's own Scene
Classification Layer is the reference raster; class 5 (bare soil) is label 0 "clear",
classes 8, 9, 10 (cloud medium/high probability, thin cirrus) are label 1 "cloud"; the
other classes are unlabelled.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from helpers import local_ray

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "ml-chain" / "chain.yaml"
SCENE = "s2_l2a_29RKH_20200219"
CLASSES = {5: 0, 8: 1, 9: 1, 10: 1}
FOLDERS = (
    "data",
    "features",
    "reference",
    "samples",
    "merged",
    "model",
    "predictions",
    "maps",
    "stac",
)


def chain_document(data_dir: Path, stac_url: str, root: Path) -> dict:
    """The example chain, its folders and run dir below ``root``, its scenes from the STAC
    API at ``stac_url`` and its reference raster from the shared data."""
    document = yaml.safe_load(EXAMPLE.read_text())
    document["folders"] = {name: str(root / "out" / name) for name in document["folders"]}
    document["run_dir"] = str(root / "runs")
    for step in document["steps"]:
        if step["recipe"] == "patch-data":
            del step["catalog"]
            step.update(stac_url=stac_url, collections=["sentinel-2-l2a"])
        elif step["recipe"] == "reference":
            step["raster"] = str(data_dir / SCENE / "SCL.tif")
        elif step["recipe"] == "publish":
            step["runs"] = str(root / "runs")
    return document


def write_chain(data_dir: Path, stac_url: str, root: Path, **changes) -> Path:
    """``root/chain.yaml``: :func:`chain_document` with top-level ``changes``."""
    root.mkdir(parents=True, exist_ok=True)
    document = {**chain_document(data_dir, stac_url, root), **changes}
    path = root / "chain.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


class ChainRun:
    """A finished chain run: its result and where each folder is."""

    def __init__(self, path: Path, result):
        self.path, self.result = path, result
        self.root = path.parent
        self.folders = {name: self.root / "out" / name for name in FOLDERS}
        document = yaml.safe_load(path.read_text())
        self.steps = {step.get("name", step["recipe"]): step for step in document["steps"]}
        self.variables = document["variables"]

    def __getitem__(self, folder: str) -> Path:
        return self.folders[folder]


def run_chain_file(path: Path, **overrides):
    from tilefleet.chain import load_chain, run_chain

    return run_chain(load_chain(path, overrides))


@pytest.fixture(scope="session")
def local_chain(data_dir, stac_api_server, tmp_path_factory) -> ChainRun:
    """The whole example chain run once on local workers, for every test of the session."""
    # One worker: on a small machine, a second worker process costs more than it saves.
    root = tmp_path_factory.mktemp("chain-local")
    path = write_chain(data_dir, stac_api_server.url, root, workers=1)
    result = run_chain_file(path)
    assert result.exit_code == 0, result.summary()
    return ChainRun(path, result)


@pytest.fixture(scope="module")
def ray_started():
    """A local Ray for the tests that need one, as tests/executors/conftest.py starts it;
    one already running (those tests' session Ray) is used as it is and left running."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    had_state = (Path.home() / ".ray").exists()
    with local_ray():
        yield ray
    if not had_state:
        shutil.rmtree(Path.home() / ".ray", ignore_errors=True)
