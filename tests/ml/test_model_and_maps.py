"""train, predict, export, publish: metrics in the report, valid COGs, the zone map equal
to the patches pasted by hand, a valid STAC collection pushed to a STAC API."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pyarrow.dataset as ds
import pytest
import rasterio
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import box, shape

from stac_validation import stac_errors
from tilefleet.recipes import get_recipe
from tilefleet.store.patch_cube import read_cube


def _report(local_chain, step: str) -> dict:
    return json.loads((local_chain.root / "runs" / step / "report.json").read_text())


def test_train_reports_metrics_above_chance_and_writes_a_model_card(local_chain):
    results = _report(local_chain, "train")["results"]
    validation = ds.dataset(str(local_chain["merged"] / "validation")).to_table()
    labels = validation["label"].to_numpy()
    majority = max(np.mean(labels == 0), np.mean(labels == 1))
    assert results["accuracy"] > majority + 0.1, (results, majority)
    assert results["f1_macro"] > 0.75
    confusion = [[results[f"confusion_{t}_{p}"] for p in (0, 1)] for t in (0, 1)]
    assert sum(map(sum, confusion)) == results["test_rows"] == len(labels)
    assert (confusion[0][0] + confusion[1][1]) / len(labels) == pytest.approx(
        results["accuracy"], abs=1e-4
    )
    card = json.loads((local_chain["model"] / "model.json").read_text())
    assert card["features"] == ["NDVI", "NDWI", "NDBI", "B02", "B03", "B04", "B08", "B11"]
    assert card["classes"] == [0, 1] and card["kind"] == "classification"
    assert card["params"]["n_estimators"] == 60
    provenance = card["provenance"]
    assert provenance["train_rows"] == results["train_rows"]
    assert [f["key"] for f in provenance["train_files"]] == ["train/part-00000.parquet"]
    assert (local_chain["model"] / "model.txt").stat().st_size > 1000


def test_a_regressor_learns_values_from_a_raster_reference(local_chain, data_dir, tmp_path):
    """NIR reflectance (B08) learnt from the other bands' indices: R² well above 0."""
    tiles = {"tiles": local_chain.variables["patches"], "resolution": 100}
    steps = [
        (
            "reference",
            {
                **tiles,
                "raster": str(data_dir / "s2_l2a_29RKH_20200219/B08.tif"),
                "target": "values",
                "dest": str(tmp_path / "ref"),
            },
        ),
        (
            "sample",
            {
                **tiles,
                "features": str(local_chain["features"]),
                "reference": str(tmp_path / "ref"),
                "fraction": 0.1,
                "dest": str(tmp_path / "samples"),
            },
        ),
        ("merge-samples", {"input": str(tmp_path / "samples"), "dest": str(tmp_path / "merged")}),
        (
            "train",
            {
                "input": str(tmp_path / "merged"),
                "kind": "regression",
                "features": ["NDVI", "NDWI", "B02", "B03", "B04"],
                "model_params": {"n_estimators": 40},
                "dest": str(tmp_path / "model"),
            },
        ),
    ]
    for name, values in steps:
        recipe = get_recipe(name)
        outcome = [recipe.run(task) for task in recipe.plan(recipe.Params.model_validate(values))]
    (metrics,) = outcome
    assert metrics["r2"] > 0.8 and metrics["rmse"] == pytest.approx(metrics["mse"] ** 0.5, 1e-3)


def test_predictions_are_valid_cogs_of_the_models_classes(local_chain):
    import lightgbm

    report = _report(local_chain, "predict")
    # Loaded once per worker: one worker, eight patches.
    assert report["results"]["model_loads"] == 1 and report["succeeded"] == 8
    booster = lightgbm.Booster(model_file=str(local_chain["model"] / "model.txt"))
    tile = "32629_28_279"
    path = local_chain["predictions"] / f"{tile}.tif"
    assert cog_validate(str(path), quiet=True)[0]
    probabilities_path = local_chain["predictions"] / f"{tile}-probabilities.tif"
    assert cog_validate(str(probabilities_path), quiet=True)[0]
    features = read_cube(str(local_chain["features"]), tile)
    with rasterio.open(path) as src:
        classes, nodata = src.read(1), src.nodata
        assert src.transform[:6] == features.transform and src.shape == (110, 110)
    with rasterio.open(probabilities_path) as src:
        probabilities = src.read()
    valid = features.valid[0]
    assert (classes[~valid] == nodata).all()
    values = features.data[0].reshape(8, -1).T[valid.ravel()]
    expected = (booster.predict(values) > 0.5).astype(int)
    np.testing.assert_array_equal(classes[valid], expected)
    np.testing.assert_allclose(probabilities[:, valid].sum(axis=0), 1.0, rtol=1e-5)
    assert set(np.unique(classes[valid]).tolist()) == {0, 1}


