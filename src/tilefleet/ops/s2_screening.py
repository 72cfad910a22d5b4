"""Sentinel-2 cloud screening for TTC tiles: cloud fractions from the Scene Classification
Layer, which scenes of a year to keep, which item serves each kept date, and the scaling
of reflectances.

Stage 1 (on a box 15 times the tile, coarse SCL) scores every scene by its global
fraction ``g`` of bad pixels and the fraction ``l`` in the centre; :func:`select_dates`
applies the rules. Stage 2 (on the tile) matches each kept date to an item
(:func:`match_items`) and drops images whose bad fraction on the tile is too high.
Pure functions; the ``s2`` product of ``ttc-ard`` does the reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

#: SCL classes that are no clear ground: no data, saturated, dark/shadow, cloud shadow,
#: unclassified... (0, 1, 2, 3), cloud medium/high probability, cirrus, snow (7-11).
BAD_CLASSES = (0, 1, 2, 3, 7, 8, 9, 10, 11)
CIRRUS_CLASS = 10
DROP_GLOBAL = 0.5  # a scene more than half bad is dropped
SCORED_GLOBAL = 0.3  # above this, the centre decides too ...
MAX_SCORE = 0.4  # ... and the blended score must stay at most this
MONTH_LOCAL_MARGIN = 0.20  # a scene whose month has one clearer by more than this is dropped
PER_MONTH = 2
MAX_DATES = 24
CENTRE_PIXELS = 30
MATCH_DAYS = 3
FULL_COVERAGE = 0.95
MAX_TILE_BAD = 0.20
SCALE = 65535


def bad_fraction(scl: np.ndarray, bad_classes: Sequence[int] = BAD_CLASSES) -> float:
    """The fraction of pixels of ``scl`` in ``bad_classes`` (1.0 for an empty array)."""
    if scl.size == 0:
        return 1.0
    return float(np.isin(scl, bad_classes).mean())


def centre_window(scl: np.ndarray, pixels: int = CENTRE_PIXELS) -> np.ndarray:
    """The central ``pixels`` x ``pixels`` of ``scl`` (all of it when smaller)."""
    rows, cols = scl.shape[-2:]
    r0, c0 = max(0, (rows - pixels) // 2), max(0, (cols - pixels) // 2)
    return scl[..., r0 : r0 + pixels, c0 : c0 + pixels]


@dataclass(frozen=True)
class ScreenedScene:
    """A scene's day and its stage-1 cloud fractions: global ``g`` and local (centre) ``l``."""

    day: date
    global_fraction: float
    local_fraction: float

    @property
    def score(self) -> float:
        """Lower is better: ``g``, or ``0.25 g + 0.75 l`` once ``g`` is above 0.3."""
        g, loc = self.global_fraction, self.local_fraction
        return g if g <= SCORED_GLOBAL else 0.25 * g + 0.75 * loc


def _passes(scene: ScreenedScene, month_best_local: float) -> bool:
    if scene.global_fraction > DROP_GLOBAL:
        return False
    if scene.global_fraction > SCORED_GLOBAL and scene.score > MAX_SCORE:
        return False
    return scene.local_fraction - month_best_local <= MONTH_LOCAL_MARGIN


def select_dates(scenes: Sequence[ScreenedScene]) -> list[ScreenedScene]:
    """The scenes kept, in date order, by the rules of the TTC pipeline:

    1. drop a scene with ``g`` > 0.5; with ``g`` > 0.3 its score must be at most 0.4;
       drop one whose month holds a scene with ``l`` lower by more than 0.20;
    2. keep the best 2 (by score, then date) of each month, at most 24 in all;
    3. top up to 24 with the best of the other scenes that passed step 1.
    """
    best_local: dict[tuple[int, int], float] = {}
    for s in scenes:
        month = (s.day.year, s.day.month)
        best_local[month] = min(best_local.get(month, 1.0), s.local_fraction)
    passed = [s for s in scenes if _passes(s, best_local[(s.day.year, s.day.month)])]
    ranked = sorted(passed, key=lambda s: (s.score, s.day))
    kept: list[ScreenedScene] = []
    per_month: dict[tuple[int, int], int] = {}
    for s in ranked:
        month = (s.day.year, s.day.month)
        if per_month.get(month, 0) < PER_MONTH:
            per_month[month] = per_month.get(month, 0) + 1
            kept.append(s)
    kept = kept[:MAX_DATES]
    for s in ranked:
        if len(kept) >= MAX_DATES:
            break
        if s not in kept:
            kept.append(s)
    return sorted(kept, key=lambda s: s.day)


@dataclass(frozen=True)
class Candidate:
    """An item that may serve a kept date: its index, day and coverage of the tile."""

    index: int
    day: date
    coverage: float


def match_items(days: Sequence[date], candidates: Sequence[Candidate]) -> list[int | None]:
    """For each kept day, the index of the item that serves it: within 3 days, those
    covering at least 95 % of the tile first, then the nearest day, then the better
    coverage; an item serves one day at most. None where no item is close enough."""
    used: set[int] = set()
    chosen: list[int | None] = []
    for day in days:
        near = [
            c for c in candidates if abs((c.day - day).days) <= MATCH_DAYS and c.index not in used
        ]
        near.sort(key=lambda c: (c.coverage < FULL_COVERAGE, abs((c.day - day).days), -c.coverage))
        if near:
            used.add(near[0].index)
            chosen.append(near[0].index)
        else:
            chosen.append(None)
    return chosen


def scale_reflectance(dn: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Sentinel-2 DN (reflectance x 10000) as uint16 reflectance x 65535, clipped to [0, 1];
    0 where not ``valid``."""
    out = np.rint(np.clip(dn.astype(np.float32) / 10000.0, 0.0, 1.0) * SCALE).astype(np.uint16)
    if valid is not None:
        out[~valid] = 0
    return out


def day_of_year(day: date) -> int:
    """1 for 1 January ... 365 (366 in a leap year) for 31 December: never 0, never lost."""
    return day.timetuple().tm_yday


def cirrus_mask(scl: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """uint8 1 where ``scl`` is cirrus (class 10), despeckled: a 3x3 opening drops cirrus
    pixels that stand alone (the classifier's noise), keeping every patch of at least 3x3."""
    from scipy import ndimage

    cirrus = scl == CIRRUS_CLASS
    if valid is not None:
        cirrus &= valid
    return ndimage.binary_opening(cirrus, structure=np.ones((3, 3), bool)).astype(np.uint8)
