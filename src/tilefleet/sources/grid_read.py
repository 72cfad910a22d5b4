"""Reading raster bands onto a tile's pixel grid, strip by strip.

Each source file is opened once per task and read one strip of rows at a time, so memory
follows the strip, not the tile. A source already on the tile's pixel lattice (same CRS
and resolution, offset by whole pixels: the usual case for a tile grid that matches the
inputs) is read by window, with no resampling. So is a source whose pixels are a whole
number of grid pixels wide on the same lattice (Sentinel-2's 20 m bands and SCL on a 10 m
grid) when resampling is nearest: each source pixel is repeated, which is exactly what
nearest-neighbour warping gives, without a warper. Any other is warped onto the grid with
a GDAL warped VRT. The valid mask comes from the source's nodata (or the one its STAC item
declares) and from the source's footprint: pixels it does not cover are invalid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

# Offsets within this fraction of a pixel count as whole pixels (float noise in transforms).
_LATTICE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class BandSource:
    """One band of one input: a GDAL-readable href, its 1-based band index in that file, and
    the nodata value to use when the file declares none."""

    href: str
    band: int = 1
    nodata: float | None = None


class GridReader:
    """Reads :class:`BandSource` strips onto ``geobox``; a context manager closing every file.

    ``sign`` rewrites an href right before it is opened (a pre-signed URL for a store that
    needs one), so a signature is never older than the read it serves.
    """

    def __init__(self, geobox: GeoBox, *, sign: Callable[[str], str] | None = None):
        self.geobox = geobox
        self.sign = sign
        self._files: dict[str, rasterio.DatasetReader] = {}
        self._views: dict[tuple[str, float | None, Resampling], _View] = {}

    def __enter__(self) -> GridReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for view in self._views.values():
            view.close()
        for dataset in self._files.values():
            dataset.close()
        self._views.clear()
        self._files.clear()

    def dtype(self, source: BandSource) -> np.dtype:
        return np.dtype(self._open(source.href).dtypes[source.band - 1])

    def nodata(self, source: BandSource) -> float | None:
        """The nodata value of ``source``: the file's own, else the declared one."""
        declared = self._open(source.href).nodatavals[source.band - 1]
        return declared if declared is not None else source.nodata

    def read(
        self, source: BandSource, rows: slice, resampling: Resampling = Resampling.nearest
    ) -> tuple[np.ndarray, np.ndarray]:
        """(values, valid) for the grid rows ``rows``, each of shape (len(rows), grid width)."""
        nodata = self.nodata(source)
        key = (source.href, nodata, resampling)
        view = self._views.get(key)
        if view is None:
            view = _View(self._open(source.href), self.geobox, nodata, resampling)
            self._views[key] = view
        return view.read(source.band, rows)

    def _open(self, href: str) -> rasterio.DatasetReader:
        dataset = self._files.get(href)
        if dataset is None:
            dataset = self._files[href] = rasterio.open(self.sign(href) if self.sign else href)
        return dataset


class _View:
    """One source seen on the grid: a window offset on the same lattice, or a warped VRT."""

    def __init__(self, dataset, geobox: GeoBox, nodata: float | None, resampling: Resampling):
        self.dataset = dataset
        self.width = geobox.shape.x
        self.nodata = nodata
        self.lattice = _lattice(dataset, geobox)
        if self.lattice is not None and self.lattice[0] > 1 and resampling != Resampling.nearest:
            self.lattice = None  # coarser pixels need a real resampling
        self.vrt = None
        if self.lattice is None:
            self.vrt = WarpedVRT(
                dataset,
                crs=geobox.crs.to_wkt(),
                transform=geobox.affine,
                width=geobox.shape.x,
                height=geobox.shape.y,
                resampling=resampling,
                src_nodata=nodata,
                nodata=nodata,
                # Without a nodata value, an alpha band tells covered pixels from the rest.
                add_alpha=nodata is None,
            )

    def close(self) -> None:
        if self.vrt is not None:
            self.vrt.close()

    def read(self, band: int, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        height = rows.stop - rows.start
        if self.vrt is not None:
            window = Window(0, rows.start, self.width, height)
            values = self.vrt.read(band, window=window)
            if self.nodata is None:
                valid = self.vrt.read(self.vrt.count, window=window) > 0
            else:
                valid = _not_nodata(values, self.nodata)
            return values, valid
        factor, col, row = self.lattice
        if factor == 1:
            window = Window(col, row + rows.start, self.width, height)
            return _read_boundless(self.dataset, band, window, self.nodata)
        # Grid pixels [first, first + n) lie in source pixels [first // f, ceil(... / f)).
        top, left = row + rows.start, col
        r0, c0 = top // factor, left // factor
        r1, c1 = -(-(top + height) // factor), -(-(left + self.width) // factor)
        values, valid = _read_boundless(
            self.dataset, band, Window(c0, r0, c1 - c0, r1 - r0), self.nodata
        )
        pick_rows = np.arange(top, top + height) // factor - r0
        pick_cols = np.arange(left, left + self.width) // factor - c0
        return values[np.ix_(pick_rows, pick_cols)], valid[np.ix_(pick_rows, pick_cols)]


def _read_boundless(
    dataset, band: int, window: Window, nodata: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """A window that may reach past the file's edges: outside pixels are invalid."""
    dtype = dataset.dtypes[band - 1]
    fill = nodata if nodata is not None else 0
    values = np.full((window.height, window.width), fill, dtype=dtype)
    valid = np.zeros((window.height, window.width), dtype=bool)
    inside = (
        window.intersection(Window(0, 0, dataset.width, dataset.height))
        if _overlaps(window, dataset)
        else None
    )
    if inside is not None:
        r0, c0 = inside.row_off - window.row_off, inside.col_off - window.col_off
        target = (slice(r0, r0 + inside.height), slice(c0, c0 + inside.width))
        values[target] = dataset.read(band, window=inside)
        valid[target] = True if nodata is None else _not_nodata(values[target], nodata)
    return values, valid


def _overlaps(window: Window, dataset) -> bool:
    return (
        window.col_off < dataset.width
        and window.row_off < dataset.height
        and window.col_off + window.width > 0
        and window.row_off + window.height > 0
    )


def _not_nodata(values: np.ndarray, nodata: float) -> np.ndarray:
    if math.isnan(nodata):
        return ~np.isnan(values)
    valid = values != nodata
    if values.dtype.kind == "f":
        valid &= np.isfinite(values)
    return valid


def _lattice(dataset, geobox: GeoBox) -> tuple[int, int, int] | None:
    """(factor, col, row) when the grid and ``dataset`` share a pixel lattice: same CRS,
    north-up, source pixels ``factor`` (a whole number) grid pixels wide, grid origin on a
    grid-pixel edge of the source; (col, row) is the grid's top-left pixel counted in grid
    pixels from the source's origin. None otherwise."""
    if dataset.crs is None or dataset.crs != rasterio.crs.CRS.from_wkt(geobox.crs.to_wkt()):
        return None
    src, dst = dataset.transform, geobox.affine
    if src.b or src.d or dst.b or dst.d or src.a <= 0 or src.e >= 0:
        return None
    factor = src.a / dst.a
    if abs(factor - round(factor)) > _LATTICE_TOLERANCE or round(factor) < 1:
        return None
    if not math.isclose(src.e / dst.e, factor):
        return None
    col, row = (dst.c - src.c) / dst.a, (dst.f - src.f) / dst.e
    if abs(col - round(col)) > _LATTICE_TOLERANCE or abs(row - round(row)) > _LATTICE_TOLERANCE:
        return None
    return round(factor), round(col), round(row)
