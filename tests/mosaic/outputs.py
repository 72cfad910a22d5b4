"""The outputs of a mosaic job read back as the loaders see them: a tile-month is its STAC
item and one COG per band, stacked here in the item's band order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio


def outputs(dest: Path, month: str) -> list[Path]:
    """The items of a month's tiles (``{tile}.json``), in tile order."""
    return sorted((dest / f"monthly-mosaic-{month}").glob("*.json"))


def band_files(item_path: Path) -> list[Path]:
    """The COGs of an item's data assets, in band order."""
    item = json.loads(item_path.read_text())
    return [
        item_path.parent / asset["href"]
        for asset in item["assets"].values()
        if "data" in asset["roles"]
    ]


class TileStack:
    """The band COGs of one item opened together, read like one multi-band raster."""

    def __init__(self, item_path: Path):
        self.paths = band_files(item_path)
        self.bands = [rasterio.open(path) for path in self.paths]
        first = self.bands[0]
        self.crs, self.transform, self.res = first.crs, first.transform, first.res
        self.height, self.width, self.nodata = first.height, first.width, first.nodata
        self.dtypes = tuple(band.dtypes[0] for band in self.bands)
        self.descriptions = tuple(band.descriptions[0] for band in self.bands)
        for band in self.bands:
            assert band.count == 1 and (band.transform, band.crs) == (self.transform, self.crs)

    def read(self, index: int | None = None) -> np.ndarray:
        if index is not None:
            return self.bands[index - 1].read(1)
        return np.stack([band.read(1) for band in self.bands])

    def __enter__(self) -> TileStack:
        return self

    def __exit__(self, *exc) -> None:
        for band in self.bands:
            band.close()
