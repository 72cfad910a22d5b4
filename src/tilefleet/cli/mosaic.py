"""Options of ``tilefleet mosaic`` (the ``mosaic`` recipe), as the job-file keys they set."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

_BBOX = re.compile(r"^\s*-?[\d.]+\s*(,\s*-?[\d.]+\s*){3}$")

MOSAIC_OPTIONS: dict[str, Any] = {
    "stac_url": Annotated[
        str | None, typer.Option("--stac-url", help="STAC API root URL to search")
    ],
    "catalog": Annotated[
        str | None,
        typer.Option(
            "--catalog", help="Static STAC catalog, collection or item collection (path, s3://)"
        ),
    ],
    "collections": Annotated[
        list[str] | None,
        typer.Option("--collection", help="Collection id to search (repeatable, or ID,ID)"),
    ],
    "max_cloud_cover": Annotated[
        float | None,
        typer.Option("--max-cloud-cover", help="Keep scenes with eo:cloud_cover <= PCT"),
    ],
    "max_items": Annotated[
        int | None, typer.Option("--max-items", min=1, help="At most N scenes in all")
    ],
    "resolution": Annotated[
        float | None, typer.Option("--resolution", help="Pixel size in metres [10]")
    ],
    "crs": Annotated[
        str | None, typer.Option("--crs", help="One CRS for all tiles [default: UTM per zone]")
    ],
    "tile_size": Annotated[
        float | None,
        typer.Option("--tile-size", help="Tile side in metres [default: 2048 pixels]"),
    ],
    "resampling": Annotated[
        str | None,
        typer.Option("--resampling", help="Band resampling: nearest (default), bilinear, cubic…"),
    ],
    "scl_mask": Annotated[
        str | None,
        typer.Option("--scl-mask", help="SCL classes treated as invalid [0,1,3,8,9,10]"),
    ],
    "dtype": Annotated[
        str | None, typer.Option("--dtype", help="float32 [default: the input's data type]")
    ],
    "visual": Annotated[
        bool | None,
        typer.Option("--visual/--no-visual", help="Also write an 8-bit RGBA rendering"),
    ],
    "sign": Annotated[
        str | None,
        typer.Option("--sign", help="URL-signing hook package.module:function (on the worker)"),
    ],
    "block_memory_mb": Annotated[
        int | None,
        typer.Option("--block-memory-mb", help="Memory for one task's pixel arrays [256]"),
    ],
}


def area_values(aoi: str) -> dict[str, str]:
    """``--aoi W,S,E,N`` is a bbox; anything else is a GeoJSON file."""
    return {"bbox": aoi} if _BBOX.match(aoi) else {"aoi": aoi}
