"""Where tiles come from: the TTC, UTM and HEALPix grids, AOIs, and tile lists on disk.

Every grid returns a columnar tile set (``len``, ``ids()``, ``columns()``, ``footprints()``,
``tiles()``) that makes ``Tile`` objects only when asked; ``select_tiles(GridSpec)`` picks the
grid and area a job file names.

The names below are imported on first use, so that ``import tilefleet.tiles.manifest`` (in
every worker) does not pay for shapely, pyproj, pyarrow and pydantic.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "tilefleet.tiles.aoi": ("bbox_geometry", "parse_bbox", "read_aoi"),
    "tilefleet.tiles.healpix": (
        "HealpixCellSet",
        "cell_polygons",
        "cells_covering",
        "children",
        "healpix_cells",
        "lonlat_to_cell",
        "morton_to_nested",
        "nested_to_morton",
    ),
    "tilefleet.tiles.io": ("output_format", "write_tiles"),
    "tilefleet.tiles.spec": (
        "GridSpec",
        "describe_validation_error",
        "select_tiles",
        "tiles_from_spec",
    ),
    "tilefleet.tiles.tile": ("Tile", "TileCollection", "TileInputError"),
    "tilefleet.tiles.ttc": (
        "TileDatabase",
        "TtcTileSet",
        "format_tile_id",
        "parse_tile_id",
        "ttc_tiles_from_csv",
        "ttc_tiles_from_request",
        "ttc_tiles_in_aoi",
        "ttc_tiles_in_bbox",
    ),
    "tilefleet.tiles.utm": ("UtmPatchSet", "utm_patches"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "GridSpec",
    "HealpixCellSet",
    "Tile",
    "TileCollection",
    "TileDatabase",
    "TileInputError",
    "TtcTileSet",
    "UtmPatchSet",
    "bbox_geometry",
    "cell_polygons",
    "cells_covering",
    "children",
    "describe_validation_error",
    "format_tile_id",
    "healpix_cells",
    "lonlat_to_cell",
    "morton_to_nested",
    "nested_to_morton",
    "output_format",
    "parse_bbox",
    "parse_tile_id",
    "read_aoi",
    "select_tiles",
    "tiles_from_spec",
    "ttc_tiles_from_csv",
    "ttc_tiles_from_request",
    "ttc_tiles_in_aoi",
    "ttc_tiles_in_bbox",
    "utm_patches",
    "write_tiles",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from tilefleet.tiles.aoi import bbox_geometry, parse_bbox, read_aoi
    from tilefleet.tiles.healpix import (
        HealpixCellSet,
        cell_polygons,
        cells_covering,
        children,
        healpix_cells,
        lonlat_to_cell,
        morton_to_nested,
        nested_to_morton,
    )
    from tilefleet.tiles.io import output_format, write_tiles
    from tilefleet.tiles.spec import (
        GridSpec,
        describe_validation_error,
        select_tiles,
        tiles_from_spec,
    )
    from tilefleet.tiles.tile import Tile, TileCollection, TileInputError
    from tilefleet.tiles.ttc import (
        TileDatabase,
        TtcTileSet,
        format_tile_id,
        parse_tile_id,
        ttc_tiles_from_csv,
        ttc_tiles_from_request,
        ttc_tiles_in_aoi,
        ttc_tiles_in_bbox,
    )
    from tilefleet.tiles.utm import UtmPatchSet, utm_patches
