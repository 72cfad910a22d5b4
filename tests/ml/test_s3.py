"""Every step of the chain with its folders on S3 (the loopback moto server): the same
zone map as the local chain's."""

from __future__ import annotations

import json

import numpy as np
import rasterio

from ml.conftest import CLASSES, SCENE
from tilefleet.recipes import get_recipe


def _run_in_process(name: str, values: dict) -> list[dict]:
    recipe = get_recipe(name)
    params = recipe.Params.model_validate(values)
    return [recipe.run(task) for task in recipe.plan(params)]


def test_the_chain_reads_and_writes_s3_folders(local_chain, s3, stac_api, data_dir, tmp_path):
    s3.create_bucket(Bucket="ml-chain")
    folder = {name: f"s3://ml-chain/out/{name}" for name in local_chain.folders}
    patches = {"tiles": local_chain.variables["patches"], "resolution": 100}
    steps = [
        (
            "patch-data",
            {
                **patches,
                "stac_url": stac_api.url,
                "collections": ["sentinel-2-l2a"],
                "start_date": "2020-02-01",
                "end_date": "2020-02-29",
                "scl_mask": [0],
                "dest": folder["data"],
            },
        ),
        (
            "features",
            {
                **patches,
                "input": folder["data"],
                "bands": local_chain.steps["features"]["bands"],
                "dest": folder["features"],
            },
        ),
        (
            "reference",
            {
                **patches,
                "raster": str(data_dir / SCENE / "SCL.tif"),
                "classes": CLASSES,
                "dest": folder["reference"],
            },
        ),
        (
            "sample",
            {
                **patches,
                "features": folder["features"],
                "reference": folder["reference"],
                "fraction": 0.2,
                "balanced": True,
                "seed": 7,
                "dest": folder["samples"],
            },
        ),
        (
            "merge-samples",
            {"input": folder["samples"], "validation_fraction": 0.25, "dest": folder["merged"]},
        ),
        (
            "train",
            {
                "input": folder["merged"],
                "model_params": local_chain.steps["train"]["model_params"],
                "dest": folder["model"],
            },
        ),
        (
            "predict",
            {
                **patches,
                "features": folder["features"],
                "model": folder["model"],
                "dest": folder["predictions"],
            },
        ),
        (
            "export",
            {"tiles": patches["tiles"], "input": folder["predictions"], "dest": folder["maps"]},
        ),
        (
            "publish",
            {
                "tiles": patches["tiles"],
                "input": folder["maps"],
                "model": folder["model"],
                "dest": folder["stac"],
            },
        ),
    ]
    for name, values in steps:
        _run_in_process(name, values)
    local_map = local_chain["maps"] / "UTM_32629.tif"
    s3.download_file("ml-chain", "out/maps/UTM_32629.tif", str(tmp_path / "map.tif"))
    with rasterio.open(tmp_path / "map.tif") as a, rasterio.open(local_map) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    body = s3.get_object(Bucket="ml-chain", Key="out/stac/items/UTM_32629.json")["Body"].read()
    assert json.loads(body)["assets"]["data"]["href"] == "s3://ml-chain/out/maps/UTM_32629.tif"
    card = json.loads(s3.get_object(Bucket="ml-chain", Key="out/model/model.json")["Body"].read())
    local_card = json.loads((local_chain["model"] / "model.json").read_text())
    assert card["metrics"] == local_card["metrics"]
