"""The parameters of ``tile-index``: the keys of its job files and the options of its command."""

from __future__ import annotations

from pydantic import Field

from tilefleet.recipes.tiled_params import TiledParams


class TileIndexParams(TiledParams):
    resolution: float | None = Field(
        None, gt=0, description="Pixel size (in the tile's CRS units) of the pixel grid to record"
    )
    crs: str | None = Field(None, description="CRS of the pixel grid [default: the tile's own]")
    collection_id: str = Field("tile-index", description="Id of the STAC collection of the tiles")
