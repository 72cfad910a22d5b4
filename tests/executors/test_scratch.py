"""Scratch folders that killed runs leave behind are swept by the next run on the machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

from tilefleet.engine.executors.scratch import new_scratch

KILLED_RUN = """
import os, signal, sys
from tilefleet.engine.executors.scratch import new_scratch
folder = new_scratch("local")
open(os.path.join(folder, "half-written.tif"), "wb").write(b"x" * 1000)
print(folder, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # killed with its group: no shutdown runs
"""


def test_a_killed_runs_scratch_is_swept_and_a_live_ones_kept(tmp_path, monkeypatch):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN], env=env, capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL
    left = killed.stdout.strip()
    assert os.path.isdir(left) and os.path.basename(left).startswith("tilefleet-local-")
    other_user = tmp_path / "tilefleet-local-notapid-x"  # not ours to judge: left alone
    other_user.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    live = new_scratch("local")  # this process's, made after sweeping
    assert not os.path.exists(left)
    assert os.path.isdir(live) and other_user.is_dir()
    again = new_scratch("local")  # a second executor of a live process keeps the first's
    assert os.path.isdir(live) and os.path.isdir(again)
