"""The parameters of ``cogify``: the keys of its job files and the options of its command."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from tilefleet.fields import Cli, CommaList
from tilefleet.recipes.params import RecipeParams
from tilefleet.store.cog import COG_PROFILES, DEFAULT_PROFILE, OVERVIEW_RESAMPLING
from tilefleet.store.location import StoreURL

ProfileName = Literal[tuple(COG_PROFILES)]  # type: ignore[valid-type]
ResamplingName = Literal[OVERVIEW_RESAMPLING]  # type: ignore[valid-type]


class CogifyParams(RecipeParams):
    """Options of ``tilefleet cogify`` (and the keys of a cogify job file)."""

    path_fields: ClassVar[tuple[str, ...]] = ("manifest", "input_root", "dest")

    manifest: Annotated[StoreURL, Cli(argument=True)] = Field(
        description="CSV manifest (path,num_bands), local or s3://"
    )
    input_root: StoreURL = Field(
        description="Folder or s3:// prefix that manifest paths are relative to"
    )
    dest: StoreURL = Field(description="Folder or s3:// prefix the COGs, previews and items go to")
    profile: ProfileName = Field(DEFAULT_PROFILE, description="COG profile (deflate is lossless)")
    overview_resampling: ResamplingName = Field("nearest", description="Overview resampling")
    blocksize: int = Field(512, ge=64, le=4096, description="COG tile size in pixels")
    quality: int | None = Field(None, ge=1, le=100, description="Quality of jpeg/webp profiles")
    preview_bands: Annotated[CommaList[int] | None, Cli(default="1 or 1,2,3")] = Field(
        None, description="Bands of the JPEG preview (1 or 3, 1-based)"
    )
    preview_max_size: Annotated[int | None, Cli(default="full size")] = Field(
        None, ge=16, description="Longest side of the preview in pixels"
    )
    preview_quality: int = Field(75, ge=1, le=100, description="JPEG quality of the preview")
    collection_id: str = Field("cogs", description="Id of the STAC collection of the items")
    paths_include_bucket: bool = Field(
        False,
        description="Manifest paths start with the bucket's name, as the crank writes them "
        "(raw-bucket/path/img.tif): input_root is that bucket (or a folder of that name)",
    )

    @field_validator("preview_bands")
    @classmethod
    def _one_or_three_bands(cls, bands: list[int] | None) -> list[int] | None:
        # Checked with the job, so a bad value fails before any row runs or any manifest
        # is claimed; whether the bands exist is each row's own check.
        if bands is not None and (len(bands) not in (1, 3) or min(bands) < 1):
            raise ValueError(f"give 1 or 3 band numbers from 1 up, got {','.join(map(str, bands))}")
        return bands
