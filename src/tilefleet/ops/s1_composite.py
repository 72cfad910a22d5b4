"""Sentinel-1 quarterly composites: the quarter windows, which orbit direction and which
scenes a quarter uses, and the per-pixel median scaled to uint16.

Pure functions over plain values; the ``s1`` product of ``ttc-ard`` does the reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from tilefleet.ops.median import masked_median

#: The four windows (month, day) to (month, day), both days included.
QUARTER_WINDOWS = (((1, 15), (3, 15)), ((4, 15), (6, 15)), ((7, 15), (9, 15)), ((10, 15), (12, 15)))
ORBITS = ("ASCENDING", "DESCENDING")
SCENES_PER_QUARTER = 3
FULL_COVERAGE = 0.95
SCALE = 65535


def quarter_window(year: int, quarter: int) -> tuple[date, date]:
    """First and last day (inclusive) of quarter ``quarter`` (1-4) of ``year``."""
    (m0, d0), (m1, d1) = QUARTER_WINDOWS[quarter - 1]
    return date(year, m0, d0), date(year, m1, d1)


def quarter_of(day: date) -> int | None:
    """The quarter (1-4) whose window holds ``day``; None between windows."""
    for quarter in range(1, 5):
        first, last = quarter_window(day.year, quarter)
        if first <= day <= last:
            return quarter
    return None


@dataclass(frozen=True)
class S1Scene:
    """What selection needs of a scene: its id, day, orbit direction and the fraction of
    the tile its footprint covers."""

    id: str
    day: date
    orbit: str
    coverage: float


def choose_orbit(scenes: Iterable[S1Scene], mode: str) -> str:
    """``ASCENDING`` or ``DESCENDING`` as given; for ``AUTO`` the direction with more
    qualifying days (days in a quarter window whose scenes cover the tile fully),
    ascending on a tie."""
    if mode in ORBITS:
        return mode
    if mode != "AUTO":
        raise ValueError(f"orbit must be ASCENDING, DESCENDING or AUTO, not {mode!r}")
    best: dict[tuple[str, date], float] = {}
    for scene in scenes:
        if quarter_of(scene.day) is not None:
            key = (scene.orbit, scene.day)
            best[key] = min(1.0, best.get(key, 0.0) + scene.coverage)
    days = {orbit: sum(1 for (o, _), c in best.items() if o == orbit and c >= FULL_COVERAGE)
            for orbit in ORBITS}  # fmt: skip
    return "DESCENDING" if days["DESCENDING"] > days["ASCENDING"] else "ASCENDING"


def pick_quarter_scenes(scenes: Sequence[S1Scene]) -> list[S1Scene]:
    """The scenes of one quarter's composite: the (up to) three that cover most of the
    tile among those covering at least 95 %, else the single best one; [] for none."""
    ranked = sorted(scenes, key=lambda s: (-s.coverage, s.day, s.id))
    full = [s for s in ranked if s.coverage >= FULL_COVERAGE]
    return full[:SCENES_PER_QUARTER] if full else ranked[:1]


def select_quarters(scenes: Iterable[S1Scene], year: int, orbit: str) -> dict[int, list[S1Scene]]:
    """Quarter (1-4) -> its scenes of ``orbit`` in ``year`` (an empty list: a missing quarter)."""
    by_quarter: dict[int, list[S1Scene]] = {q: [] for q in range(1, 5)}
    for scene in scenes:
        quarter = quarter_of(scene.day)
        if scene.orbit == orbit and scene.day.year == year and quarter is not None:
            by_quarter[quarter].append(scene)
    return {q: pick_quarter_scenes(found) for q, found in by_quarter.items()}


def quarter_composite(stack: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """uint16 median over axis 0 of linear backscatter ``stack`` where ``valid``: clipped to
    [0, 1] and scaled by 65535; 0 is nodata (a valid value that would round to 0 is 1)."""
    valid = valid & np.isfinite(stack)
    median = masked_median(stack.astype(np.float32), valid, dtype="float32", nodata=0.0)
    out = np.rint(np.clip(median, 0.0, 1.0) * SCALE).astype(np.uint16)
    seen = valid.any(axis=0)
    out[seen & (out == 0)] = 1
    out[~seen] = 0
    return out
