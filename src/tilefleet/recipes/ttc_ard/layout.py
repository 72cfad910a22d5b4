"""Where the outputs of a ``ttc-ard`` job lie below its destination, named in one place.

Per tile and year, in ``{dest}/{year}/{X_tile}/{Y_tile}/``:

- ``dem.tif``: slope in degrees, float32 COG (EPSG:4326, 1/3 arc-second);
- ``s1.tif``: Sentinel-1 quarterly composites, uint16 COG, bands VV_Q1..VV_Q4, VH_Q1..VH_Q4;
- ``s2.zarr/``: the cloud-screened Sentinel-2 series, Zarr v3 with a ``time`` coordinate;
- ``{product}.json``: each product's STAC item, written last: its done marker.

With ``format: hkl`` the seed pipeline's hickle files, in its folders, below
``{dest}/{year}/raw/{X_tile}/{Y_tile}/raw/`` (``misc/dem_{tile}.hkl``, ``s1/{tile}.hkl``,
``s2_10/{tile}.hkl``... see :data:`HKL_FILES`), with each product's item beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The columns of a task's source row: tasks.csv and failed.csv carry them, so failed.csv
#: is a tiles CSV that ttc-ard and ``tilefleet tiles ttc --tiles`` take back.
SOURCE_COLUMNS = ("product", "Year", "X", "Y", "Y_tile", "X_tile")
DATA_SUFFIX = {"dem": ".tif", "s1": ".tif", "s2": ".zarr"}
ITEM_SUFFIX = ".json"
#: The seed's hickle files of each product: array name -> path below the tile's raw folder
#: (``{tile}`` is ``{X_tile}X{Y_tile}Y``).
HKL_FILES = {
    "dem": {"dem": "misc/dem_{tile}.hkl"},
    "s1": {"s1": "s1/{tile}.hkl", "s1_dates": "misc/s1_dates_{tile}.hkl"},
    "s2": {
        "s2_10": "s2_10/{tile}.hkl",
        "s2_20": "s2_20/{tile}.hkl",
        "s2_dates": "misc/s2_dates_{tile}.hkl",
        "cloudmask": "clouds/cloudmask_{tile}.hkl",
        "clean_steps": "clouds/clean_steps_{tile}.hkl",
        "clouds": "clouds/clouds_{tile}.hkl",
    },
}


@dataclass(frozen=True)
class TileYearKeys:
    """The keys of one product of one tile and year, and the task's id."""

    product: str
    year: int
    x_tile: int
    y_tile: int
    format: str = "native"  # or "hkl": the seed's hickle files and folders

    @property
    def tile_id(self) -> str:
        return f"{self.x_tile}X{self.y_tile}Y"

    @property
    def task_id(self) -> str:
        """``{product}/{year}/{X_tile}X{Y_tile}Y``: unique per product, year and tile."""
        return f"{self.product}/{self.year}/{self.tile_id}"

    @property
    def folder(self) -> str:
        if self.format == "hkl":
            return f"{self.year}/raw/{self.x_tile}/{self.y_tile}/raw"
        return f"{self.year}/{self.x_tile}/{self.y_tile}"

    def hkl_files(self) -> dict[str, str]:
        """The product's hickle files: array name -> path relative to :attr:`folder`."""
        return {
            name: path.format(tile=self.tile_id) for name, path in HKL_FILES[self.product].items()
        }

    @property
    def data_key(self) -> str:
        return f"{self.folder}/{self.product}{DATA_SUFFIX[self.product]}"

    @property
    def item_key(self) -> str:
        return f"{self.folder}/{self.product}{ITEM_SUFFIX}"

    @property
    def item_id(self) -> str:
        return f"{self.tile_id}-{self.year}-{self.product}"

    @property
    def data_href(self) -> str:
        """The data's href relative to the item (they share a folder)."""
        return f"./{self.product}{DATA_SUFFIX[self.product]}"
