"""``reference``: the labels of each patch on its grid, rasterised from a vector file
(GeoJSON, GeoPackage, GeoParquet: a class or value column) or resampled from a reference
raster, as a one-band cube (``label``) with a valid mask: pixels no feature covers, or
whose value ``classes`` does not map, are unlabelled.

``classes`` maps source values (raster values, or the column's values, text included) to
the labels to learn; without it the values are the labels. ``target: values`` keeps
float values, for regression.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from tilefleet.errors import PermanentError
from tilefleet.recipes.ml.common import PatchParams, patch_geobox, patch_task, write_marker
from tilefleet.recipes.tiled import TiledRecipe
from tilefleet.task import Task
from tilefleet.tiles.tile import Tile

LABEL_BAND = "label"
UNLABELLED = -1  # the fill of a class label cube where it is not valid


class ReferenceParams(PatchParams):
    path_fields: ClassVar[tuple[str, ...]] = (*PatchParams.path_fields, "raster", "vector")

    raster: str | None = Field(None, description="Reference raster (path, s3:// or URL)")
    band: int = Field(1, ge=1, description="Band of the reference raster")
    vector: str | None = Field(None, description="Reference vector file (GeoJSON, GeoParquet…)")
    column: str = Field("class", description="Column of the vector file holding the labels")
    classes: dict[int | str, int | float] | None = Field(
        None, description="Source value -> label; values not listed are unlabelled"
    )
    target: Literal["classes", "values"] = Field(
        "classes", description="Integer class labels, or float values (regression)"
    )
    resampling: Literal["nearest", "mode", "bilinear", "average"] = Field(
        "nearest", description="Resampling of the reference raster onto the patch grid"
    )

    @model_validator(mode="after")
    def _check(self) -> ReferenceParams:
        if (self.raster is None) == (self.vector is None):
            raise ValueError("give exactly one of raster or vector")
        return self


class ReferenceRecipe(TiledRecipe):
    name = "reference"
    summary = "Labels per patch, rasterised from a vector file or resampled from a raster."
    Params = ReferenceParams
    default_task_s = 0.5

    def task_for(self, tile: Tile, params: ReferenceParams) -> Task:
        payload = params.model_dump(
            mode="json",
            include={"raster", "band", "vector", "column", "target", "resampling"},
        )
        payload["classes"] = (
            None if params.classes is None else [[k, v] for k, v in params.classes.items()]
        )
        return patch_task(self.name, tile, params, payload)

    def run(self, task: Task) -> dict[str, Any]:
        from tilefleet.store.patch_cube import PatchCube, write_cube

        p = task.params
        tile, geobox = patch_geobox(p)
        if p["raster"]:
            values, covered = _read_raster(p, geobox, tile.id)
        else:
            values, covered = _rasterise_vector(p, geobox, tile)
        labels, valid = _labels(values, covered, p)
        cube = PatchCube(
            labels[np.newaxis, np.newaxis],
            valid[np.newaxis],
            [LABEL_BAND],
            ["reference"],
            tile.epsg,
            tuple(geobox.affine)[:6],
            {"tile": p["tile"], "target": p["target"]},
        )
        written = write_cube(task.dest, tile.id, cube)
        count = int(valid.sum())
        write_marker(task, {"tile": tile.id, "labelled": count})
        metrics: dict[str, Any] = {"bytes_out": written, "labelled": count}
        if count == 0:
            metrics["warning"] = f"patch {tile.id}: no labelled pixel"
        return metrics


def _labels(values: np.ndarray, covered: np.ndarray, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """Source values mapped to labels (``classes``), and where a pixel has one."""
    floats = p["target"] == "values"
    dtype, fill = (np.float32, np.nan) if floats else (np.int32, UNLABELLED)
    if p["classes"] is None:
        labels = np.where(covered, values, fill).astype(dtype)
        return labels, covered.copy()
    labels = np.full(values.shape, fill, dtype=dtype)
    valid = np.zeros(values.shape, dtype=bool)
    for source, label in p["classes"]:
        hit = covered & (values == _like(source, values))
        labels[hit] = label
        valid |= hit
    return labels, valid


def _like(source: Any, values: np.ndarray) -> Any:
    """A ``classes`` key as the values' type (job-file keys may come as text)."""
    if values.dtype.kind in "iuf" and isinstance(source, str):
        try:
            return float(source)
        except ValueError:
            return None
    return source


def _read_raster(p: dict, geobox, tile_id: str) -> tuple[np.ndarray, np.ndarray]:
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioIOError

    from tilefleet.sources.grid_read import BandSource, GridReader
    from tilefleet.store.gdal_env import gdal_config, is_missing_file

    try:
        with rasterio.Env(**gdal_config()), GridReader(geobox) as reader:
            return reader.read(
                BandSource(p["raster"], p["band"]),
                slice(0, geobox.shape.y),
                Resampling[p["resampling"]],
            )
    except RasterioIOError as exc:
        if is_missing_file(exc) or "not recognized" in str(exc):
            raise PermanentError(f"patch {tile_id}: cannot read reference raster: {exc}") from None
        raise


def _rasterise_vector(p: dict, geobox, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
    """The column's values burnt onto the grid (last feature wins where they overlap)."""
    from rasterio.features import rasterize

    frame = _read_vector(p["vector"], tile)
    if p["column"] not in frame.columns:
        raise PermanentError(
            f"patch {tile.id}: the reference vector has no column {p['column']!r} "
            f"(it has {', '.join(map(str, frame.columns))})"
        )
    frame = frame.to_crs(epsg=tile.epsg)
    shape = geobox.shape.yx
    column = frame[p["column"]]
    if len(frame) == 0:
        return np.zeros(shape, np.float64), np.zeros(shape, bool)
    if column.dtype.kind not in "iufb":  # text classes: burn their position, map back after
        names = sorted(column.astype(str).unique())
        codes = column.astype(str).map({n: i for i, n in enumerate(names)}).to_numpy()
    else:
        names, codes = None, column.to_numpy(dtype=np.float64)
    # Burn each feature's position, so that one pass serves numbers and text alike.
    index = rasterize(
        ((geometry, i) for i, geometry in enumerate(frame.geometry.values)),
        out_shape=shape,
        transform=geobox.affine,
        fill=-1,
        dtype="int32",
    )
    covered = index >= 0
    values = np.zeros(shape, dtype=object if names else np.float64)
    picked = codes[index[covered]]
    values[covered] = np.array(names, dtype=object)[picked.astype(int)] if names else picked
    return values, covered


def _read_vector(path: str, tile: Tile):
    """The features of ``path`` near the patch (GeoParquet or any OGR format)."""
    import geopandas as gpd

    from tilefleet.tiles.tile import transform_geometry

    try:
        if path.endswith((".parquet", ".geoparquet")):
            frame = gpd.read_parquet(path)
            if frame.crs is not None and len(frame):
                area = transform_geometry(tile.footprint, 4326, frame.crs.to_epsg() or 4326)
                frame = frame[frame.intersects(area)]
            return frame
        import pyogrio

        crs = pyogrio.read_info(path).get("crs")
        epsg = gpd.GeoSeries([], crs=crs).crs.to_epsg() if crs else 4326
        bbox = transform_geometry(tile.footprint, 4326, epsg).bounds
        return gpd.read_file(path, bbox=bbox, engine="pyogrio")
    except (OSError, ValueError, RuntimeError) as exc:  # pyogrio's errors are RuntimeErrors
        raise PermanentError(
            f"patch {tile.id}: cannot read reference vector {path}: {exc}"
        ) from None
