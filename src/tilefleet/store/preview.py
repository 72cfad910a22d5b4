"""JPEG previews of rasters: grey for one band, RGB from three, 8-bit whatever the input;
a categorical band (a colour table, or few distinct integer values: an SCL band, a class
map) in colours, one per class."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from tilefleet.errors import PermanentError
from tilefleet.ops.colormap import class_colours, is_categorical
from tilefleet.ops.stretch import sample_step, to_display_bytes


def preview_bands(count: int, requested: list[int] | None = None) -> list[int]:
    """The 1-based bands a preview shows: 1 → grey, 2 → band 1, 3+ → the first three."""
    if requested:
        if len(requested) not in (1, 3):
            raise PermanentError(f"preview bands must be 1 or 3 bands, got {requested}")
        missing = [band for band in requested if not 1 <= band <= count]
        if missing:
            raise PermanentError(f"preview band(s) {missing} not in a {count}-band raster")
        return list(requested)
    return [1] if count < 3 else [1, 2, 3]


def preview_shape(height: int, width: int, max_size: int | None) -> tuple[int, int]:
    """Output (rows, cols) keeping the aspect ratio with the longer side at most ``max_size``."""
    if not max_size or max(height, width) <= max_size:
        return height, width
    scale = max_size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def write_preview(
    src: str,
    dst: Path,
    *,
    bands: list[int] | None = None,
    max_size: int | None = None,
    quality: int = 75,
) -> tuple[int, int]:
    """Write a JPEG preview of ``src`` to local path ``dst``; return its (rows, cols).

    Reading at the preview size lets GDAL use the COG's overviews, so a capped preview of
    a large raster reads little.
    """
    with rasterio.open(src) as ds:
        indexes = preview_bands(ds.count, bands)
        rows, cols = preview_shape(ds.height, ds.width, max_size)
        data = ds.read(
            indexes,
            out_shape=(len(indexes), rows, cols),
            masked=True,
            resampling=Resampling.nearest,
        )
        table = colour_table(ds, indexes[0]) if len(indexes) == 1 else None
    _write_jpeg(dst, _display_image(data, table), quality)
    return rows, cols


def write_preview_of(
    pixels: np.ndarray,
    dst: Path,
    *,
    nodata: float | None = None,
    bands: list[int] | None = None,
    max_size: int | None = None,
    quality: int = 75,
    colour_tables: Mapping[int, dict[int, tuple[int, ...]]] | None = None,
) -> tuple[int, int]:
    """Write a JPEG preview of ``pixels`` (all the bands of a raster, already in memory,
    valid where they differ from ``nodata``) to local path ``dst``; return its (rows,
    cols). ``colour_tables`` maps 1-based bands to their colour tables (see
    :func:`colour_table`). A capped preview takes the nearest pixels, as GDAL's nearest
    resampling does."""
    count, height, width = pixels.shape
    indexes = preview_bands(count, bands)
    rows, cols = preview_shape(height, width, max_size)
    first = indexes[0] - 1
    if indexes == list(range(indexes[0], indexes[0] + len(indexes))):
        data = pixels[first : first + len(indexes)]  # a view: no copy of the bands
    else:
        data = pixels[[index - 1 for index in indexes]]
    if (rows, cols) != (height, width):
        data = data[:, _nearest(height, rows)][:, :, _nearest(width, cols)]
    table = (colour_tables or {}).get(indexes[0]) if len(indexes) == 1 else None
    _write_jpeg(dst, _display_image(data, table, nodata), quality)
    return rows, cols


def _display_image(
    data: np.ma.MaskedArray | np.ndarray, table, nodata: float | None = None
) -> np.ndarray:
    """(bands, rows, cols) uint8 of (masked) ``data``, invalid where masked or
    ``nodata``: class colours for a categorical single integer band, else the stretch. A
    sample with more classes than a class band has settles it without counting the
    values of the whole band (nor masking it)."""
    if len(data) == 1 and data.dtype.kind in "iub":
        step = sample_step(*data.shape[1:])
        sample = _masked(data[0, ::step, ::step], nodata)
        has_table = table is not None
        may_be = step == 1 or sample.count() == 0 or is_categorical(sample, has_table=has_table)
        if may_be:
            band = _masked(data[0], nodata)
            if is_categorical(band, has_table=has_table):
                return class_colours(band, table)
    return to_display_bytes(data, nodata=nodata)


def _masked(band: np.ma.MaskedArray | np.ndarray, nodata: float | None) -> np.ma.MaskedArray:
    """``band`` masked where it is masked already or holds ``nodata``."""
    band = np.ma.asarray(band)
    if nodata is None or np.isnan(nodata):
        return band
    data = np.ma.getdata(band)  # a new mask: never the caller's, which stays as it is
    return np.ma.masked_array(data, np.ma.getmaskarray(band) | (data == nodata))


def _nearest(size: int, out_size: int) -> np.ndarray:
    """Indexes of the ``out_size`` pixels nearest to the centres of an even resampling."""
    return np.minimum(((np.arange(out_size) + 0.5) * (size / out_size)).astype(np.int64), size - 1)


def colour_table(ds, band: int) -> dict[int, tuple[int, ...]] | None:
    """The band's colour table (value -> RGBA), None when it has none."""
    try:
        return ds.colormap(band)
    except ValueError:
        return None


def _write_jpeg(dst: Path, image: np.ndarray, quality: int) -> None:
    """Encode (bands, rows, cols) uint8 as a baseline JPEG with Pillow (libjpeg-turbo):
    about five times faster than GDAL's JPEG driver, which first copies through memory.
    Three bands are merged by Pillow, much faster than interleaving them in numpy."""
    from PIL import Image

    if image.shape[0] == 1:
        picture = Image.fromarray(np.ascontiguousarray(image[0]))
    else:
        picture = Image.merge("RGB", [Image.fromarray(np.ascontiguousarray(b)) for b in image])
    picture.save(dst, format="JPEG", quality=quality)
