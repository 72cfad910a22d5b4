"""The base of every tile grid: the settings a job file's ``tiles:`` gives it, and its tiles.

Adding a grid is one module plus one line. The module holds a :class:`Grid` subclass next to
the code of that grid: it narrows ``grid`` to its name, declares its settings as plain
pydantic fields (type, default, description: job-file keys, ``tilefleet tiles <name>``
options and the JSON Schema are all made from them) and selects its tiles::

    class HexGrid(Grid):
        \"\"\"Hexagons of size km covering bbox or aoi.\"\"\"

        grid: Annotated[Literal["hex"], Cli(hidden=True)] = "hex"
        size: float = Field(gt=0, description="Hexagon width, km.")

        def select(self) -> HexCellSet:
            return hex_cells(self.area_geometry(), self.size)

The line is its entry point, in ``pyproject.toml`` (tilefleet's own, or your package's)::

    [project.entry-points."tilefleet.grids"]
    hex = "mypackage.hex:HexGrid"

Nothing else changes: ``GridSpec``, ``parse_grid_spec`` and the command line find it in the
registry. ``bbox`` and ``aoi`` come from the base; a grid with areas of its own (TTC's
``request``) declares them as fields and names them all in ``area_fields``.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator
from shapely.geometry.base import BaseGeometry

from tilefleet import plugins
from tilefleet.fields import Cli
from tilefleet.tiles.aoi import LonLatBox, bbox_geometry, read_aoi
from tilefleet.tiles.tile import Tile, TileCollection, TileInputError


def _grid_is_required(schema: dict[str, Any]) -> None:
    """A job file names its grid (the default of ``grid`` is for Python callers)."""
    required = schema.setdefault("required", [])
    if "grid" not in required:
        required.insert(0, "grid")


class Grid(BaseModel):
    """Where tiles come from: a grid, its settings and exactly one area."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_grid_is_required)

    #: The fields that name an area: a spec gives exactly one of them.
    area_fields: ClassVar[tuple[str, ...]] = ("bbox", "aoi")

    grid: Annotated[str, Cli(hidden=True)] = Field(
        description="The grid's name; each grid narrows it to Literal['<name>']"
    )
    bbox: Annotated[LonLatBox | None, Cli(metavar="W,S,E,N")] = Field(
        default=None, description="Lon/lat W,S,E,N (W > E crosses the antimeridian)."
    )
    aoi: Path | None = Field(default=None, description="GeoJSON AOI, any CRS.")

    @model_validator(mode="before")
    @classmethod
    def _check_keys_given(cls, data: Any) -> Any:
        """Keys of another grid, areas given, settings missing: one message saying which."""
        if isinstance(data, Mapping):
            given = [key for key, value in data.items() if value is not None]
            problem = cls._other_grids_key(given) or cls._area_problem(given) or cls._missing(given)
            if problem:
                raise ValueError(problem)
        return data

    @classmethod
    def grid_name(cls) -> str:
        """The grid's name: the one value its ``grid`` field may take."""
        annotation = cls.model_fields["grid"].annotation
        values = get_args(annotation) if get_origin(annotation) is Literal else ()
        if len(values) != 1:
            raise TypeError(f"{cls.__qualname__} must narrow grid to Literal['<name>']")
        return values[0]

    @classmethod
    def _other_grids_key(cls, given: Collection[object]) -> str | None:
        """A key that is no field here but one of another registered grid (else pydantic's
        "extra inputs are not permitted" says it)."""
        for key in given:
            if key in cls.model_fields:
                continue
            owners = [grid for grid in registered_grids().values() if key in grid.model_fields]
            if any(key in grid.area_fields for grid in owners):
                return (
                    f"{key} is not an area for the {cls.grid_name()} grid; "
                    f"use {' or '.join(cls.area_fields)}"
                )
            if owners:
                names = " or ".join(grid.grid_name() for grid in owners)
                return f"{key} only applies to the {names} grid, not {cls.grid_name()}"
        return None

    @classmethod
    def _area_problem(cls, given: Collection[object]) -> str | None:
        areas = [name for name in cls.area_fields if name in given]
        if len(areas) == 1:
            return None
        return (
            f"{cls.grid_name()} grid needs exactly one of {', '.join(cls.area_fields)} "
            f"(given: {', '.join(areas) or 'none'})"
        )

    @classmethod
    def _missing(cls, given: Collection[object]) -> str | None:
        missing = [
            name
            for name, info in cls.model_fields.items()
            if info.is_required() and name not in given
        ]
        return f"{cls.grid_name()} grid needs {', '.join(missing)}" if missing else None

    @abstractmethod
    def select(self) -> TileCollection:
        """The grid's tiles over the area, as a columnar set (``len``, ``ids()``, ``tiles()``)."""

    def tile_list(self) -> list[Tile]:
        """The grid's tiles over the area, as ``Tile`` objects (for one task per tile)."""
        return list(self.select().tiles())

    def area_geometry(self) -> BaseGeometry:
        """The ``bbox`` or ``aoi`` as a lon/lat geometry (for grids whose areas are those)."""
        if self.bbox is not None:
            return bbox_geometry(self.bbox)
        if self.aoi is not None:
            return read_aoi(self.aoi)
        raise TileInputError(f"the {self.grid} grid was given no bbox or aoi")


@functools.cache
def registered_grids() -> dict[str, type[Grid]]:
    """Every grid of the registry (entry points ``tilefleet.grids``) by name, loaded once."""
    grids = {}
    for name in plugins.names(plugins.GRIDS):
        grid = plugins.load(plugins.GRIDS, name, Grid)
        if grid.grid_name() != name:
            raise plugins.UnknownPluginError(
                f"grid {name!r} ({plugins.reference_of(grid)}) calls itself {grid.grid_name()!r}"
            )
        grids[name] = grid
    return grids
