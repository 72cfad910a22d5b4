"""``tilefleet cells``: ATL06 heights per HEALPix cell into Zarr, and granule catalogs.

``tilefleet cells [GRANULE…] --store URL …`` runs the ``cells`` recipe (it is the sub-app's
default command, also reachable as ``tilefleet cells run``); ``tilefleet cells catalog …``
writes a granule catalog from NASA CMR or from granule files. Thin: options become a job
or a query, the library does the work.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from tilefleet.cli.options import EXECUTOR_OPTIONS, RUN_OPTIONS, with_options

BAD_INPUT_EXIT = 3
DEFAULT_COMMAND = "run"


class _DefaultToRun(TyperGroup):
    """A group whose first argument, when it is not a subcommand, starts ``run``: so
    ``tilefleet cells a.h5 --store s`` works next to ``tilefleet cells catalog …``."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_DefaultToRun,
    help="ICESat-2 ATL06 heights summarised per HEALPix cell into a Zarr v3 store.",
    no_args_is_help=True,
    add_completion=False,
)

CELLS_OPTIONS: dict[str, Any] = {
    "catalog": Annotated[
        str | None, typer.Option("--catalog", help="Granule catalog JSON (local or s3://)")
    ],
    "parent_order": Annotated[
        int | None,
        typer.Option("--parent-order", help="Order of the task cells [catalog's, else 6]"),
    ],
    "child_order": Annotated[
        int | None, typer.Option("--child-order", help="Order of the output cells [12]")
    ],
    "max_cells": Annotated[
        int | None, typer.Option("--max-cells", min=1, help="At most N parents (largest first)")
    ],
    "cell": Annotated[
        list[str] | None,
        typer.Option("--cell", help="Only this parent cell (nested id; repeatable, or ID,ID)"),
    ],
    "statistics": Annotated[
        str | None,
        typer.Option("--statistics", help="Comma-separated statistics [all nine]"),
    ],
    "beams": Annotated[
        str | None, typer.Option("--beams", help="Comma-separated beams [gt1l…gt3r]")
    ],
    "latitude": Annotated[str | None, typer.Option("--latitude", help="Latitude dataset")],
    "longitude": Annotated[str | None, typer.Option("--longitude", help="Longitude dataset")],
    "height": Annotated[str | None, typer.Option("--height", help="Height dataset [h_li]")],
    "sigma": Annotated[str | None, typer.Option("--sigma", help="Sigma dataset [h_li_sigma]")],
    "quality": Annotated[
        str | None, typer.Option("--quality", help="Quality flag dataset ('' for no filter)")
    ],
    "quality_value": Annotated[
        int | None, typer.Option("--quality-value", help="Quality flag value to keep [0]")
    ],
    "access": Annotated[
        str | None, typer.Option("--access", help="Read catalog granules via s3 or https [s3]")
    ],
}


@app.command(DEFAULT_COMMAND)
@with_options(CELLS_OPTIONS, RUN_OPTIONS, EXECUTOR_OPTIONS)
def run_cells(
    granules: Annotated[
        list[str] | None, typer.Argument(help="ATL06 granules: local paths, s3:// or https://")
    ] = None,
    store: Annotated[str, typer.Option("--store", help="Zarr store: folder or s3:// prefix")] = "",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every detail")] = False,
    options: dict[str, Any] | None = None,
) -> None:
    """Summarise ATL06 heights per HEALPix cell (granules given, or --catalog)."""
    from tilefleet.cli import _execute, _fail, _setup_logging
    from tilefleet.config import build_job

    if not store:
        _fail("give the Zarr store with --store URL")
    values = {"recipe": "cells", "store": store, **(options or {})}
    if granules:
        values["granules"] = list(granules)
    _setup_logging(verbose)
    _execute(lambda: build_job(values))


@app.command("catalog")
def catalog(
    output: Annotated[Path, typer.Option("--output", "-o", help="Catalog JSON to write")],
    granules: Annotated[
        list[str] | None,
        typer.Argument(help="Granule files to catalogue instead of searching CMR"),
    ] = None,
    cycle: Annotated[int | None, typer.Option("--cycle", help="ICESat-2 cycle")] = None,
    start_date: Annotated[
        str | None, typer.Option("--start-date", help="First day, YYYY-MM-DD")
    ] = None,
    end_date: Annotated[
        str | None, typer.Option("--end-date", help="Last day (included), YYYY-MM-DD")
    ] = None,
    bbox: Annotated[str | None, typer.Option("--bbox", help="Lon/lat W,S,E,N")] = None,
    aoi: Annotated[Path | None, typer.Option("--aoi", help="GeoJSON AOI, any CRS")] = None,
    short_name: Annotated[str, typer.Option("--short-name", help="CMR short name")] = "ATL06",
    version: Annotated[str, typer.Option("--version", help="Product version")] = "006",
    provider: Annotated[str, typer.Option("--provider", help="CMR provider")] = "NSIDC_CPRD",
    parent_order: Annotated[
        int, typer.Option("--parent-order", help="Order of the catalog's cells")
    ] = 6,
    cmr_url: Annotated[str, typer.Option("--cmr-url", help="CMR root URL")] = (
        "https://cmr.earthdata.nasa.gov"
    ),
) -> None:
    """Write a granule catalog: parent cell → granules (from CMR, or from files)."""
    from tilefleet.sources.cmr import CmrError, GranuleQuery, catalog_from_cmr, polygon_ring
    from tilefleet.sources.granule_catalog import catalog_from_files, write_catalog
    from tilefleet.tiles.aoi import bbox_geometry, parse_bbox, read_aoi

    try:
        if granules:
            result, problems = catalog_from_files(granules, parent_order)
            for url, reason in problems.items():
                typer.echo(f"warning: skipped {url}: {reason}", err=True)
        else:
            area = box_values = ring = None
            if bbox and aoi:
                raise ValueError("give --bbox or --aoi, not both")
            if bbox:
                box_values = parse_bbox(bbox)
                area = bbox_geometry(box_values)
            elif aoi:
                area = read_aoi(aoi)
                ring = polygon_ring(area)
            query = GranuleQuery(
                short_name=short_name,
                version=version,
                provider=provider or None,
                start_date=date.fromisoformat(start_date) if start_date else None,
                end_date=date.fromisoformat(end_date) if end_date else None,
                cycle=cycle,
                bbox=box_values,
                polygon=ring,
            )
            query.parameters()  # validates before any request
            result = catalog_from_cmr(query, parent_order, cmr_url, area)
        write_catalog(result, str(output))
    except (ValueError, CmrError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(BAD_INPUT_EXIT) from None
    granule_count = len({u for urls in result.cells.values() for u in urls})
    typer.echo(f"{len(result.cells)} cell(s), {granule_count} granule(s) → {output}")
