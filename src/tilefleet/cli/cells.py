"""``tilefleet cells``: ATL06 heights per HEALPix cell into Zarr, and granule catalogs.

``tilefleet cells [GRANULE…] --store URL …`` runs the ``cells`` recipe (it is the sub-app's
default command, also reachable as ``tilefleet cells run``); ``tilefleet cells catalog …``
writes a granule catalog from NASA CMR or from granule files. Thin: options become a job
or a query, the library does the work.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from tilefleet.cli.output import fail
from tilefleet.cli.recipes import add_recipe_command

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

add_recipe_command(app, "cells", DEFAULT_COMMAND)


@app.command("catalog")
def catalog(
    output: Annotated[Path, typer.Option("--dest", "--output", "-o", help="Catalog JSON to write")],
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
    aoi: Annotated[
        str | None,
        typer.Option("--aoi", metavar="W,S,E,N|FILE", help="Area: lon/lat W,S,E,N or a GeoJSON"),
    ] = None,
    short_name: Annotated[str, typer.Option("--short-name", help="CMR short name")] = "ATL06",
    version: Annotated[
        str, typer.Option("--product-version", "--version", help="Product version")
    ] = "007",
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
    from tilefleet.tiles.aoi import bbox_geometry, is_bbox_text, parse_bbox, read_aoi

    try:
        if granules:
            result, problems = catalog_from_files(granules, parent_order)
            for url, reason in problems.items():
                typer.echo(f"warning: skipped {url}: {reason}", err=True)
        else:
            area = box_values = ring = None
            if bbox and aoi:
                raise ValueError("give --bbox or --aoi, not both")
            if is_bbox_text(aoi):
                bbox, aoi = aoi, None
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
        fail(str(exc))
    granule_count = len({u for urls in result.cells.values() for u in urls})
    typer.echo(f"{len(result.cells)} cell(s), {granule_count} granule(s) → {output}")