def _pasted_by_hand(predictions, size=10000, res=100.0):
    """Each patch's own square (buffer cropped), pasted onto the zone grid by hand."""
    x0, y1 = 25 * size, 280 * size
    out = np.full((200, 400), 255, dtype=np.uint8)
    for path in sorted(predictions.glob("32629_*_*[0-9].tif")):
        _, col, row = (int(v) for v in path.stem.split("_"))
        with rasterio.open(path) as src:
            left, top = (
                (col * size - src.transform.c) / res,
                (src.transform.f - (row + 1) * size) / res,
            )
            block = src.read(1, window=Window(int(left), int(top), 100, 100))
        r, c = int((y1 - (row + 1) * size) / res), int((col * size - x0) / res)
        out[r : r + 100, c : c + 100] = block
    return out


def test_the_zone_map_is_the_patches_cropped_and_pasted(local_chain):
    path = local_chain["maps"] / "UTM_32629.tif"
    assert cog_validate(str(path), quiet=True)[0]
    with rasterio.open(path) as src:
        merged = src.read(1)
        assert src.crs.to_epsg() == 32629 and src.nodata == 255
        assert tuple(src.bounds) == (250000.0, 2780000.0, 290000.0, 2800000.0)
    np.testing.assert_array_equal(merged, _pasted_by_hand(local_chain["predictions"]))


def test_a_zone_with_a_missing_patch_is_nodata_there_with_a_warning(local_chain, tmp_path):
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    for path in local_chain["predictions"].glob("*.tif"):
        if not path.name.startswith("32629_26_278"):
            (predictions / path.name).write_bytes(path.read_bytes())
    recipe = get_recipe("export")
    params = recipe.Params.model_validate(
        {
            "tiles": local_chain.variables["patches"],
            "input": str(predictions),
            "dest": str(tmp_path / "maps"),
        }
    )
    (task,) = recipe.plan(params)
    metrics = recipe.run(task)
    assert "1 of 8 patches have no prediction" in metrics["warning"]
    with rasterio.open(tmp_path / "maps" / "UTM_32629.tif") as src:
        merged = src.read(1)
    expected = _pasted_by_hand(predictions)
    np.testing.assert_array_equal(merged, expected)
    assert (merged[100:200, 100:200] == 255).all()  # where 26_278 lies


class _TransactionsApi:
    """A STAC API with the Transactions extension, on loopback: it keeps what it is sent,
    answers 409 to a second POST of the same id, and takes a PUT as a replacement."""

    def __init__(self):
        self.collections, self.items, self.requests = {}, {}, []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _body(self):
                return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

            def _answer(self, status):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def do_POST(self):
                body, parts = self._body(), self.path.strip("/").split("/")
                api.requests.append(("POST", self.path))
                if parts == ["collections"]:
                    exists = body["id"] in api.collections
                    api.collections.setdefault(body["id"], body)
                elif len(parts) == 3 and parts[2] == "items" and parts[1] in api.collections:
                    key = (parts[1], body["id"])
                    exists = key in api.items
                    api.items.setdefault(key, body)
                else:
                    return self._answer(404)
                self._answer(409 if exists else 201)

            def do_PUT(self):
                body, parts = self._body(), self.path.strip("/").split("/")
                api.requests.append(("PUT", self.path))
                if len(parts) == 2:
                    api.collections[parts[1]] = body
                else:
                    api.items[(parts[1], parts[3])] = body
                self._answer(200)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def test_the_collection_is_valid_stac_with_clipped_footprints_and_provenance(local_chain):
    collection_path = local_chain["stac"] / "collection.json"
    item_path = local_chain["stac"] / "items" / "UTM_32629.json"
    assert stac_errors(collection_path) == [] and stac_errors(item_path) == []
    collection, item = json.loads(collection_path.read_text()), json.loads(item_path.read_text())
    assert collection["id"] == "cloud-maps-2020"
    aoi = box(*local_chain.variables["patches"]["bbox"])
    footprint = shape(item["geometry"])
    assert footprint.within(aoi.buffer(1e-9)) and footprint.area == pytest.approx(aoi.area, 0.01)
    assert item["properties"]["start_datetime"] == "2020-02-01T00:00:00Z"
    assert rasterio.open(item["assets"]["data"]["href"]).count == 1
    via = [link for link in collection["links"] if link["rel"] == "via"]
    assert {link["title"].split("(")[1].split(")")[0] for link in via} >= {
        "patch-data",
        "features",
        "train",
        "predict",
        "export",
    }
    (model,) = [link for link in collection["links"] if link["rel"] == "derived_from"]
    assert model["href"].endswith("model.json")
    assert "LightGBM classification on 8 features" in item["properties"]["processing:lineage"]


