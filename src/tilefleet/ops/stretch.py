"""Contrast stretches that turn any raster data type into 8-bit display values.

A preview is for eyes: the percentiles a band is stretched between come from a regular
sample of it (every ``step``-th row and column, at most :data:`SAMPLE_PIXELS` pixels),
which moves them by a grey level or two on real imagery and costs a small fraction of a
pass over the band; bands of up to that many pixels are sampled whole (exact).
"""

from __future__ import annotations

import math

import numpy as np

PERCENTILES = (2.0, 98.0)
#: Pixels of the sample the percentiles of one band are taken from.
SAMPLE_PIXELS = 1 << 20


def sample_step(rows: int, cols: int, pixels: int = SAMPLE_PIXELS) -> int:
    """The row and column step of a regular sample of at most about ``pixels`` pixels."""
    return max(1, math.ceil(math.sqrt(rows * cols / pixels)))


def to_display_bytes(
    bands: np.ma.MaskedArray | np.ndarray,
    percentiles: tuple[float, float] = PERCENTILES,
    *,
    sample_pixels: int = SAMPLE_PIXELS,
) -> np.ndarray:
    """Map a (bands, rows, cols) (masked) array to uint8 for a preview image.

    Byte data is kept as it is. Any other type is stretched per band between the given
    (linear) percentiles of its valid pixels (of a sample: see the module) onto 1..255,
    so that valid pixels are never black and 0 is left to mean "no data". Masked and
    non-finite pixels become 0.
    """
    data = np.ma.getdata(bands)
    invalid = np.ma.getmask(bands)
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            invalid = ~finite if invalid is np.ma.nomask else invalid | ~finite
    if data.dtype == np.uint8:
        out = np.array(data, dtype=np.uint8)
        if invalid is not np.ma.nomask:
            out[invalid] = 0
        return out
    small_integers = data.dtype.kind in "iu" and data.dtype.itemsize <= 2
    out = np.zeros(data.shape, dtype=np.uint8)
    step = sample_step(data.shape[1], data.shape[2], sample_pixels)
    for index in range(data.shape[0]):
        band = data[index]
        valid = None if invalid is np.ma.nomask else ~invalid[index]
        if valid is not None and not valid.any():
            continue
        sample, sample_valid = band[::step, ::step], None
        if valid is not None:
            sample_valid = valid[::step, ::step]
            if not sample_valid.any():  # valid pixels only between the sampled ones
                sample, sample_valid = band, valid
        if small_integers:
            low, high = _integer_percentiles(sample, sample_valid, percentiles)
            table = _integer_table(band.dtype, low, high)
            np.take(table, _order_index(band), out=out[index], mode="clip")  # no temporary
        else:
            values = sample if sample_valid is None else sample[sample_valid]
            low, high = np.percentile(values.astype(np.float64), percentiles)
            out[index] = _scale_fast(band, low, high)
        if valid is not None:
            out[index][~valid] = 0
    return out


def _scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high > low:
        scaled = 1.0 + (values - low) * (254.0 / (high - low))
    else:
        scaled = np.full(np.shape(values), 128.0)
    return np.clip(np.rint(scaled), 1, 255).astype(np.uint8)


def _scale_fast(band: np.ndarray, low: float, high: float) -> np.ndarray:
    """:func:`_scale` in place on one copy: float32 for float32 (and smaller) data, whose
    precision it has anyway; float64 for the rest. Non-finite values give arbitrary bytes
    (the caller blacks them out)."""
    if not high > low:
        return np.full(band.shape, 128, dtype=np.uint8)
    work = np.float32 if band.dtype.kind == "f" and band.dtype.itemsize <= 4 else np.float64
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.subtract(band, work(low), dtype=work)
        scaled *= work(254.0 / (high - low))
        scaled += work(1.0)
        np.rint(scaled, out=scaled)
        np.clip(scaled, 1, 255, out=scaled)
        return scaled.astype(np.uint8)


def _stretch_any(band: np.ndarray, valid: np.ndarray, percentiles) -> np.ndarray:
    """The exact stretch of one band over all its valid pixels (the definition the fast
    paths are checked against)."""
    low, high = np.percentile(band[valid].astype(np.float64), percentiles)
    return _scale(band.astype(np.float64), low, high)


def _order_index(band: np.ndarray) -> np.ndarray:
    """An order-preserving map of 8- and 16-bit integers onto 0 .. 2**bits - 1 without a
    wider copy: the unsigned view, with the sign bit flipped for signed types."""
    info = np.iinfo(band.dtype)
    unsigned = np.dtype(f"u{band.dtype.itemsize}")
    index = band.view(unsigned)
    return index ^ unsigned.type(-info.min) if info.min < 0 else index


def _integer_percentiles(
    sample: np.ndarray, valid: np.ndarray | None, percentiles
) -> tuple[float, float]:
    """Exact linear percentiles of the valid values of ``sample`` from cumulative counts."""
    info = np.iinfo(sample.dtype)
    index = _order_index(sample)
    values = index.ravel() if valid is None else index[valid]
    cumulative = np.cumsum(np.bincount(values, minlength=1 << (8 * sample.dtype.itemsize)))
    count = int(cumulative[-1])

    def value_at(rank: int) -> int:  # the rank-th smallest valid value (0-based)
        return int(np.searchsorted(cumulative, rank, side="right")) + info.min

    def percentile(p: float) -> float:
        position = (count - 1) * p / 100.0
        below = int(np.floor(position))
        above = min(below + 1, count - 1)
        return value_at(below) + (position - below) * (value_at(above) - value_at(below))

    low, high = (percentile(p) for p in percentiles)
    return low, high


def _integer_table(dtype: np.dtype, low: float, high: float) -> np.ndarray:
    """The display byte of every value of an 8- or 16-bit type, in :func:`_order_index` order."""
    info = np.iinfo(dtype)
    return _scale(np.arange(info.min, info.max + 1, dtype=np.float64), low, high)
