"""``GridSpec``: the grid and area a job file names, and the tiles it stands for."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tilefleet.tiles.aoi import bbox_geometry, parse_bbox, read_aoi
from tilefleet.tiles.healpix import MAX_ORDER, healpix_cells
from tilefleet.tiles.tile import Tile, TileCollection, TileInputError
from tilefleet.tiles.ttc import (
    TileDatabase,
    ttc_tiles_from_csv,
    ttc_tiles_from_request,
    ttc_tiles_in_aoi,
    ttc_tiles_in_bbox,
)
from tilefleet.tiles.utm import utm_patches

AREA_FIELDS = ("bbox", "aoi", "request", "tiles")
# Which settings each grid takes, besides exactly one area field.
_GRID_AREAS = {"ttc": AREA_FIELDS, "utm": ("bbox", "aoi"), "healpix": ("bbox", "aoi")}
_GRID_SETTINGS = {"ttc": ("tiledb", "year"), "utm": ("size", "buffer"), "healpix": ("order",)}
_REQUIRED = {"ttc": ("tiledb",), "utm": ("size",), "healpix": ("order",)}


class GridSpec(BaseModel):
    """Where tiles come from: a grid plus exactly one area.

    - ``ttc``: ``tiledb`` (parquet) and one of ``bbox``, ``aoi``, ``request``, ``tiles``;
      ``year`` gives area tiles a year, or keeps only that year of a request/tiles CSV.
    - ``utm``: ``size`` (metres, > 0), optional ``buffer`` (metres), ``bbox`` or ``aoi``.
    - ``healpix``: ``order`` (0..29), ``bbox`` or ``aoi``.

    ``bbox`` is ``[W, S, E, N]`` in lon/lat (or ``"W,S,E,N"``); paths are used as given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    grid: Literal["ttc", "utm", "healpix"]
    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="lon/lat W,S,E,N; W > E crosses the antimeridian"
    )
    aoi: Path | None = Field(default=None, description="GeoJSON file, any CRS")
    request: Path | None = Field(default=None, description="TTC request JSON")
    tiles: Path | None = Field(default=None, description="TTC tiles CSV (Year,X,Y,Y_tile,X_tile)")
    tiledb: Path | None = Field(default=None, description="TTC tile database parquet")
    year: int | None = Field(default=None, ge=1900, le=2200)
    size: float | None = Field(default=None, gt=0, description="UTM patch size, metres")
    buffer: float | None = Field(default=None, ge=0, description="UTM patch overlap, metres")
    order: int | None = Field(default=None, ge=0, le=MAX_ORDER, description="HEALPix order")

    @field_validator("bbox", mode="before")
    @classmethod
    def _parse_bbox(cls, value: object) -> object:
        """Accept ``"W,S,E,N"`` or four numbers, with one clear message for anything else."""
        if value is None:
            return None
        try:
            return parse_bbox(value)
        except TileInputError as exc:
            raise ValueError(str(exc)) from exc
        except TypeError as exc:
            raise ValueError(f"bbox needs 4 numbers W,S,E,N, got {value!r}") from exc

    @model_validator(mode="after")
    def _check_grid_fields(self) -> GridSpec:
        areas = [name for name in AREA_FIELDS if getattr(self, name) is not None]
        allowed = _GRID_AREAS[self.grid]
        if len(areas) != 1:
            given = ", ".join(areas) if areas else "none"
            raise ValueError(
                f"{self.grid} grid needs exactly one of {', '.join(allowed)} (given: {given})"
            )
        if areas[0] not in allowed:
            raise ValueError(
                f"{areas[0]} is not an area for the {self.grid} grid; use {' or '.join(allowed)}"
            )
        for grid, settings in _GRID_SETTINGS.items():
            if grid == self.grid:
                continue
            stray = [s for s in settings if getattr(self, s) is not None]
            if stray:
                raise ValueError(
                    f"{', '.join(stray)} only applies to the {grid} grid, not {self.grid}"
                )
        missing = [s for s in _REQUIRED[self.grid] if getattr(self, s) is None]
        if missing:
            raise ValueError(f"{self.grid} grid needs {', '.join(missing)}")
        return self


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each problem of a ``GridSpec`` (for CLI messages and logs)."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def select_tiles(spec: GridSpec) -> TileCollection:
    """The tiles ``spec`` stands for, as a columnar set (``len``, ``ids()``, ``tiles()``, ...)."""
    if spec.grid == "ttc":
        database = TileDatabase.open(spec.tiledb)
        if spec.bbox is not None:
            return ttc_tiles_in_bbox(database, spec.bbox, spec.year)
        if spec.aoi is not None:
            return ttc_tiles_in_aoi(database, read_aoi(spec.aoi), spec.year)
        if spec.request is not None:
            return ttc_tiles_from_request(database, spec.request, spec.year)
        return ttc_tiles_from_csv(database, spec.tiles, spec.year)
    area = bbox_geometry(spec.bbox) if spec.bbox is not None else read_aoi(spec.aoi)
    if spec.grid == "utm":
        return utm_patches(area, spec.size, spec.buffer or 0.0)
    return healpix_cells(area, spec.order)


def tiles_from_spec(spec: GridSpec) -> list[Tile]:
    """The tiles ``spec`` stands for, as ``Tile`` objects (for planning one task per tile)."""
    return list(select_tiles(spec).tiles())