def test_publish_pushes_to_a_stac_api_and_replaces_on_a_rerun(local_chain, tmp_path):
    api = _TransactionsApi()
    try:
        recipe = get_recipe("publish")
        params = recipe.Params.model_validate(
            {
                "tiles": local_chain.variables["patches"],
                "input": str(local_chain["maps"]),
                "model": str(local_chain["model"]),
                "collection_id": "maps",
                "stac_api_url": api.url,
                "dest": str(tmp_path),
            }
        )
        (task,) = recipe.plan(params)
        assert recipe.run(task)["pushed_items"] == 1
        assert recipe.run(task)["pushed_items"] == 1  # again: 409, then PUT
    finally:
        api.stop()
    assert set(api.items) == {("maps", "UTM_32629")}
    assert api.collections["maps"]["id"] == "maps"
    assert ("PUT", "/collections/maps/items/UTM_32629") in api.requests
    pushed = api.items[("maps", "UTM_32629")]
    assert pushed == json.loads((tmp_path / "items" / "UTM_32629.json").read_text())


def test_a_model_of_other_features_fails_the_patch_naming_them(local_chain, tmp_path):
    from tilefleet.errors import PermanentError

    model = tmp_path / "model"
    model.mkdir()
    card = json.loads((local_chain["model"] / "model.json").read_text())
    card["features"] = [*card["features"][:-1], "NDSI"]
    (model / "model.json").write_text(json.dumps(card))
    (model / "model.txt").write_bytes((local_chain["model"] / "model.txt").read_bytes())
    recipe = get_recipe("predict")
    params = recipe.Params.model_validate(
        {
            "tiles": local_chain.variables["patches"],
            "resolution": 100,
            "features": str(local_chain["features"]),
            "model": str(model),
            "dest": str(tmp_path / "out"),
        }
    )
    task = recipe.plan(params)[0]
    with pytest.raises(PermanentError, match=rf"patch {task.id}: .* \(missing NDSI\)"):
        recipe.run(task)


def test_a_stac_api_refusal_is_one_permanent_line():
    from tilefleet.errors import PermanentError
    from tilefleet.recipes.ml.publish import push_to_api

    api = _TransactionsApi()
    try:  # a root the API does not serve: 404, not retried
        with pytest.raises(PermanentError, match=r"refused POST .*/wrong/collections: HTTP 404"):
            push_to_api(f"{api.url}/wrong", {"id": "maps", "links": []}, [], 5)
    finally:
        api.stop()


def test_export_plans_one_task_per_utm_zone_of_the_grid():
    recipe = get_recipe("export")
    params = recipe.Params.model_validate(
        {
            "tiles": {"grid": "utm", "bbox": [-12.1, 25.0, -11.9, 25.1], "size": 10000},
            "input": "predictions",
            "dest": "maps",
        }
    )
    tasks = {task.id: task for task in recipe.plan(params)}
    assert set(tasks) == {"UTM_32628", "UTM_32629"}  # the bbox crosses 12 degrees west
    for task in tasks.values():
        assert task.marker == f"{task.id}.json"
        assert task.params["patches"] >= 1 and task.params["cols"][0] <= task.params["cols"][1]
