"""The parameters of a ``ttc-ard`` job: the job-file keys and command-line options, checked
once on the client so that no task starts from a job that cannot work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from tilefleet.fields import Cli, CommaList
from tilefleet.recipes.params import RecipeParams
from tilefleet.store.location import StoreURL
from tilefleet.tiles.aoi import LonLatBox

PRODUCTS = ("dem", "s1", "s2")
Product = Literal["dem", "s1", "s2"]
#: The tile areas a job may give, exactly one of them.
AREA_FIELDS = ("tiles", "request", "bbox", "aoi")


# No class docstring: pydantic would make it the description of the job file's JSON Schema.
class TtcArdParams(RecipeParams):
    path_fields: ClassVar[tuple[str, ...]] = (
        "tiles",
        "request",
        "aoi",
        "tiledb",
        "dest",
        "catalog",
    )

    tiles: Annotated[Path | None, Cli(argument=True, metavar="TILES.csv")] = Field(
        None,
        description="Tiles CSV (Year,X,Y,Y_tile,X_tile; a product column limits the products "
        "of its row): a failed.csv of a ttc-ard run is one",
    )
    request: Path | None = Field(
        None, description='Request JSON {project: {"YYYY": {"missing_tiles": [...]}}}'
    )
    bbox: Annotated[LonLatBox | None, Cli(metavar="W,S,E,N")] = Field(
        None, description="Lon/lat W,S,E,N: the tiles intersecting it"
    )
    aoi: Path | None = Field(None, description="GeoJSON area (any CRS): the tiles intersecting it")
    tiledb: Path = Field(description="TTC tile database parquet (X, Y, X_tile, Y_tile)")
    year: int | None = Field(
        None,
        ge=1900,
        le=2200,
        description="Year of the tiles of an area (required with bbox/aoi); with a request or "
        "tiles CSV, keep only that year",
    )
    dest: StoreURL = Field(description="Folder or s3:// prefix the outputs go to")
    products: CommaList[Product] = Field(
        default_factory=lambda: list(PRODUCTS), description="Products to make: dem,s1,s2"
    )
    stac_url: str | None = Field(None, description="STAC API root URL to search")
    catalog: str | None = Field(
        None, description="Static STAC catalog, collection or item collection (path or s3://)"
    )
    dem_collection: str = Field("cop-dem-glo-30", description="Collection of the DEM tiles")
    s1_collection: str = Field("sentinel-1-rtc", description="Collection of the Sentinel-1 RTC")
    s2_collection: str = Field("sentinel-2-l2a", description="Collection of Sentinel-2 L2A")
    sign: str | None = Field(
        None,
        description="URL-signing hook package.module:function applied before each read "
        "(Planetary Computer: a SAS-token signer)",
    )
    requester_pays: bool = Field(
        False, description="Read s3:// inputs from requester-pays buckets (billed to you)"
    )
    slope_spacing: Literal["ground", "seed"] = Field(
        "ground",
        description="Pixel spacing of the slope: the true ground spacing of each row "
        "(ground), or a fixed 10 m as the TTC seed pipeline assumed (seed)",
    )
    s1_orbit: Literal["AUTO", "ASCENDING", "DESCENDING"] = Field(
        "AUTO", description="Sentinel-1 orbit direction (AUTO: the one with more full days)"
    )
    s1_resolution: float = Field(
        1 / 5400, gt=0, description="Sentinel-1 pixel size in degrees [default: 1/5400, ~20 m]"
    )
    format: Literal["native", "hkl"] = Field(
        "native",
        description="Outputs: COG/Zarr with STAC items (native), or the TTC seed pipeline's "
        "hickle files with its keys, shapes and folders (hkl; needs the ttc extra)",
    )
    s2_max_cloud_cover: float = Field(
        50, ge=0, le=100, description="Stage-1 search: scenes with eo:cloud_cover below this (%)"
    )

    @model_validator(mode="after")
    def _check(self) -> TtcArdParams:
        if (self.stac_url is None) == (self.catalog is None):
            raise ValueError("give exactly one of stac_url (a STAC API) or catalog (static STAC)")
        areas = [name for name in AREA_FIELDS if getattr(self, name) is not None]
        if len(areas) != 1:
            raise ValueError(
                "give exactly one of a tiles CSV, request, bbox or aoi "
                f"(given: {', '.join(areas) or 'none'})"
            )
        if areas[0] in ("bbox", "aoi") and self.year is None:
            raise ValueError(f"{areas[0]} needs year (the tiles of an area have none of their own)")
        if not self.products:
            raise ValueError("products: name at least one of dem, s1, s2")
        self.products = [p for p in PRODUCTS if p in self.products]  # one each, in order
        return self
