"""Clear-sky masking from a Scene Classification Layer (the Sentinel-2 L2A ``SCL`` band).

A pixel classification says, per pixel, what the processor saw there (cloud, shadow,
water, vegetation…). A composite keeps only the pixels whose class is clear ground, so
that clouds and their shadows never reach a median.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Scene Classification Layer classes that are not clear ground: no data, saturated or
#: defective, cloud shadow, cloud medium and high probability, thin cirrus.
DEFAULT_SCL_MASK = (0, 1, 3, 8, 9, 10)


def clear_sky(classes: np.ndarray, invalid_classes: np.ndarray | Sequence[int]) -> np.ndarray:
    """Where ``classes`` (a pixel classification) holds none of ``invalid_classes``: a
    boolean array of the same shape, True on clear ground."""
    return ~np.isin(classes, invalid_classes)
