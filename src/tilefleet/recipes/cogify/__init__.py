"""``cogify``: GeoTIFFs listed in a CSV manifest → Cloud-Optimized GeoTIFFs + JPEG previews.

For the row ``a/b/name.tif`` it writes ``{dest}/a/b/name.tif`` (the COG),
``{dest}/a/b/name.jpg`` (the preview) and, last, ``{dest}/a/b/name.json``: a STAC item of
the COG that marks the task done. ``finish`` writes ``{dest}/collection.json`` linking
every item.
"""

from __future__ import annotations

import contextlib
import posixpath
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader

from tilefleet.errors import JobError, PermanentError, one_line
from tilefleet.recipes.base import FINISH_METRIC, ParamsModel, Recipe
from tilefleet.store.cog import (
    can_stage,
    check_profile_fits,
    cog_options,
    overview_factors_for,
    staged_bytes,
    staged_raster,
    write_cog,
)
from tilefleet.store.gdal_env import gdal_session, is_missing_file
from tilefleet.store.location import Location, safe_relative_key
from tilefleet.store.objects import open_store
from tilefleet.store.preview import (
    colour_table,
    preview_bands,
    preview_shape,
    write_preview,
    write_preview_of,
)
from tilefleet.store.stac_item import (
    STATS_SIZE,
    collection_links,
    item_bytes,
    item_extent,
    publish_collection,
    raster_asset,
    raster_bands_from,
    raster_item,
    source_datetime,
    stac_datetime,
    stats_shape,
)
from tilefleet.task import Task
from tilefleet.tiles.manifest import MANIFEST_COLUMNS, parse_manifest

