"""Recipes planned from a tile grid: one task per tile of an area (see ``tiles/``).

Kept apart from ``recipes.base`` so that a worker running any other recipe does not import
the grids (shapely, pyarrow) it never uses.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from tilefleet.errors import JobError
from tilefleet.recipes.base import Recipe, RecipeParams
from tilefleet.store.location import StoreURL
from tilefleet.task import Task
from tilefleet.tiles.spec import GridSpec

if TYPE_CHECKING:
    from tilefleet.tiles.tile import Tile


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


class TiledRecipe(Recipe):
    """A recipe planned from a grid: one task per tile, made by :meth:`task_for`."""

    source_columns = ("tile",)

    def plan(self, params: TiledParams) -> list[Task]:
        from tilefleet.tiles.spec import tiles_from_spec
        from tilefleet.tiles.tile import TileInputError

        try:
            tiles = tiles_from_spec(params.tiles)
        except (TileInputError, OSError) as exc:
            raise JobError(f"tiles: {exc}") from None
        if not tiles:
            raise JobError(f"tiles: the {params.tiles.grid} grid has no tile in that area")
        return [self.task_for(tile, params) for tile in tiles]

    @abstractmethod
    def task_for(self, tile: Tile, params: TiledParams) -> Task:
        """The task of one tile."""
