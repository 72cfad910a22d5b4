"""The merge of the scenes of one solar day into one observation: first valid pixel first.

Neighbouring granules of one satellite pass overlap and see the same ground at the same
moment; merging them before a temporal composite makes that pass count once, not twice
where granules overlap. Scenes come in a fixed order (time, then id), so the merge is the
same on every run.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def merge_first_valid(
    scenes: Iterable[tuple[np.ndarray, np.ndarray]], *, out: np.ndarray, filled: np.ndarray
) -> None:
    """Give each pixel of ``out`` the value of the first scene valid there, in place.

    ``scenes`` yields ``(values, valid)`` pairs shaped like ``out``; ``filled`` marks the
    pixels set so far (False at first) and is updated too. No scene is drawn once every
    pixel is filled, so a lazy iterable reads none that could add nothing.
    """
    for values, valid in scenes:
        take = valid & ~filled
        out[take] = values[take]
        filled |= take
        if filled.all():
            break
