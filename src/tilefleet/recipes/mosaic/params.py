"""The parameters of a ``mosaic`` job: the job-file keys and command-line options, checked
once on the client so that no task starts from a job that cannot work."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from tilefleet.fields import Cli, CommaList
from tilefleet.ops.clear_sky import DEFAULT_SCL_MASK
from tilefleet.recipes.params import RecipeParams
from tilefleet.store.cog import COG_PROFILES, LOSSY_PROFILES
from tilefleet.store.location import StoreURL
from tilefleet.tiles.aoi import LonLatBox

DEFAULT_TILE_PIXELS = 2048
_BAND_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
RESAMPLING = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode")


# No class docstring: pydantic would make it the description of the job file's JSON Schema.
class MosaicParams(RecipeParams):
    path_fields: ClassVar[tuple[str, ...]] = ("dest", "catalog", "aoi")

    stac_url: str | None = Field(None, description="STAC API root URL to search")
    catalog: str | None = Field(
        None, description="Static STAC catalog, collection or item collection (path or s3://)"
    )
    collections: Annotated[list[str], Cli(flag="--collection")] = Field(
        default_factory=list, description="Collection ids to search (repeatable, or ID,ID)"
    )
    bbox: LonLatBox | None = Field(None, description="Area as lon/lat W,S,E,N (give bbox or aoi)")
    aoi: Annotated[str | None, Cli(metavar="W,S,E,N|FILE")] = Field(
        None, description="Area: a GeoJSON file (any CRS), or lon/lat W,S,E,N"
    )
    start_date: date = Field(description="First day, YYYY-MM-DD")
    end_date: date = Field(description="Last day, YYYY-MM-DD (inclusive)")
    bands: list[str] = Field(
        min_length=1, description="Bands by asset key or eo:bands name/common name (red,nir…)"
    )
    max_cloud_cover: float | None = Field(
        None, ge=0, le=100, description="Keep scenes with eo:cloud_cover at most this (%)"
    )
    max_items: int | None = Field(None, ge=1, description="At most this many scenes in all")
    resolution: float = Field(10.0, gt=0, description="Pixel size in metres (CRS units)")
    crs: str | None = Field(None, description="One CRS for all tiles [default: UTM per zone]")
    tile_size: float | None = Field(
        None, gt=0, description=f"Tile side in CRS units [default: {DEFAULT_TILE_PIXELS} pixels]"
    )
    dest: StoreURL = Field(description="Folder or s3:// prefix for the outputs")
    resampling: Literal[RESAMPLING] = Field(  # type: ignore[valid-type]
        "nearest", description="Resampling of the bands (the mask always uses nearest)"
    )
    scl_mask: CommaList[int] = Field(
        default_factory=lambda: list(DEFAULT_SCL_MASK),
        description="Scene Classification Layer classes treated as invalid",
    )
    dtype: Literal["float32"] | None = Field(
        None, description="Output data type [default: the input's, with its nodata]"
    )
    visual: bool = Field(False, description="Also write an 8-bit RGBA rendering of bands 1-3")
    visual_scale: float = Field(
        1e-4, gt=0, description="Factor from band values to reflectance for the rendering"
    )
    sign: str | None = Field(
        None, description="URL-signing hook package.module:function, applied before each read"
    )
    block_memory_mb: int = Field(
        256, ge=16, description="Memory for the pixel arrays of one task (strips shrink to fit)"
    )
    profile: str = Field("deflate", description="COG compression profile of the data")
    collection_id: str = Field("monthly-mosaic", description="Id of the output STAC collection")

    @field_validator("bands", "collections", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            return [v.strip() for item in value for v in str(item).split(",") if v.strip()]
        return value

    @field_validator("bands")
    @classmethod
    def _band_names_name_files(cls, bands: list[str]) -> list[str]:
        # Each band names its COG ({tile}-{band}.tif) and its asset in the item.
        for band in bands:
            if not _BAND_NAME.match(band) or band == "visual":
                raise ValueError(
                    f"band {band!r}: use letters, digits, '_' or '.' (and not 'visual', "
                    "the name of the rendering)"
                )
        if len(set(bands)) != len(bands):
            raise ValueError(f"bands {','.join(bands)}: a band is listed twice")
        return bands

    @model_validator(mode="before")
    @classmethod
    def _aoi_as_bbox(cls, values: Any) -> Any:
        """``aoi: W,S,E,N`` (``--aoi`` on the command line) is a bbox, not a file name."""
        from tilefleet.tiles.aoi import is_bbox_text

        aoi = values.get("aoi") if isinstance(values, dict) else None
        if is_bbox_text(aoi) and values.get("bbox") is None:
            values = {**values, "bbox": aoi, "aoi": None}
        return values

    @model_validator(mode="after")
    def _check(self) -> MosaicParams:
        if (self.stac_url is None) == (self.catalog is None):
            raise ValueError("give exactly one of stac_url (a STAC API) or catalog (static STAC)")
        if (self.bbox is None) == (self.aoi is None):
            raise ValueError("give exactly one of bbox (W,S,E,N) or aoi (a GeoJSON file)")
        if self.end_date < self.start_date:
            raise ValueError(
                f"end_date {self.end_date} is before start_date {self.start_date}: dates reversed?"
            )
        if self.profile not in COG_PROFILES or self.profile in LOSSY_PROFILES:
            lossless = ", ".join(p for p in COG_PROFILES if p not in LOSSY_PROFILES)
            raise ValueError(f"profile {self.profile!r}: choose a lossless one ({lossless})")
        if self.visual and len(self.bands) < 3:
            raise ValueError("visual needs three bands (red, green, blue) first in bands")
        return self
