"""``train`` (one task): a LightGBM classifier or regressor on the merged samples.

It fits on ``{input}/train/`` and scores on ``{input}/validation/``; when no validation
rows exist, it holds out ``test_fraction`` of the training rows instead (seeded). The
metrics (accuracy, macro F1 and the confusion matrix; or MSE, RMSE, MAE, R²) are the
task's results, so they reach the run's report.json. Outputs: ``model.txt`` (LightGBM's
own text format, readable by any LightGBM) and ``model.json``, written last (the marker):
the feature names in order, the classes, the parameters, the metrics and the provenance
of the training data (its tables, their sizes and row counts).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tilefleet.recipes.base import Recipe
from tilefleet.recipes.params import RecipeParams
from tilefleet.store.location import StoreURL
from tilefleet.task import Task

MODEL_KEY = "model.txt"
MODEL_CARD_KEY = "model.json"
#: Sample columns that locate a pixel and are never features.
NOT_FEATURES = ("tile", "row", "col", "x", "y")


class TrainParams(RecipeParams):
    path_fields = ("input", "dest")

    input: StoreURL = Field(description="Folder of the merged samples (train/, validation/)")
    dest: StoreURL = Field(description="Folder the model goes to")
    kind: Literal["classification", "regression"] = Field(
        "classification", description="Classifier (classes) or regressor (values)"
    )
    label: str = Field("label", description="Column to learn")
    features: list[str] | None = Field(
        None, description="Feature columns [default: every column but the label and the pixel's]"
    )
    model_params: dict[str, Any] = Field(
        default_factory=dict, description="LightGBM parameters (n_estimators, num_leaves…)"
    )
    seed: int = Field(42, description="Seed of LightGBM and of the fallback split")
    test_fraction: float = Field(
        0.2, gt=0, lt=1, description="Held-out share when there is no validation table"
    )


class TrainRecipe(Recipe):
    name = "train"
    summary = "Train a LightGBM classifier or regressor on the merged samples (one task)."
    Params = TrainParams
    default_task_s = 30.0
    source_columns = ("model",)

    def plan(self, params: TrainParams) -> list[Task]:
        payload = params.model_dump(mode="json", exclude={"dest"})
        return [
            Task(
                "model",
                self.name,
                payload,
                str(params.dest),
                MODEL_CARD_KEY,
                source={"model": "model"},
            )
        ]

    def run(self, task: Task) -> dict[str, Any]:
        return train_model(task)

    def outputs_url(self, params: TrainParams) -> str:
        from tilefleet.store.location import Location

        return Location.parse(params.dest).join(MODEL_CARD_KEY)


def read_tables(url: str, folder: str):
    """Every Parquet file below ``{url}/{folder}/`` as one table (None if there is none),
    and the files it came from (key, bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tilefleet.store.objects import open_store

    store = open_store(url)
    listed = sorted(
        (i for i in store.list(folder) if i.key.endswith(".parquet")), key=lambda i: i.key
    )
    tables = []
    for info in listed:
        if store.location.is_local:
            tables.append(pq.read_table(store.gdal_path(info.key)))
        else:
            tables.append(pq.read_table(pa.BufferReader(store.get_bytes(info.key))))
    files = [{"key": i.key, "bytes": i.size} for i in listed]
    return (pa.concat_tables(tables) if tables else None), files


def train_model(task: Task) -> dict[str, Any]:
    import json
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    import lightgbm
    import numpy as np

    from tilefleet.errors import PermanentError
    from tilefleet.store.objects import open_store

    p = task.params
    train, train_files = read_tables(p["input"], "train")
    if train is None or train.num_rows == 0:
        raise PermanentError(f"no training rows in {p['input']}/train/")
    validation, validation_files = read_tables(p["input"], "validation")
    names = p["features"] or [c for c in train.column_names if c not in (*NOT_FEATURES, p["label"])]
    missing = [c for c in [*names, p["label"]] if c not in train.column_names]
    if missing:
        raise PermanentError(f"column(s) {', '.join(missing)} not in the training table")
    x, y = _matrix(train, names), train[p["label"]].to_numpy()
    if validation is not None and validation.num_rows:
        x_test, y_test = _matrix(validation, names), validation[p["label"]].to_numpy()
        scored_on = "validation"
    else:
        rng = np.random.default_rng(p["seed"])
        held = rng.random(len(y)) < p["test_fraction"]
        x, x_test, y, y_test = x[~held], x[held], y[~held], y[held]
        scored_on = f"test split ({p['test_fraction']:g} of train, seed {p['seed']})"
    if len(y_test) == 0:
        raise PermanentError("no row left to score the model on")
    settings = {"random_state": p["seed"], "verbose": -1, "n_jobs": 1, **p["model_params"]}
    if p["kind"] == "classification":
        model = lightgbm.LGBMClassifier(**settings)
    else:
        model = lightgbm.LGBMRegressor(**settings)
    try:
        model.fit(x, y)
    except (ValueError, TypeError, lightgbm.basic.LightGBMError) as exc:
        raise PermanentError(f"LightGBM refused the data or parameters: {exc}") from None
    predicted = model.predict(x_test)
    metrics = _scores(p["kind"], y_test, predicted, model)
    results = {k: v for k, v in metrics.items() if k not in ("classes", "confusion_matrix")}
    if p["kind"] == "classification":
        # Flat numbers, so that the run's report.json (which keeps numeric results) has
        # the confusion matrix: confusion_T_P counts the rows of class T predicted as P.
        for t, row in zip(metrics["classes"], metrics["confusion_matrix"], strict=True):
            for c, count in zip(metrics["classes"], row, strict=True):
                results[f"confusion_{t}_{c}"] = count
    card = {
        "kind": p["kind"],
        "features": names,
        "label": p["label"],
        "classes": model.classes_.tolist() if p["kind"] == "classification" else None,
        "params": settings,
        "metrics": metrics,
        "scored_on": scored_on,
        "provenance": {
            "input": p["input"],
            "train_files": train_files,
            "validation_files": validation_files,
            "train_rows": int(len(y)),
            "test_rows": int(len(y_test)),
            "lightgbm": lightgbm.__version__,
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        "model": MODEL_KEY,
    }
    dest = open_store(task.dest)
    with tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp:
        path = Path(tmp) / MODEL_KEY
        model.booster_.save_model(str(path))
        dest.put_file(path, MODEL_KEY, move=True)
    dest.put_bytes(json.dumps(card, indent=1).encode(), task.marker)  # last: the marker
    return {**results, "train_rows": int(len(y)), "test_rows": int(len(y_test))}


def _matrix(table, names: list[str]):
    """The feature columns as a float32 frame (named: LightGBM keeps the names)."""
    return table.select(names).to_pandas().astype("float32")


def _scores(kind: str, truth, predicted, model) -> dict[str, Any]:
    from sklearn import metrics

    if kind == "classification":
        classes = model.classes_.tolist()
        return {
            "accuracy": round(float(metrics.accuracy_score(truth, predicted)), 4),
            "f1_macro": round(float(metrics.f1_score(truth, predicted, average="macro")), 4),
            "classes": classes,
            "confusion_matrix": metrics.confusion_matrix(truth, predicted, labels=classes).tolist(),
        }
    mse = float(metrics.mean_squared_error(truth, predicted))
    return {
        "mse": round(mse, 6),
        "rmse": round(mse**0.5, 6),
        "mae": round(float(metrics.mean_absolute_error(truth, predicted)), 6),
        "r2": round(float(metrics.r2_score(truth, predicted)), 4),
    }
