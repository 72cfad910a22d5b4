"""``format: hkl``: the TTC seed pipeline's hickle files, so that a TTC model trained on
them reads tilefleet's outputs unchanged.

Same folders, file names, array shapes, axis orders and dtypes as the seed's loaders
(gzip-compressed hickle, one array a file), built from the very arrays the cloud-native
outputs hold:

- ``misc/dem_{tile}.hkl``: slope, float32 (H, W);
- ``s1/{tile}.hkl``: uint16 (12, H, W, 2), each quarter repeated 3 times, ``[..., 0]`` VV
  and ``[..., 1]`` VH; ``misc/s1_dates_{tile}.hkl``: int64 ``[45]*3 + [135]*3 + [225]*3 +
  [315]*3``. A quarter without a scene stays in place as nodata (0) and is named in the
  item and the task's warning (the seed zero-filled it silently);
- ``s2_10/{tile}.hkl``: uint16 (T, H, W, 4) B02 B03 B04 B08; ``s2_20/{tile}.hkl``: uint16
  (T, H/2, W/2, 6) B05 B06 B07 B8A B11 B12; ``clouds/cloudmask_{tile}.hkl``: the cirrus
  mask, uint8 (T, H/2, W/2); ``misc/s2_dates_{tile}.hkl``: int64 day numbers of the images
  in the seed's 365-day calendar (:func:`legacy_day`; 31 December is 365, where the seed's
  ``% 365`` made it 0 and dropped it); ``clouds/clean_steps_{tile}.hkl``: int64, the same
  numbers for the dates stage 1 kept; ``clouds/clouds_{tile}.hkl``: float32 (days, h, w),
  stage 1's SCL per day at 640 m, 0 where clear and NaN where bad (the seed's ``frac x
  255``, NaN above 100).
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import numpy as np

from tilefleet.errors import PermanentError
from tilefleet.recipes.ttc_ard.layout import TileYearKeys

#: The seed's day of each quarter, repeated 3 times in ``s1_dates``.
S1_QUARTER_DAYS = (45, 135, 225, 315)
S1_REPEAT = 3
#: Days before each month in the seed's calendar (a year of 365 days, February 28).
_DAYS_BEFORE = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30])


def legacy_day(day: date, year: int) -> int:
    """The seed's day number of ``day`` counted from ``year``: 365 a year, months of a
    non-leap year (29 February and 1 March are both 60)."""
    return int((day.year - year) * 365 + _DAYS_BEFORE[day.month - 1] + day.day)


def s1_arrays(composites: np.ndarray) -> dict[str, np.ndarray]:
    """The seed's ``s1`` arrays of the (8, H, W) composites ``VV_Q1..VV_Q4, VH_Q1..VH_Q4``."""
    quarters = np.stack([composites[:4], composites[4:]], axis=-1)  # (4, H, W, 2)
    return {
        "s1": np.repeat(quarters, S1_REPEAT, axis=0),
        "s1_dates": np.repeat(np.array(S1_QUARTER_DAYS, dtype=np.int64), S1_REPEAT),
    }


def s2_arrays(
    s2_10: np.ndarray,
    s2_20: np.ndarray,
    cirrus: np.ndarray,
    days: list[date],
    kept_days: list[date],
    stage1_bad: np.ndarray,
    year: int,
) -> dict[str, np.ndarray]:
    """The seed's ``s2`` arrays from the (time, band, y, x) stacks, the cirrus masks, the
    images' days, the days stage 1 kept and stage 1's bad-pixel masks (day, y, x)."""
    return {
        "s2_10": np.ascontiguousarray(s2_10.transpose(0, 2, 3, 1)),
        "s2_20": np.ascontiguousarray(s2_20.transpose(0, 2, 3, 1)),
        "s2_dates": np.array([legacy_day(d, year) for d in days], dtype=np.int64),
        "cloudmask": cirrus.astype(np.uint8),
        "clean_steps": np.array([legacy_day(d, year) for d in kept_days], dtype=np.int64),
        "clouds": np.where(stage1_bad, np.float32(np.nan), np.float32(0)),
    }


def write_hkl(store, keys: TileYearKeys, arrays: dict[str, np.ndarray]) -> int:
    """Write the product's arrays as the seed's hickle files through ``store``; bytes out."""
    try:
        import hickle
    except ImportError:
        raise PermanentError(
            "format hkl needs the hickle package: install tilefleet with the ttc extra"
        ) from None
    files = keys.hkl_files()
    size = 0
    with tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp:
        for name, path in files.items():
            local = Path(tmp) / f"{name}.hkl"
            hickle.dump(arrays[name], str(local), mode="w", compression="gzip")
            size += local.stat().st_size
            store.put_file(local, f"{keys.folder}/{path}", move=True)
    return size