if TYPE_CHECKING:
    from tilefleet.recipes.cogify.params import CogifyParams


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
    Params = ParamsModel("tilefleet.recipes.cogify.params:CogifyParams")
    default_task_s = 2.0
    source_columns = MANIFEST_COLUMNS
    manifest_param = "manifest"

    def plan(self, params: CogifyParams) -> list[Task]:
        rows = parse_manifest(_read_manifest(params.manifest), name=params.manifest)
        bucket = _root_bucket(params.input_root) if params.paths_include_bucket else None
        shared = params.model_dump(exclude={"manifest", "dest", "paths_include_bucket"})
        tasks: list[Task] = []
        seen: dict[str, int] = {}
        ids: dict[str, str] = {}  # STAC item id -> the key it is of
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
            elif key is not None and _other_with_id(key, ids):
                reason = (
                    f"line {row.line}: {key} would have the STAC id {item_id(key)} of "
                    f"{ids[item_id(key)]}"
                )
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
            ids[item_id(key)] = key
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

    def task_memory(self, task: Task) -> int | None:
        """From the input's header: the preview's arrays at their size (values and mask of
        each preview band, and one band's scaled copy), and either the input converted in
        memory (its pixels and their overviews) or, for an input too big
        for that, one row of COG blocks of every band (GDAL streams the rest of the COG
        step through its bounded block cache)."""
        p = task.params
        src = open_store(p["input_root"]).gdal_path(p["key"])
        try:
            with gdal_session(src), rasterio.open(src) as ds:
                bands = len(preview_bands(ds.count, p["preview_bands"]))
                rows, cols = preview_shape(ds.height, ds.width, p["preview_max_size"])
                size = max(_itemsize(dtype) for dtype in ds.dtypes)
                width, count, dtypes = ds.width, ds.count, ds.dtypes
                staged = staged_bytes(ds) if can_stage(ds) else 0
        except Exception:  # unreadable: the run itself says why
            return None
        preview = rows * cols * (bands * (size + 1) + _scratch_itemsize(dtypes))
        if staged:  # the pixels read, and the overviews built beside them
            return preview + staged
        return preview + p["blocksize"] * width * count * size

    def finish(self, params: CogifyParams, done: list[Task], notes: Mapping[str, Any]) -> None:
        """Write ``{dest}/collection.json`` linking the item of every image done (its
        extents from what the tasks returned; the items of images found done by their
        markers are read)."""
        written = [task for task in done if task.marker]
        publish_collection(
            open_store(params.dest),
            params.collection_id,
            "Cloud-Optimized GeoTIFFs with JPEG previews, written by tilefleet cogify.",
            [task.marker for task in written],
            extents={task.marker: notes[task.id] for task in written if task.id in notes},
            title="COGs",
        )

    def task_sizes(self, params: CogifyParams, tasks: list[Task]) -> dict[str, float]:
        """Input bytes per task, from one listing per input folder (never a HEAD per file)."""
        store = open_store(params.input_root)
        folders = {posixpath.dirname(t.params["key"]) for t in tasks if t.rejected is None}
        sizes = {info.key: info.size for folder in folders for info in store.list_dir(folder)}
        return {t.id: sizes[t.params["key"]] for t in tasks if t.params.get("key") in sizes}

    def run(self, task: Task) -> dict[str, Any]:
        p = task.params
        src = open_store(p["input_root"]).gdal_path(p["key"])
        with gdal_session(src), tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp:
            cog_path, preview_path = Path(tmp, "cog.tif"), Path(tmp, "preview.jpg")
            options = cog_options(
                p["profile"],
                blocksize=p["blocksize"],
                overview_resampling=p["overview_resampling"],
                quality=p["quality"],
            )
            with _open_input(src, p["key"]) as ds:
                dtype, count = ds.dtypes[0], ds.count
                if p["num_bands"] is not None and p["num_bands"] != count:
                    raise PermanentError(
                        f"manifest says {p['num_bands']} band(s), {p['key']} has {count}"
                    )
                check_profile_fits(p["profile"], dtype, count)
                staged = _convert_in_memory(ds, p, cog_path, preview_path, options)
                if staged is None:  # too big for memory, or masks GDAL must carry itself
                    write_cog(src, cog_path, options)
                    shape = write_preview(
                        str(cog_path),
                        preview_path,
                        bands=p["preview_bands"],
                        max_size=p["preview_max_size"],
                        quality=p["preview_quality"],
                    )
                    bands = None
                else:
                    shape, bands = staged
                # The input's grid and tags are the COG's (GDAL copies them): the item
                # is made from the dataset open already.
                item = _item(task, ds, cog_path, shape, bands)
            cog_bytes = cog_path.stat().st_size
            dest = open_store(task.dest)
            dest.put_file(cog_path, p["cog"], move=True)
            dest.put_file(preview_path, p["preview"], move=True)
            dest.put_bytes(item_bytes(item), task.marker)  # last: marks the task done
            extent = item_extent(item)
            return {"bytes_out": cog_bytes, "bands": count, "dtype": dtype, FINISH_METRIC: extent}


def _convert_in_memory(
    ds: DatasetReader, p: dict[str, Any], cog_path: Path, preview_path: Path, options: dict
) -> tuple[tuple[int, int], list[dict[str, Any]]] | None:
    """COG, preview and ``raster:bands`` from one read of the input: the COG from an
    in-memory copy with its overviews, the statistics from those overviews, the preview
    from the pixels. (preview shape, raster:bands), or None where ``ds`` cannot be staged.
    Overviews are built from the full resolution with the job's resampling, also for an
    input that has some (GDAL would copy those: it keeps their number of levels)."""
    if not can_stage(ds):
        return None
    pixels = ds.read()
    factors = overview_factors_for(ds, p["blocksize"])
    resampling = p["overview_resampling"]
    with staged_raster(ds, pixels, factors=factors or [], resampling=resampling) as mem:
        write_cog(mem, cog_path, options)
        # The level the statistics are taken at: an overview the COG has where they are
        # built here; where GDAL builds them, the pixels resampled as rio-stac reads them.
        size = STATS_SIZE if factors is None else _stats_size(ds.width, ds.height, factors)
        shape = stats_shape(ds.height, ds.width, size)
        levels = pixels if shape == pixels.shape[1:] else mem.read(out_shape=(ds.count, *shape))
    bands = raster_bands_from(ds, levels)
    first = preview_bands(ds.count, p["preview_bands"])[0]
    shape = write_preview_of(
        pixels,
        preview_path,
        nodata=ds.nodata,
        bands=p["preview_bands"],
        max_size=p["preview_max_size"],
        quality=p["preview_quality"],
        colour_tables={first: colour_table(ds, first)},
    )
    return shape, bands


