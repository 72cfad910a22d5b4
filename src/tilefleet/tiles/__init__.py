"""Where tiles come from: the TTC, UTM and HEALPix grids, AOIs, and tile lists on disk.

Every grid returns a columnar tile set (``len``, ``ids()``, ``columns()``, ``footprints()``,
``tiles()``) that makes ``Tile`` objects only when asked. A grid is one module with a
:class:`Grid` model (see :mod:`tilefleet.tiles.grid`); ``parse_grid_spec`` reads the grid and
area a job file names, and ``select_tiles`` (or the spec's own ``select()``) picks its tiles.

The names below are imported on first use, so that ``import tilefleet.tiles.manifest`` (in
every worker) does not pay for shapely, pyproj, pyarrow and pydantic.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Each public name and the module (below this package) it is imported from on first use.
_EXPORTS = {
    "bbox_geometry": "aoi",
    "parse_bbox": "aoi",
    "read_aoi": "aoi",
    "Grid": "grid",
    "HealpixCellSet": "healpix",
    "HealpixGrid": "healpix",
    "cell_polygons": "healpix",
    "cells_covering": "healpix",
    "children": "healpix",
    "healpix_cells": "healpix",
    "lonlat_to_cell": "healpix",
    "morton_to_nested": "healpix",
    "nested_to_morton": "healpix",
    "output_format": "io",
    "write_tiles": "io",
    "GridSpec": "spec",
    "describe_validation_error": "spec",
    "grid_spec_schema": "spec",
    "parse_grid_spec": "spec",
    "select_tiles": "spec",
    "tiles_from_spec": "spec",
    "Tile": "tile",
    "TileCollection": "tile",
    "TileInputError": "tile",
    "TileDatabase": "ttc",
    "TtcGrid": "ttc",
    "TtcTileSet": "ttc",
    "format_tile_id": "ttc",
    "parse_tile_id": "ttc",
    "ttc_tiles_from_csv": "ttc",
    "ttc_tiles_from_request": "ttc",
    "ttc_tiles_in_aoi": "ttc",
    "ttc_tiles_in_bbox": "ttc",
    "UtmGrid": "utm",
    "UtmPatchSet": "utm",
    "utm_patches": "utm",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
