"""An 8-bit RGBA rendering of surface reflectance, with a sigmoid contrast curve.

The curve is the one EO users know from ``xrspatial.multispectral.true_color``
(contrast ``c`` = 10, threshold ``th`` = 0.125), applied to reflectance on a fixed scale
instead of each image's own minimum and maximum, so neighbouring tiles and successive
months render alike and mosaic without seams.
"""

from __future__ import annotations

import numpy as np

CONTRAST, THRESHOLD = 10.0, 0.125


def true_color(
    red: np.ndarray,
    green: np.ndarray,
    blue: np.ndarray,
    valid: np.ndarray,
    *,
    scale: float = 1e-4,
    contrast: float = CONTRAST,
    threshold: float = THRESHOLD,
) -> np.ndarray:
    """(4, rows, cols) uint8 RGBA: each band times ``scale`` is reflectance (0..1), mapped
    through a sigmoid that sends 0 to 0 and 1 to 255; alpha is 0 where ``valid`` is False."""

    def curve(x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(contrast * (threshold - x)))

    low, high = curve(np.float32(0.0)), curve(np.float32(1.0))
    out = np.zeros((4, *valid.shape), dtype=np.uint8)
    for index, band in enumerate((red, green, blue)):
        reflectance = np.clip(band.astype(np.float32) * np.float32(scale), 0.0, 1.0)
        level = (curve(reflectance) - low) / (high - low) * 255.0
        out[index] = np.where(valid, np.rint(level), 0).astype(np.uint8)
    out[3] = np.where(valid, 255, 0)
    return out
