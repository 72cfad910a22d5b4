"""The parameters every recipe planned from a tile grid has: the grid and area, and where
the outputs go. A model of the driver's (see :class:`~tilefleet.recipes.base.ParamsModel`):
it imports the grids' specs and pydantic, which a worker of such a recipe never needs."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from tilefleet.recipes.params import RecipeParams
from tilefleet.store.location import StoreURL
from tilefleet.tiles.spec import GridSpec


class TiledParams(RecipeParams):
    """Parameters of a recipe that runs one task per tile of a grid over an area."""

    path_fields: ClassVar[tuple[str, ...]] = (
        "dest",
        "tiles.aoi",
        "tiles.request",
        "tiles.tiles",
        "tiles.tiledb",
    )

    tiles: GridSpec = Field(description="The grid and the area (or tile list) to cover")
    dest: StoreURL = Field(description="Folder or s3:// prefix the outputs go to")
