"""``tilefleet tiles``: write the tiles of a grid over an area to CSV, GeoJSON or GeoParquet.

Thin on purpose: options become a ``GridSpec``, the library selects and writes, this prints.
Bad input (missing file, empty or invalid AOI, a request with no valid ids, an unknown output
extension, ...) prints one line on stderr and exits with status 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from tilefleet.tiles import (
    TileInputError,
    describe_validation_error,
    output_format,
    parse_grid_spec,
    select_tiles,
    write_tiles,
)

BAD_INPUT_EXIT = 3

app = typer.Typer(
    help="Tile lists from the TTC, UTM and HEALPix grids (.csv, .geojson or .parquet).",
    no_args_is_help=True,
    add_completion=False,
)

OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Output file: .csv, .geojson or .parquet.")
]
BboxOption = Annotated[
    str | None, typer.Option("--bbox", help="Lon/lat W,S,E,N (W > E crosses the antimeridian).")
]
AoiOption = Annotated[Path | None, typer.Option("--aoi", help="GeoJSON AOI, any CRS.")]


def _fail(message: str, status: int = BAD_INPUT_EXIT) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(status)


def _run(output: Path | None, **settings: Any) -> None:
    """Validate, select, write, report: the same path for every grid."""
    if output is None:
        _fail("give an output file with -o/--output (.csv, .geojson or .parquet)")
    try:
        output_format(output)
        spec = parse_grid_spec({k: v for k, v in settings.items() if v is not None})
        tiles = select_tiles(spec)
    except ValidationError as exc:
        _fail(describe_validation_error(exc))
    except TileInputError as exc:
        _fail(str(exc))
    for warning in tiles.warnings:
        typer.echo(f"warning: {warning}", err=True)
    try:
        write_tiles(tiles, output)
    except OSError as exc:
        _fail(f"cannot write {output}: {exc}", status=1)
    typer.echo(f"{spec.grid}: {len(tiles)} tiles written to {output}")


@app.command()
def ttc(
    output: OutputOption = None,
    tiledb: Annotated[Path | None, typer.Option(help="TTC tile database parquet.")] = None,
    bbox: BboxOption = None,
    aoi: AoiOption = None,
    request: Annotated[
        Path | None,
        typer.Option(help='Request JSON {project: {"YYYY": {"missing_tiles": [...]}}}.'),
    ] = None,
    tiles: Annotated[Path | None, typer.Option(help="Tiles CSV (Year,X,Y,Y_tile,X_tile).")] = None,
    year: Annotated[
        int | None, typer.Option(help="Year of area tiles; for --request/--tiles, keep only it.")
    ] = None,
) -> None:
    """TTC tiles (1/18 degree, ids like 1035X727Y) for one of --bbox, --aoi, --request, --tiles."""
    _run(
        output,
        grid="ttc",
        tiledb=tiledb,
        bbox=bbox,
        aoi=aoi,
        request=request,
        tiles=tiles,
        year=year,
    )


@app.command()
def utm(
    output: OutputOption = None,
    aoi: AoiOption = None,
    bbox: BboxOption = None,
    size: Annotated[float | None, typer.Option(help="Patch size, metres.")] = None,
    buffer: Annotated[
        float | None, typer.Option(help="Overlap added on every side, metres.")
    ] = None,
) -> None:
    """UTM patches (ids {epsg}_{col}_{row}) of --size metres covering --aoi or --bbox."""
    _run(output, grid="utm", aoi=aoi, bbox=bbox, size=size, buffer=buffer)


@app.command()
def healpix(
    output: OutputOption = None,
    aoi: AoiOption = None,
    bbox: BboxOption = None,
    order: Annotated[int | None, typer.Option(help="HEALPix order (0..29).")] = None,
) -> None:
    """HEALPix cells (nested) at --order intersecting --aoi or --bbox: cell_id, order, morton."""
    _run(output, grid="healpix", aoi=aoi, bbox=bbox, order=order)
