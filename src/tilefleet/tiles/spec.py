"""``GridSpec``: the grid and area a job file names, and the tiles it stands for.

Each grid is its own model, next to its code (see :mod:`tilefleet.tiles.grid`); this module
only joins the registered ones into one type, told apart by their ``grid`` key.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any, Union

from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from tilefleet.tiles.grid import Grid, registered_grids
from tilefleet.tiles.tile import Tile, TileCollection


def _known_grid(value: Any) -> Any:
    """A mapping must name a registered grid; one line naming the known ones otherwise."""
    if isinstance(value, Mapping):
        names = list(registered_grids())
        name = value.get("grid")
        if name not in names:
            what = "no grid given" if name is None else "unknown grid {name}"
            raise PydanticCustomError(
                "unknown_grid",
                what + "; known: {known}",
                {"name": repr(name), "known": ", ".join(names)},
            )
    return value


@functools.cache
def grid_spec_type() -> Any:
    """``Annotated[Union[<every registered grid>], Field(discriminator="grid")]``."""
    grids = tuple(registered_grids().values())
    if not grids:
        raise RuntimeError("no tile grid is registered: is tilefleet installed (pip install -e .)?")
    union = Union[grids]  # noqa: UP007 (the members are known only at run time)
    if len(grids) == 1:  # a union of one is that grid, which takes no discriminator
        return Annotated[union, BeforeValidator(_known_grid)]
    return Annotated[union, Field(discriminator="grid"), BeforeValidator(_known_grid)]


#: The type of a job file's ``tiles:`` (a field annotation: ``tiles: GridSpec``).
GridSpec = grid_spec_type()


@functools.cache
def _adapter() -> TypeAdapter:
    return TypeAdapter(GridSpec)


def parse_grid_spec(mapping: Mapping[str, Any]) -> Grid:
    """The grid ``mapping`` names (``{"grid": "utm", "aoi": ..., "size": ...}``), validated;
    ``ValidationError`` otherwise (:func:`describe_validation_error` words it)."""
    return _adapter().validate_python(mapping)


def grid_spec_schema() -> dict[str, Any]:
    """The JSON Schema of a grid spec: one alternative per registered grid."""
    return _adapter().json_schema()


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each problem of a grid spec (for CLI messages and logs)."""
    grids = registered_grids()
    problems = []
    for item in error.errors():
        loc = item["loc"]
        if loc and loc[0] in grids:  # the tag pydantic puts first: the grid the input names
            loc = loc[1:]
        where = ".".join(str(part) for part in loc)
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def select_tiles(spec: Grid) -> TileCollection:
    """The tiles ``spec`` stands for, as a columnar set (``len``, ``ids()``, ``tiles()``, ...)."""
    return spec.select()


def tiles_from_spec(spec: Grid) -> list[Tile]:
    """The tiles ``spec`` stands for, as ``Tile`` objects (for planning one task per tile)."""
    return spec.tile_list()
