"""``cogify``: GeoTIFFs listed in a CSV manifest → Cloud-Optimized GeoTIFFs + JPEG previews.

For the row ``a/b/name.tif`` it writes ``{dest}/a/b/name.tif`` (the COG),
``{dest}/a/b/name.jpg`` (the preview) and, last, ``{dest}/a/b/name.json``: a STAC item of
the COG that marks the task done.
"""

from __future__ import annotations

import posixpath
import tempfile
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pystac
import rasterio
from pydantic import Field, field_validator
from rasterio.errors import RasterioIOError

from tilefleet.errors import JobError, PermanentError, one_line
from tilefleet.fields import Cli, CommaList
from tilefleet.recipes.base import Recipe, RecipeParams
from tilefleet.store.cog import (
    COG_PROFILES,
    DEFAULT_PROFILE,
    OVERVIEW_RESAMPLING,
    check_profile_fits,
    cog_options,
    write_cog,
)
from tilefleet.store.gdal_env import gdal_config, is_missing_file
from tilefleet.store.location import Location, StoreURL, safe_relative_key
from tilefleet.store.objects import open_store
from tilefleet.store.preview import write_preview
from tilefleet.store.stac_item import item_bytes, raster_item
from tilefleet.task import Task
from tilefleet.tiles.manifest import MANIFEST_COLUMNS, parse_manifest

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


def _root_bucket(input_root: str) -> str:
    """The bucket (or folder) name manifest paths start with; the root must be one."""
    root = Location.parse(input_root)
    if root.is_local:
        return Path(root.prefix).resolve().name
    if root.prefix:
        raise JobError(
            f"paths_include_bucket: input_root {input_root} must be the bucket itself "
            f"({root.scheme}://{root.bucket}), as the paths start with its name"
        )
    return root.bucket


def _below_bucket(key: str, bucket: str) -> str:
    first, _, rest = key.partition("/")
    if first != bucket or not rest:
        raise ValueError(f"path {key!r} does not start with the bucket {bucket}/")
    return rest


def output_keys(key: str) -> tuple[str, str, str]:
    """(COG, preview, item) keys for an input key; a ``.tif`` name is kept as it is."""
    stem, suffix = posixpath.splitext(key)
    cog = key if suffix.lower() in (".tif", ".tiff") else f"{stem}.tif"
    return cog, f"{stem}.jpg", f"{stem}.json"


class CogifyRecipe(Recipe):
    name = "cogify"
    summary = "Turn the GeoTIFFs of a CSV manifest into COGs + JPEG previews + STAC items."
    Params = CogifyParams
    default_task_s = 2.0
    source_columns = MANIFEST_COLUMNS
    manifest_param = "manifest"

    def plan(self, params: CogifyParams) -> list[Task]:
        rows = parse_manifest(_read_manifest(params.manifest), name=params.manifest)
        bucket = _root_bucket(params.input_root) if params.paths_include_bucket else None
        shared = params.model_dump(exclude={"manifest", "dest", "paths_include_bucket"})
        tasks: list[Task] = []
        seen: dict[str, int] = {}
        for row in rows:
            key, reason = None, row.error
            if reason is None:
                try:
                    key = safe_relative_key(row.path)
                    if bucket is not None:
                        key = _below_bucket(key, bucket)
                except ValueError as exc:
                    reason = f"line {row.line}: {exc}"
            if key is not None and key in seen:
                reason = f"line {row.line}: {key} is already listed on line {seen[key]}"
            if reason is not None:
                tasks.append(
                    Task(
                        f"line-{row.line}",
                        self.name,
                        {},
                        params.dest,
                        "",
                        source=row.fields,
                        rejected=reason,
                    )
                )
                continue
            seen[key] = row.line
            cog, preview, item = output_keys(key)
            task_params = {
                **shared,
                "key": key,
                "num_bands": row.num_bands,
                "cog": cog,
                "preview": preview,
            }
            tasks.append(Task(key, self.name, task_params, params.dest, item, source=row.fields))
        return tasks

    def task_sizes(self, params: CogifyParams, tasks: list[Task]) -> dict[str, float]:
        """Input bytes per task, from one listing per input folder (never a HEAD per file)."""
        store = open_store(params.input_root)
        folders = {posixpath.dirname(t.params["key"]) for t in tasks if t.rejected is None}
        sizes = {info.key: info.size for folder in folders for info in store.list_dir(folder)}
        return {t.id: sizes[t.params["key"]] for t in tasks if t.params.get("key") in sizes}

    def run(self, task: Task) -> dict[str, Any]:
        p = task.params
        with rasterio.Env(**gdal_config()), tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp:
            src = open_store(p["input_root"]).gdal_path(p["key"])
            dtype, count = _inspect_input(src, p["key"])
            if p["num_bands"] is not None and p["num_bands"] != count:
                raise PermanentError(
                    f"manifest says {p['num_bands']} band(s), {p['key']} has {count}"
                )
            check_profile_fits(p["profile"], dtype, count)
            cog_path, preview_path = Path(tmp, "cog.tif"), Path(tmp, "preview.jpg")
            options = cog_options(
                p["profile"],
                blocksize=p["blocksize"],
                overview_resampling=p["overview_resampling"],
                quality=p["quality"],
            )
            write_cog(src, cog_path, options)
            rows, cols = write_preview(
                str(cog_path),
                preview_path,
                bands=p["preview_bands"],
                max_size=p["preview_max_size"],
                quality=p["preview_quality"],
            )
            cog_name = posixpath.basename(p["cog"])
            preview_asset = pystac.Asset(
                f"./{posixpath.basename(p['preview'])}",
                media_type=pystac.MediaType.JPEG,
                roles=["overview"],
                extra_fields={"proj:shape": [rows, cols]},
            )
            item = raster_item(
                str(cog_path),
                item_id=posixpath.splitext(cog_name)[0],
                data_href=f"./{cog_name}",
                extra_assets={"preview": preview_asset},
                properties={"tilefleet:source": Location.parse(p["input_root"]).join(p["key"])},
            )
            cog_bytes = cog_path.stat().st_size
            dest = open_store(task.dest)
            dest.put_file(cog_path, p["cog"], move=True)
            dest.put_file(preview_path, p["preview"], move=True)
            dest.put_bytes(item_bytes(item), task.marker)  # last: marks the task done
            return {"bytes_out": cog_bytes, "bands": count, "dtype": dtype}


def _read_manifest(url: str) -> bytes:
    location = Location.parse(url)
    parent, _, name = location.prefix.rpartition("/")
    store = open_store(Location(location.scheme, location.bucket, parent))
    try:
        return store.get_bytes(name)
    except (FileNotFoundError, IsADirectoryError) as exc:
        if not location.is_local:  # an object store's: its text is a dump of the request
            raise JobError(f"manifest {url} does not exist") from exc
        raise JobError(f"cannot read manifest {url}: {exc.strerror or exc}") from exc
    except Exception as exc:  # an object store's answer: one line, never its debug dump
        if type(exc).__name__ == "NotFoundError":
            raise JobError(f"manifest {url} does not exist") from exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JobError(f"cannot read manifest {url}: {one_line(Exception(first), 240)}") from exc


def _inspect_input(src: str, key: str) -> tuple[str, int]:
    try:
        with rasterio.open(src) as ds:
            return ds.dtypes[0], ds.count
    except RasterioIOError as exc:
        if is_missing_file(exc):
            raise PermanentError(f"input {key} not found") from exc
        raise
