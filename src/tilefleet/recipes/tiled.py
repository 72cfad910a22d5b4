"""Recipes planned from a tile grid: one task per tile of an area (see ``tiles/``).

Kept apart from ``recipes.base`` so that a worker running any other recipe does not import
the grids (shapely, pyarrow) it never uses; their parameters (:mod:`.tiled_params`, which
import the grids' specs) are the driver's.
"""

from __future__ import annotations

import itertools
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, overload

from tilefleet.errors import JobError
from tilefleet.recipes.base import Recipe
from tilefleet.task import Task

if TYPE_CHECKING:
    from tilefleet.recipes.tiled_params import TiledParams
    from tilefleet.tiles.tile import Tile, TileCollection


class TileTasks(Sequence[Task]):
    """The tasks of a tile set, one per tile, made on demand: a plan of millions of tiles
    is streamed, never a list (``len`` and indexing work as on one, for a few tasks)."""

    def __init__(self, tiles: TileCollection, task_for: Callable[[Tile], Task]):
        self.tiles, self.task_for = tiles, task_for

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self) -> Iterator[Task]:
        from tilefleet.tiles.tile import TileInputError

        try:  # tiles are made as they are read: a bad one says so as the plan's error
            yield from map(self.task_for, self.tiles.tiles())
        except (TileInputError, OSError) as exc:
            raise JobError(f"tiles: {exc}") from None

    @overload
    def __getitem__(self, index: int) -> Task: ...
    @overload
    def __getitem__(self, index: slice) -> list[Task]: ...
    def __getitem__(self, index: int | slice) -> Task | list[Task]:
        if isinstance(index, slice):
            return list(self)[index]
        position = range(len(self))[index]  # IndexError past the end, negatives counted back
        return next(itertools.islice(iter(self), position, None))


class TiledRecipe(Recipe):
    """A recipe planned from a grid: one task per tile, made by :meth:`task_for`."""

    source_columns = ("tile",)

    def plan(self, params: TiledParams) -> TileTasks:
        """One task per tile, made as the engine reads them (the tiles stay columns)."""
        from tilefleet.tiles.spec import select_tiles
        from tilefleet.tiles.tile import TileInputError

        try:
            tiles = select_tiles(params.tiles)
        except (TileInputError, OSError) as exc:
            raise JobError(f"tiles: {exc}") from None
        if not len(tiles):
            raise JobError(f"tiles: the {params.tiles.grid} grid has no tile in that area")
        return TileTasks(tiles, lambda tile: self.task_for(tile, params))

    @abstractmethod
    def task_for(self, tile: Tile, params: TiledParams) -> Task:
        """The task of one tile."""
