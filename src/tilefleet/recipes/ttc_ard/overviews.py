"""Coarse reads of a class layer (the Sentinel-2 SCL) from the file's own overviews.

Stage 1 of the ``s2`` product looks at a box 15 tiles wide at 640 m: from a 20 m SCL that
is ~4,700 x 4,700 source pixels a day to decompress for 146 x 146 picked by nearest
neighbour. A COG's overviews hold the same classes already shrunk, so the read takes the
coarsest overview still at least as fine as the grid (as the seed's odc-stac load does),
then nearest-neighbour warps it onto the grid as before.

Only overviews made by nearest neighbour hold true class codes (an averaged overview of
classes is meaningless), so an overview is used only when the file says its overviews
were resampled with NEAREST (the ``OVR_RESAMPLING_ALG`` tag that rio-cogeo writes);
otherwise, and for a file in geographic coordinates, the full resolution is read.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

NEAREST_TAG = ("OVR_RESAMPLING_ALG", "NEAREST")


def class_overview_level(dataset, band: int, resolution: float) -> int | None:
    """The index of the coarsest overview of ``band`` whose pixels are at most
    ``resolution`` (the grid's, in the file's linear units), or None: full resolution."""
    tag, nearest = NEAREST_TAG
    if str(dataset.tags().get(tag, "")).upper() != nearest:
        return None
    if dataset.crs is None or not dataset.crs.is_projected:
        return None
    pixel = max(abs(dataset.transform.a), abs(dataset.transform.e))
    usable = [i for i, f in enumerate(dataset.overviews(band)) if pixel * f <= resolution * 1.001]
    return usable[-1] if usable else None


def read_classes(
    href: str, band: int, grid, sign: Callable[[str], str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(classes, valid) of ``band`` of ``href`` on ``grid`` (a projected grid in metres),
    nearest neighbour, from the coarsest overview that serves it; valid: not the file's
    nodata and inside the file."""
    path = sign(href) if sign else href
    resolution = min(abs(grid.affine.a), abs(grid.affine.e))
    with rasterio.open(path) as dataset:
        level = class_overview_level(dataset, band, resolution)
        nodata = dataset.nodatavals[band - 1]
    options = {} if level is None else {"overview_level": level}
    with (
        rasterio.open(path, **options) as dataset,
        WarpedVRT(
            dataset,
            crs=grid.crs.to_wkt(),
            transform=grid.affine,
            width=grid.shape.x,
            height=grid.shape.y,
            resampling=Resampling.nearest,
            src_nodata=nodata,
            nodata=nodata,
            add_alpha=nodata is None,  # without a nodata value, the alpha says what is covered
        ) as vrt,
    ):
        values = vrt.read(band)
        valid = vrt.read(vrt.count) > 0 if nodata is None else values != nodata
    return values, valid
