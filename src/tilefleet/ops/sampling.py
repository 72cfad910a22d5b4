"""Which pixels of a patch to sample: pure numpy, seeded, no I/O.

Every function returns the flat indices (row-major) of the chosen pixels, sorted, taken
only where ``eligible`` is True (valid features and a label).
"""

from __future__ import annotations

import zlib

import numpy as np


def patch_rng(seed: int, tile_id: str) -> np.random.Generator:
    """A generator seeded by the job's seed and the patch: the same pixels every run, on
    any worker, in any order, and different pixels in different patches."""
    return np.random.default_rng([seed, zlib.crc32(tile_id.encode())])


def sample_fraction(eligible: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``fraction`` of the eligible pixels (rounded), drawn without replacement."""
    candidates = np.flatnonzero(eligible)
    count = int(round(fraction * len(candidates)))
    return np.sort(rng.choice(candidates, size=count, replace=False))


def sample_balanced(
    eligible: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """As many pixels of each class as ``fraction`` of the eligible pixels split evenly
    over the classes present, capped by what each class has."""
    candidates = np.flatnonzero(eligible)
    flat = labels.ravel()[candidates]
    classes = np.unique(flat)
    if not len(classes):
        return candidates
    per_class = int(round(fraction * len(candidates) / len(classes)))
    chosen = []
    for value in classes:
        mine = candidates[flat == value]
        chosen.append(rng.choice(mine, size=min(per_class, len(mine)), replace=False))
    return np.sort(np.concatenate(chosen))


def sample_blocks(
    eligible: np.ndarray, count: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """The eligible pixels of ``count`` square blocks of ``size`` pixels placed at random
    (they may overlap; a pixel is taken once)."""
    rows, cols = eligible.shape
    size = min(size, rows, cols)
    top = rng.integers(0, rows - size + 1, size=count)
    left = rng.integers(0, cols - size + 1, size=count)
    picked = np.zeros_like(eligible, dtype=bool)
    for r, c in zip(top.tolist(), left.tolist(), strict=True):
        picked[r : r + size, c : c + size] = True
    return np.flatnonzero(picked & eligible)
