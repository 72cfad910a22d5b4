"""``tilefleet tiles <grid>``: write the tiles of a grid over an area to CSV, GeoJSON or
GeoParquet; one command per registered grid, its options made from the grid's model.

Thin on purpose: options become a grid spec, the library selects and writes, this prints.
Bad input (missing file, empty or invalid AOI, a request with no valid ids, an unknown output
extension, ...) prints one line on stderr and exits with status 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from tilefleet.cli.generate import command, extra_option, model_options
from tilefleet.cli.output import fail
from tilefleet.errors import ExitCode
from tilefleet.tiles import (
    TileInputError,
    describe_validation_error,
    output_format,
    parse_grid_spec,
    select_tiles,
    write_tiles,
)
from tilefleet.tiles.aoi import is_bbox_text
from tilefleet.tiles.grid import registered_grids

app = typer.Typer(
    help="Cut an area, a request or a list into tiles of a grid and write them out.",
    no_args_is_help=True,
    add_completion=False,
)

Output = Annotated[
    str | None,
    typer.Option(
        "--dest",
        "--output",
        "-o",
        metavar="FILE|-",
        help="Output file: .csv, .geojson or .parquet; - writes GeoJSON to stdout.",
    ),
]
STDOUT = "-"


def write_grid_tiles(grid: str, values: dict[str, Any]) -> None:
    """Validate, select, write, report: the same path for every grid."""
    output = values.pop("output", None)
    if output is None:
        fail("give an output file with -o/--dest (.csv, .geojson or .parquet, or - for stdout)")
    aoi = values.get("aoi")
    if values.get("bbox") is None and is_bbox_text(aoi):
        values["bbox"] = str(values.pop("aoi"))  # --aoi W,S,E,N is a box, as in mosaic
    try:
        if output != STDOUT:
            output_format(output)
        spec = parse_grid_spec({"grid": grid, **values})
        tiles = select_tiles(spec)
    except ValidationError as exc:
        fail(describe_validation_error(exc))
    except TileInputError as exc:
        fail(str(exc))
    for warning in tiles.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if output == STDOUT:
        _write_to_stdout(tiles)
        typer.echo(f"{spec.grid}: {len(tiles)} tiles written to stdout", err=True)
        return
    try:
        write_tiles(tiles, output)
    except OSError as exc:
        fail(f"cannot write {output}: {exc}", ExitCode.PARTIAL)
    typer.echo(f"{spec.grid}: {len(tiles)} tiles written to {output}")


def _write_to_stdout(tiles: Any) -> None:
    """The tiles as GeoJSON on stdout (``-o -``), through the file writer, for pipes."""
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp:
        path = write_tiles(tiles, Path(tmp) / "tiles.geojson")
        with path.open("rb") as source:
            while chunk := source.read(1 << 20):
                sys.stdout.buffer.write(chunk)
    sys.stdout.flush()


def _add_grid_command(name: str, model: Any) -> None:
    # Nothing is required here: the model names what is missing, in one line.
    parameters = [extra_option("output", Output), *model_options(model, required=False)]
    summary = (model.__doc__ or name).strip().splitlines()[0]
    command(app, name, parameters, lambda values: write_grid_tiles(name, values), summary)


for _name, _model in registered_grids().items():
    _add_grid_command(_name, _model)
