"""Synthetic imagery shared by the benchmarks: smooth random surfaces to build scenes from."""

from __future__ import annotations

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