def item_id(key: str) -> str:
    """The STAC id of the item of input ``key``: its path without suffix, ``/`` as ``-``
    (``a/B04.tif`` and ``b/B04.tif`` are ``a-B04`` and ``b-B04``, unique in a STAC API)."""
    return posixpath.splitext(key)[0].replace("/", "-")


def _other_with_id(key: str, ids: dict[str, str]) -> bool:
    """Whether another image of other outputs already has the STAC id of ``key`` (rows
    of the same outputs are the engine's to report)."""
    other = ids.get(item_id(key))
    return other is not None and output_keys(other)[2] != output_keys(key)[2]


def _item(
    task: Task,
    ds: DatasetReader,
    cog_path: Path,
    preview_shape: tuple[int, int],
    bands: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The STAC item of the COG written for ``task`` from ``ds`` (``bands``: its
    ``raster:bands`` where known already): grid and ``datetime`` from ``ds``'s, or,
    for an image that carries no acquisition time, null with the interval it must lie in
    (from 1970-01-01 to now: acquired no later than it is processed)."""
    p = task.params
    when = source_datetime(ds)
    properties: dict[str, Any] = {
        "tilefleet:source": Location.parse(p["input_root"]).join(p["key"])
    }
    if when is None:
        properties["start_datetime"] = "1970-01-01T00:00:00Z"
        properties["end_datetime"] = stac_datetime(datetime.now(UTC))
    preview = {
        "href": f"./{posixpath.basename(p['preview'])}",
        "type": "image/jpeg",
        "roles": ["overview"],
        "proj:shape": list(preview_shape),
    }
    data = raster_asset(str(cog_path), f"./{posixpath.basename(p['cog'])}", bands=bands)
    return raster_item(
        ds,
        item_id=item_id(p["key"]),
        assets={"data": data, "preview": preview},
        properties=properties,
        when=when,
        collection=p["collection_id"],
        links=collection_links(task.marker),
    )


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


def _stats_size(width: int, height: int, factors: list[int]) -> int:
    """The longest side of the biggest of the raster or its overviews (at ``factors``)
    that is at most :data:`STATS_SIZE` pixels: the statistics read it as it is, not
    resampled from a bigger level."""
    for factor in [1, *factors]:
        side = -(-max(width, height) // factor)
        if side <= STATS_SIZE:
            return side
    return STATS_SIZE


def _itemsize(dtype: str) -> int:
    return int(np.dtype(dtype).itemsize)


def _scratch_itemsize(dtypes: tuple[str, ...]) -> int:
    """Bytes per pixel of the copy a preview band is scaled in: none for 8- and 16-bit
    integers (a lookup table), float32 for float32 data, float64 for the rest."""
    dtype = np.dtype(dtypes[0])
    if dtype.kind in "iu" and dtype.itemsize <= 2:
        return 0
    return 4 if dtype.kind == "f" and dtype.itemsize <= 4 else 8


@contextlib.contextmanager
def _open_input(src: str, key: str) -> Iterator[DatasetReader]:
    try:
        ds = rasterio.open(src)
    except RasterioIOError as exc:
        if is_missing_file(exc):
            raise PermanentError(f"input {key} not found") from exc
        raise
    with ds:
        yield ds
