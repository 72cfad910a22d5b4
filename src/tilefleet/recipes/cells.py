"""``cells``: ICESat-2 ATL06 heights summarised per HEALPix cell into a Zarr v3 store.

One task per parent cell (nested, ``parent_order``, default 6 ≈ 100 km): read the rows of
every granule crossing the parent (six beams, quality 0, no fill values), bin the points
into the parent's ``4^(child − parent)`` child cells (``child_order``, default 12 ≈ 1.5 km),
compute the statistics and write them as the parent's own chunk of the store
(:mod:`tilefleet.store.zarr_cells`), then the done marker
``{store}/.tilefleet/done/{parent}.json``.

The parents come from a granule catalog (``catalog``: CMR-built or from files) or from
granule files given directly (``granules``: their points are read at plan time to find the
parents they cross). Tasks run largest first (most granules), so the long ones start early.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from tilefleet.errors import JobError, PermanentError
from tilefleet.fields import Cli, CommaList
from tilefleet.ops.cell_stats import STATISTICS, cell_statistics, check_statistics
from tilefleet.recipes.base import Recipe
from tilefleet.recipes.params import RecipeParams
from tilefleet.sources.atl06 import BEAMS, Atl06Layout, read_granule
from tilefleet.sources.granule_catalog import GranuleCatalog, catalog_from_files, read_catalog
from tilefleet.store.location import StoreURL
from tilefleet.store.zarr_cells import (
    CellsLayout,
    done_marker,
    ensure_template,
    parents_tuple,
    write_done_marker,
    write_parent,
)
from tilefleet.task import Task
from tilefleet.tiles import healpix

DEFAULT_PARENT_ORDER = 6
#: A parent cell as a job names it: its nested id, or ORDER/ID as task ids show it.
_CELL_ID = re.compile(r"^(\d+/)?\d+$")
#: Largest child − parent depth: 4^10 ≈ 1 M cells per chunk is already a big task.
MAX_DEPTH = 10


class CellsParams(RecipeParams):
    """Options of ``tilefleet cells`` (and the keys of a cells job file)."""

    path_fields: ClassVar[tuple[str, ...]] = ("catalog", "store")

    granules: Annotated[list[str], Cli(argument=True, metavar="GRANULE…")] = Field(
        default_factory=list, description="Granule files (local, s3:// or https://)"
    )
    catalog: str | None = Field(None, description="Granule catalog JSON (local or s3://)")
    store: Annotated[StoreURL, Cli(flag="--dest", aliases=("--store",))] = Field(
        description="Zarr store to write: a folder or s3:// prefix"
    )
    parent_order: int | None = Field(
        None,
        ge=0,
        le=healpix.MAX_ORDER,
        description="HEALPix order of the task cells [default: the catalog's, else 6]",
    )
    child_order: int = Field(12, ge=0, le=healpix.MAX_ORDER, description="Order of the output")
    max_cells: int | None = Field(None, ge=1, description="Process at most N parents (largest)")
    cell: list[str] | None = Field(
        None,
        description="Process only these parent cells: nested ids or ORDER/ID as tasks.csv "
        "shows them (repeatable, or ID,ID)",
    )
    statistics: CommaList[str] = Field(list(STATISTICS), description="Statistics to compute")
    beams: CommaList[str] = Field(list(BEAMS), description="Beam groups to read")
    latitude: str = Field(Atl06Layout.latitude, description="Latitude, below a beam")
    longitude: str = Field(Atl06Layout.longitude, description="Longitude, below a beam")
    height: str = Field(Atl06Layout.height, description="Height variable, below a beam")
    sigma: str = Field(Atl06Layout.sigma, description="Height uncertainty, below a beam")
    quality: Annotated[str | None, Cli(flag="--quality-flag", aliases=("--quality",))] = Field(
        Atl06Layout.quality, description="Quality flag below a beam ('' or null: no filter)"
    )
    quality_value: int = Field(0, description="Value of the quality flag to keep")
    access: Literal["s3", "https"] = Field(
        "s3", description="Read catalog granules by their s3:// or https:// URL"
    )
    s3_credentials: str | None = Field(
        None,
        description="Temporary S3 credentials obtained once with the Earthdata token in "
        "EARTHDATA_TOKEN and shared with every worker: 'nsidc' (NSIDC's protected bucket) "
        "or the URL of an s3credentials endpoint [default: the workers' own credentials]",
    )

    @field_validator("cell", mode="before")
    @classmethod
    def _split_cells(cls, value: Any) -> Any:
        if isinstance(value, str | int):
            value = [value]
        if isinstance(value, list):
            value = [p for item in value for p in str(item).replace(",", " ").split()]
            bad = [item for item in value if not _CELL_ID.match(item)]
            if bad:
                raise ValueError(f"cell {bad[0]!r}: give a nested cell id or ORDER/ID (6/44325)")
        return value

    @field_validator("statistics")
    @classmethod
    def _known_statistics(cls, value: list[str]) -> list[str]:
        return list(check_statistics(value))

    @field_validator("quality")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _one_source(self) -> CellsParams:
        if bool(self.granules) == bool(self.catalog):
            raise ValueError("give either granule files or a catalog (not both, not neither)")
        order = DEFAULT_PARENT_ORDER if self.parent_order is None else self.parent_order
        if not 0 <= self.child_order - order <= MAX_DEPTH:
            raise ValueError(
                f"child_order ({self.child_order}) must be 0 to {MAX_DEPTH} orders "
                f"finer than parent_order ({order})"
            )
        return self

    @field_validator("s3_credentials")
    @classmethod
    def _credentials_url(cls, value: str | None) -> str | None:
        from tilefleet.sources.earthdata import NSIDC_S3_CREDENTIALS

        if value == "nsidc":
            return NSIDC_S3_CREDENTIALS
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("give 'nsidc' or the http(s):// URL of an s3credentials endpoint")
        return value

    def layout(self) -> Atl06Layout:
        return Atl06Layout(
            tuple(self.beams),
            self.latitude,
            self.longitude,
            self.height,
            self.sigma,
            self.quality,
            self.quality_value,
        )


class CellsRecipe(Recipe):
    name = "cells"
    summary = "Summarise ATL06 heights per HEALPix cell (granules given, or --catalog)."
    Params = CellsParams
    default_task_s = 3.0
    source_columns = ("cell", "granules")

    def plan(self, params: CellsParams) -> list[Task]:
        catalog, rejected = self._catalog(params)
        parents = parents_tuple(catalog.cells)
        layout = CellsLayout(
            catalog.parent_order, params.child_order, parents, tuple(params.statistics)
        )
        self._layout = layout  # written by prepare(), not in a dry run
        self._granules = sorted({url for urls in catalog.cells.values() for url in urls})

        wanted = catalog.largest_first()
        if params.cell is not None:
            chosen = set()
            for text in params.cell:
                order, _, number = text.rpartition("/")
                cell, task_id = int(number), f"{catalog.parent_order}/{int(number)}"
                if order and int(order) != catalog.parent_order:
                    reason = f"cell {text}: the task cells are of order {catalog.parent_order}"
                    rejected.append(self._rejected(text, reason))
                elif cell not in catalog.cells:
                    reason = f"cell {task_id}: no granule crosses it"
                    rejected.append(self._rejected(task_id, reason))
                else:
                    chosen.add(cell)
            wanted = [cell for cell in wanted if cell in chosen]
        if params.max_cells is not None:
            wanted = wanted[: params.max_cells]
        https = catalog.https_urls if params.access == "https" else {}
        shared = {
            "parent_order": catalog.parent_order,
            "child_order": params.child_order,
            "statistics": list(params.statistics),
            "layout": vars(params.layout()) | {"beams": list(params.beams)},
        }
        tasks = [
            Task(
                f"{catalog.parent_order}/{cell}",
                self.name,
                {
                    **shared,
                    "parent": cell,
                    "chunk_index": layout.chunk_index(cell),
                    "granules": [https.get(url, url) for url in catalog.cells[cell]],
                },
                params.store,
                done_marker(cell),
                source={
                    "cell": f"{catalog.parent_order}/{cell}",
                    "granules": str(len(catalog.cells[cell])),
                },
            )
            for cell in wanted
        ]
        return tasks + rejected

    def task_sizes(self, params: CellsParams, tasks: list[Task]) -> dict[str, float]:
        """Granules read per task (each parent reads its rows of every granule crossing it)."""
        return {t.id: len(t.params["granules"]) for t in tasks if t.params.get("granules")}

    def prepare(self, params: CellsParams) -> None:
        try:
            ensure_template(params.store, self._layout, self._granules)
        except ValueError as exc:
            raise JobError(str(exc)) from None

    def outputs_url(self, params: CellsParams) -> str:
        return params.store

    def _catalog(self, params: CellsParams) -> tuple[GranuleCatalog, list[Task]]:
        if params.catalog:
            try:
                catalog = read_catalog(params.catalog)
            except ValueError as exc:
                raise JobError(str(exc)) from None
            if params.parent_order not in (None, catalog.parent_order):
                raise JobError(
                    f"catalog {params.catalog} is of parent order {catalog.parent_order}, "
                    f"not {params.parent_order}"
                )
            if not 0 <= params.child_order - catalog.parent_order <= MAX_DEPTH:
                raise JobError(
                    f"child_order {params.child_order} does not fit the catalog's "
                    f"parent order {catalog.parent_order}"
                )
            return catalog, []
        order = DEFAULT_PARENT_ORDER if params.parent_order is None else params.parent_order
        catalog, problems = catalog_from_files(params.granules, order, params.layout())
        rejected = [self._rejected(f"granule:{url}", reason) for url, reason in problems.items()]
        if not catalog.cells and not rejected:
            raise JobError("no good ATL06 points in the given granules: nothing to do")
        return catalog, rejected

    def _rejected(self, task_id: str, reason: str) -> Task:
        return Task(task_id, self.name, {}, "", "", source={"cell": task_id}, rejected=reason)

    def secret_sources(self, params: CellsParams) -> list:
        """Earthdata S3 credentials, fetched once by the driver, when the job asks for them."""
        if params.s3_credentials is None:
            return []
        from tilefleet.sources.earthdata import EarthdataS3Credentials

        return [EarthdataS3Credentials(params.s3_credentials)]

    def run(self, task: Task) -> dict[str, Any]:
        p = task.params
        parent, parent_order, child_order = p["parent"], p["parent_order"], p["child_order"]
        layout = Atl06Layout(**{**p["layout"], "beams": tuple(p["layout"]["beams"])})
        depth = child_order - parent_order
        slots, heights, sigmas, rows = [], [], [], 0
        for url in p["granules"]:
            points = read_granule(url, layout, parent=parent, parent_order=parent_order)
            rows += points.rows_read
            if not len(points):
                continue
            try:
                cells = healpix.lonlat_to_cell(points.lon, points.lat, child_order)
            except ValueError as exc:  # TileInputError: coordinates out of range
                raise PermanentError(f"granule {url}: {exc}") from None
            inside = (cells >> (2 * depth)) == parent
            slots.append(cells[inside] - (parent << (2 * depth)))
            heights.append(points.height[inside])
            sigmas.append(points.sigma[inside])
        slot_array = np.concatenate(slots) if slots else np.empty(0, dtype=np.int64)
        values = cell_statistics(
            slot_array,
            np.concatenate(heights) if heights else np.empty(0),
            np.concatenate(sigmas) if sigmas else np.empty(0),
            4**depth,
            p["statistics"],
        )
        bytes_out = write_parent(task.dest, child_order, p["chunk_index"], values)
        metrics = {
            "points": int(slot_array.size),
            "cells_with_data": int(np.unique(slot_array).size),
            "granules": len(p["granules"]),
            "rows_read": rows,
            "bytes_out": bytes_out,
        }
        record = {"cell": f"{parent_order}/{parent}", "chunk_index": p["chunk_index"], **metrics}
        write_done_marker(task.dest, parent, record | {"granule_urls": p["granules"]})
        return metrics
