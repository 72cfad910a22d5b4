"""Fixtures of the executor tests: real engines on this machine, started once per session
and cleaned up after (Ray and Lithops leave state under /tmp and ~ otherwise)."""

from __future__ import annotations

import getpass
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from helpers import local_ray

TESTS = Path(__file__).resolve().parents[1]
#: Where the test recipes live; workers of engines that do not copy this process's
#: sys.path (Ray, Lithops' runner) find them through PYTHONPATH.
WORKER_PATHS = [str(TESTS)]


def _state_paths() -> list[Path]:
    user = getpass.getuser()
    return [
        Path(tempfile.gettempdir()) / f"lithops-{user}",
        Path.home() / ".lithops",
        Path.home() / ".ray",
    ]


@pytest.fixture(scope="session", autouse=True)
def worker_pythonpath():
    """Test recipes importable in every worker process the engines start."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([*WORKER_PATHS, *filter(None, [previous])])
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    existed = {path for path in _state_paths() if path.exists()}
    yield
    if previous is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = previous
    if _state_paths()[0] not in existed:
        _stop_lithops_cleaner()
    for path in _state_paths():  # remove only what this session created
        if path not in existed:
            shutil.rmtree(path, ignore_errors=True)


def _stop_lithops_cleaner() -> None:
    """Lithops deletes job data in a process it spawns at exit, which then idles for a
    while; the folder it works in is about to be removed, so stop the one this session
    started."""
    import sys

    lithops = sys.modules.get("lithops")
    cleaner = getattr(getattr(lithops, "FunctionExecutor", None), "_cleaner_process", None)
    if cleaner is not None and cleaner.poll() is None:
        cleaner.terminate()
        cleaner.wait(timeout=10)


@pytest.fixture(scope="session")
def ray_session(worker_pythonpath):
    """One local Ray for the whole session (it takes seconds to start and ~1 GB of RAM).
    The ray executor uses a Ray that is already initialised and leaves it running."""
    pytest.importorskip("ray")
    with local_ray() as ray:
        yield ray
