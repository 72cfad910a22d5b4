"""``predict``: the trained model on every patch's features, one COG per patch (buffer
kept, so ``export`` can crop it), classes or values, class probabilities optional.

The model is loaded once per worker process and kept (module-level cache, checked against
the model card on every task so a retrained model is picked up). Classes are written as
uint8 (nodata 255) when they fit, else int32; values as float32 (nodata NaN). Pixels
without valid features are nodata. Outputs: ``{tile}.tif``, ``{tile}-probabilities.tif``
(one float32 band per class) and the marker ``{tile}.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from tilefleet.errors import PermanentError
from tilefleet.recipes.ml.common import PatchParams, patch_task, write_marker
from tilefleet.recipes.tiled import TiledRecipe
from tilefleet.store.location import StoreURL
from tilefleet.task import Task
from tilefleet.tiles.tile import Tile

PREDICTION_SUFFIX = ".tif"
PROBABILITIES_SUFFIX = "-probabilities.tif"
#: Per worker process: model folder URL -> (model card bytes, booster, card).
_MODELS: dict[str, tuple[bytes, Any, dict]] = {}


class PredictParams(PatchParams):
    path_fields = (*PatchParams.path_fields, "features", "model")

    features: StoreURL = Field(description="Folder of the features cubes")
    model: StoreURL = Field(description="Folder of the trained model (model.json, model.txt)")
    probabilities: bool = Field(False, description="Also write class probabilities")
    clip: tuple[float, float] | None = Field(
        None, description="Regression: clip values to [lo, hi]"
    )
    profile: str = Field("deflate", description="COG compression profile")


class PredictRecipe(TiledRecipe):
    name = "predict"
    summary = "Apply the trained model to every patch: one prediction COG per patch."
    Params = PredictParams
    default_task_s = 1.0

    def task_for(self, tile: Tile, params: PredictParams) -> Task:
        payload = params.model_dump(
            mode="json", include={"features", "model", "probabilities", "clip", "profile"}
        )
        return patch_task(self.name, tile, params, payload)

    def run(self, task: Task) -> dict[str, Any]:
        return run_predict(task)


def load_model(url: str) -> tuple[Any, dict, bool]:
    """(booster, card, loaded now) for the model folder ``url``, from this process's cache
    unless its card changed."""
    import json
    import tempfile
    from pathlib import Path

    from tilefleet.recipes.ml.train import MODEL_CARD_KEY, MODEL_KEY
    from tilefleet.store.objects import open_store

    store = open_store(url)
    try:
        card_bytes = store.get_bytes(MODEL_CARD_KEY)
    except (FileNotFoundError, OSError) as exc:
        raise PermanentError(f"no trained model at {url} ({type(exc).__name__})") from None
    cached = _MODELS.get(url)
    if cached is not None and cached[0] == card_bytes:
        return cached[1], cached[2], False
    import lightgbm

    card = json.loads(card_bytes)
    if store.location.is_local:
        booster = lightgbm.Booster(model_file=store.gdal_path(card.get("model", MODEL_KEY)))
    else:
        with tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp:
            path = Path(tmp) / MODEL_KEY
            path.write_bytes(store.get_bytes(card.get("model", MODEL_KEY)))
            booster = lightgbm.Booster(model_file=str(path))
    _MODELS[url] = (card_bytes, booster, card)
    return booster, card, True


def class_raster_type(classes: list) -> tuple[str, int]:
    """(dtype, nodata) of a class map."""
    if all(isinstance(c, int) and 0 <= c < 255 for c in classes):
        return "uint8", 255
    return "int32", np.iinfo(np.int32).min


def run_predict(task: Task) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    from tilefleet.recipes.ml.sample import feature_columns
    from tilefleet.store.objects import open_store
    from tilefleet.store.patch_cube import read_cube

    p = task.params
    tile_id = p["tile"]["id"]
    booster, card, loaded = load_model(p["model"])
    cube = read_cube(p["features"], tile_id, what="features")
    names = feature_columns(cube)
    if names != card["features"]:
        missing = [n for n in card["features"] if n not in names]
        raise PermanentError(
            f"patch {tile_id}: its features do not match the model's"
            + (f" (missing {', '.join(missing[:5])})" if missing else " (order or extra columns)")
        )
    t, b, rows, cols = cube.data.shape
    values = cube.data.transpose(2, 3, 0, 1).reshape(rows * cols, t * b)
    ok = cube.valid.all(axis=0).ravel() & np.isfinite(values).all(axis=1)
    raw = booster.predict(values[ok]) if ok.any() else np.empty((0,))
    layers: dict[str, tuple[np.ndarray, Any]] = {}
    if card["kind"] == "classification":
        classes = card["classes"]
        probs = raw.reshape(-1, 1) if raw.ndim == 1 else raw
        if probs.shape[1] == 1:  # binary: LightGBM gives the probability of the 2nd class
            probs = np.column_stack([1 - probs[:, 0], probs[:, 0]])
        dtype, nodata = class_raster_type(classes)
        labels = np.full(rows * cols, nodata, dtype=dtype)
        labels[ok] = np.asarray(classes)[probs.argmax(axis=1)] if len(probs) else []
        layers[PREDICTION_SUFFIX] = (labels.reshape(1, rows, cols), nodata)
        if p["probabilities"]:
            out = np.full((len(classes), rows * cols), np.nan, dtype=np.float32)
            out[:, ok] = probs.T
            layers[PROBABILITIES_SUFFIX] = (out.reshape(len(classes), rows, cols), float("nan"))
    else:
        if p["clip"]:
            raw = np.clip(raw, *p["clip"])
        out = np.full(rows * cols, np.nan, dtype=np.float32)
        out[ok] = raw
        layers[PREDICTION_SUFFIX] = (out.reshape(1, rows, cols), float("nan"))
    store = open_store(task.dest)
    size = 0
    with tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp:
        for suffix, (array, nodata) in layers.items():
            path = _write_prediction_cog(Path(tmp), array, nodata, cube, p["profile"])
            size += path.stat().st_size
            store.put_file(path, f"{tile_id}{suffix}", move=True)
    write_marker(task, {"tile": tile_id, "predicted": int(ok.sum()), "model": p["model"]})
    return {"predicted_pixels": int(ok.sum()), "bytes_out": size, "model_loads": int(loaded)}


def _write_prediction_cog(tmp, array: np.ndarray, nodata, cube, profile: str):
    import uuid

    import rasterio
    from affine import Affine

    from tilefleet.store.cog import cog_options, write_cog

    plain = tmp / f"{uuid.uuid4().hex}.tif"
    cog = tmp / f"{uuid.uuid4().hex}-cog.tif"
    count, rows, cols = array.shape
    with rasterio.open(
        plain,
        "w",
        driver="GTiff",
        width=cols,
        height=rows,
        count=count,
        dtype=array.dtype,
        crs=f"EPSG:{cube.epsg}",
        transform=Affine(*cube.transform),
        nodata=nodata,
    ) as out:
        out.write(array)
    write_cog(str(plain), cog, cog_options(profile))
    return cog
