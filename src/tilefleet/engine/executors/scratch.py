"""Scratch folders of the executors that start workers on this machine.

Each is named after the process that made it (``tilefleet-local-<pid>-…``) and removed when
its executor shuts down. A process killed as a group (SIGKILL, an OOM kill) cannot remove
its own, so every new one first sweeps the folders of processes that no longer run.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("tilefleet")


def new_scratch(kind: str) -> str:
    """A fresh scratch folder for ``kind`` (``local``, ``dask``), after sweeping those its
    kind's dead processes left behind."""
    sweep_dead_scratch(kind)
    return tempfile.mkdtemp(prefix=f"tilefleet-{kind}-{os.getpid()}-")


def sweep_dead_scratch(kind: str, folder: str | None = None) -> int:
    """Remove the ``kind`` scratch folders below ``folder`` (the temp dir) whose process is
    gone; returns how many. Folders of live processes, and of another user's, stay."""
    pattern = re.compile(rf"^tilefleet-{re.escape(kind)}-(\d+)-")
    removed = 0
    for entry in Path(folder or tempfile.gettempdir()).glob(f"tilefleet-{kind}-*"):
        match = pattern.match(entry.name)
        if match is None or not entry.is_dir() or _running(int(match.group(1))):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += not entry.exists()
    if removed:
        log.info("removed %d scratch folder(s) of %s workers that were killed", removed, kind)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
