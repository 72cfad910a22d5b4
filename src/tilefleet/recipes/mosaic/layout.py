"""Where the outputs of a ``mosaic`` job lie below its destination, named in one place:

- ``catalog.json``: the root STAC catalog (the EO Application Package's entry point),
  linking the collection;
- ``collection.json``: the STAC collection, linking every item;
- ``monthly-mosaic-YYYY-MM/{tile}-{band}.tif``: the median COG of one band of a tile and
  month (one file per band, as Earth Search publishes Sentinel-2, so that odc-stac and
  stackstac load each by name);
- ``monthly-mosaic-YYYY-MM/{tile}-visual.tif``: its 8-bit RGBA rendering (``visual``);
- ``monthly-mosaic-YYYY-MM/{tile}.json``: its STAC item, the task's done marker.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

OUTPUT_PREFIX = "monthly-mosaic-"
CATALOG_KEY = "catalog.json"
COLLECTION_KEY = "collection.json"
#: The collection's and the root catalog's hrefs as an item links them (one folder below).
COLLECTION_HREF_FROM_ITEM = f"../{COLLECTION_KEY}"
CATALOG_HREF_FROM_ITEM = f"../{CATALOG_KEY}"
# What follows the tile id in the name of each file of a tile-month.
VISUAL_SUFFIX = "-visual.tif"
ITEM_SUFFIX = ".json"


def band_suffix(band: str) -> str:
    """What follows the tile id in the name of the COG of ``band``."""
    return f"-{band}.tif"


@dataclass(frozen=True)
class TileMonthKeys:
    """The keys of the outputs of one tile and month, and the hrefs its item links them by."""

    folder: str
    tile_id: str

    @classmethod
    def of(cls, tile_id: str, month_label: str) -> TileMonthKeys:
        return cls(f"{OUTPUT_PREFIX}{month_label}", tile_id)

    @classmethod
    def of_task(cls, task_id: str) -> TileMonthKeys:
        """The keys of the task whose id is ``task_id`` (see :attr:`task_id`)."""
        folder, tile_id = posixpath.split(task_id)
        return cls(folder, tile_id)

    @property
    def task_id(self) -> str:
        return self.key("")

    @property
    def item_id(self) -> str:
        return f"{self.folder}-{self.tile_id}"

    def key(self, suffix: str) -> str:
        """The key of the file named by ``suffix`` (:func:`band_suffix`…) below the destination."""
        return f"{self.folder}/{self.tile_id}{suffix}"

    def href(self, suffix: str) -> str:
        """The href of that file relative to the item, which lies in the same folder."""
        return f"./{self.tile_id}{suffix}"
