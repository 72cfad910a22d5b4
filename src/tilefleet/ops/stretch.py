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
    nodata: float | None = None,
) -> np.ndarray:
    """Map a (bands, rows, cols) (masked) array to uint8 for a preview image.

    Byte data is kept as it is. Any other type is stretched per band between the given
    (linear) percentiles of its valid pixels (of a sample: see the module) onto 1..255,
    so that valid pixels are never black and 0 is left to mean "no data". Masked,
    ``nodata`` and non-finite pixels become 0. ``nodata`` costs no mask: 8- and 16-bit
    integers map it to 0 in their lookup table, other types are scaled and checked a
    few rows at a time, in cache.
    """
    data = np.ma.getdata(bands)
    mask = np.ma.getmask(bands)
    if not _is_value_of(data.dtype, nodata):
        nodata = None
    if data.dtype == np.uint8:
        out = np.array(data, dtype=np.uint8)
        if mask is not np.ma.nomask:
            out[mask] = 0
        if nodata is not None:
            out[data == nodata] = 0
        return out
    small_integers = data.dtype.kind in "iu" and data.dtype.itemsize <= 2
    out = np.zeros(data.shape, dtype=np.uint8)
    step = sample_step(data.shape[1], data.shape[2], sample_pixels)
    for index in range(data.shape[0]):
        band = data[index]
        band_mask = None if mask is np.ma.nomask else mask[index]
        limits = _band_limits(band, band_mask, nodata, step, percentiles, small_integers)
        if limits is None:  # no valid pixel
            continue
        if small_integers:
            table = _integer_table(band.dtype, *limits)
            if nodata is not None:
                table[int(nodata) - np.iinfo(band.dtype).min] = 0
            np.take(table, _order_index(band), out=out[index], mode="clip")  # no temporary
            if band_mask is not None:
                out[index][band_mask] = 0
        else:
            _scale_rows(band, *limits, out[index], band_mask, nodata)
    return out


def _is_value_of(dtype: np.dtype, nodata: float | None) -> bool:
    """Whether some pixel of ``dtype`` can be ``nodata`` (NaN: floats; else in range)."""
    if nodata is None:
        return False
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(nodata).is_integer() and info.min <= nodata <= info.max
    return dtype.kind == "f"


def _band_limits(
    band: np.ndarray,
    mask: np.ndarray | None,
    nodata: float | None,
    step: int,
    percentiles: tuple[float, float],
    small_integers: bool,
) -> tuple[float, float] | None:
    """The stretch's (low, high) of one band from its sample (the whole band where the
    sample holds no valid pixel); None where the band holds none."""
    for view in (np.s_[::step, ::step], np.s_[:, :]):
        sample = band[view]
        valid = None if mask is None else ~mask[view]
        if small_integers:
            drop = None if nodata is None else int(nodata)
            limits = _integer_percentiles(sample, valid, percentiles, drop=drop)
        else:
            values = _valid_values(sample, valid, nodata)
            limits = None
            if values.size:
                low, high = np.percentile(values.astype(np.float64), percentiles)
                limits = (float(low), float(high))
        if limits is not None or step == 1:
            return limits
        step = 1
    return None


def _valid_values(sample: np.ndarray, valid: np.ndarray | None, nodata: float | None):
    """The values of ``sample`` that are valid (where given), finite and not ``nodata``."""
    keep = valid
    if sample.dtype.kind == "f":
        finite = np.isfinite(sample)
        keep = finite if keep is None else keep & finite
    if nodata is not None and not np.isnan(nodata):
        differs = sample != sample.dtype.type(nodata)
        keep = differs if keep is None else keep & differs
    return sample.ravel() if keep is None else sample[keep]


#: Pixels scaled at a time: a block of rows whose float copy stays in the CPU's cache
#: through the few passes of the scaling, instead of a full-size copy per pass.
CHUNK_PIXELS = 1 << 16


def _scale_rows(
    band: np.ndarray,
    low: float,
    high: float,
    out: np.ndarray,
    mask: np.ndarray | None,
    nodata: float | None,
) -> None:
    """:func:`_scale` of ``band`` into ``out`` (uint8, its shape), a block of rows at a
    time, in float32 for float32 (and smaller) data, whose precision it has anyway, and
    float64 for the rest; masked, ``nodata`` and non-finite pixels 0. Rounds half up
    where :func:`_scale` rounds half to even: a tie moves by one grey level at most."""
    if not high > low:
        out[...] = 128
    work = np.float32 if band.dtype.kind == "f" and band.dtype.itemsize <= 4 else np.float64
    rows = max(1, CHUNK_PIXELS // max(1, band.shape[1]))
    buffer = np.empty((rows, band.shape[1]), dtype=work)
    gain = work(254.0 / (high - low)) if high > low else None
    check_nan = nodata is not None and np.isnan(nodata)
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, band.shape[0], rows):
            chunk = band[start : start + rows]
            target = out[start : start + rows]
            finite = band.dtype.kind != "f"
            if gain is not None:
                scaled = buffer[: len(chunk)]
                np.subtract(chunk, work(low), out=scaled, casting="unsafe")
                scaled *= gain
                scaled += work(1.5)  # 1 + x rounded half up: the cast truncates
                # A non-finite value makes the sum so (a huge one too: then checked below).
                finite = finite or bool(np.isfinite(scaled.sum()))
                np.clip(scaled, 1, 255, out=scaled)
                target[...] = scaled
            bad = None
            if check_nan or not finite and not np.isfinite(chunk).all():
                bad = ~np.isfinite(chunk)
            if nodata is not None and not np.isnan(nodata):
                equal = chunk == chunk.dtype.type(nodata)
                bad = equal if bad is None else bad | equal
            if mask is not None:
                rows_mask = mask[start : start + rows]
                bad = rows_mask if bad is None else bad | rows_mask
            if bad is not None:
                target[bad] = 0


def _scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high > low:
        scaled = 1.0 + (values - low) * (254.0 / (high - low))
    else:
        scaled = np.full(np.shape(values), 128.0)
    return np.clip(np.rint(scaled), 1, 255).astype(np.uint8)


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
    sample: np.ndarray, valid: np.ndarray | None, percentiles, *, drop: int | None = None
) -> tuple[float, float] | None:
    """Exact linear percentiles of the valid values of ``sample`` (those not masked, nor
    ``drop``) from cumulative counts; None where it has none."""
    info = np.iinfo(sample.dtype)
    index = _order_index(sample)
    values = index.ravel() if valid is None else index[valid]
    counts = np.bincount(values, minlength=1 << (8 * sample.dtype.itemsize))
    if drop is not None:
        counts[drop - info.min] = 0
    cumulative = np.cumsum(counts)
    count = int(cumulative[-1])
    if count == 0:
        return None

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
