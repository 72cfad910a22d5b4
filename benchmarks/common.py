"""What the benchmarks share: smooth random surfaces to build synthetic scenes from, and a
quiet tilefleet run that stops the benchmark when it does not do all its tasks."""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Any

import numpy as np


def _interpolation_matrix(size: int, cells: int) -> np.ndarray:
    """(size, cells) weights that linearly interpolate a coarse axis onto ``size`` pixels."""
    position = np.linspace(0, cells - 1, size)
    low = np.clip(np.floor(position).astype(int), 0, cells - 2)
    frac = position - low
    weights = np.zeros((size, cells))
    rows = np.arange(size)
    weights[rows, low] = 1 - frac
    weights[rows, low + 1] = frac
    return weights


def smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A (size, size) smooth random surface, about N(0, 1): a coarse random grid of
    ``cells``², bilinearly upsampled."""
    weights = _interpolation_matrix(size, cells)
    return weights @ rng.standard_normal((cells, cells)) @ weights.T


def run_tilefleet_quietly(values: dict[str, Any], expected: int) -> None:
    """Build and run a job (no progress bar or log lines in the benchmark's output); exit
    with the captured log unless it ends with ``expected`` tasks succeeded."""
    from tilefleet.engine.run import run_job
    from tilefleet.jobs import build_job

    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        result = run_job(build_job(values))
    succeeded = result.report.get("succeeded")
    if result.exit_code != 0 or succeeded != expected:
        sys.stderr.write(captured.getvalue())
        raise SystemExit(
            f"tilefleet run failed: exit {result.exit_code}, {succeeded}/{expected} tasks "
            f"succeeded (see {values['run_dir']})"
        )
