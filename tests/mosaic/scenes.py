"""Real Sentinel-2 scenes described as STAC items whose assets are the local files."""

from __future__ import annotations

import json
from pathlib import Path

S2_SCENE = "s2_l2a_29RKH_20200219"
# Earth Search asset keys of the scene and the downsampled real files holding them.
S2_FILES = {
    "blue": "B02.tif",
    "green": "B03.tif",
    "red": "B04.tif",
    "nir": "B08.tif",
    "swir16": "B11.tif",
    "scl": "SCL.tif",
}


def local_scene_item(data_dir: Path) -> dict:
    """The scene's real STAC item, its assets pointing at the local copies of the files.

    The copies are downsampled (100 m, 200 m), so the full-resolution ``proj:shape`` and
    ``proj:transform`` of the assets are dropped; everything else is the item as published.
    """
    folder = data_dir / S2_SCENE
    item = json.loads((folder / "S2A_29RKH_20200219_0_L2A.json").read_text())
    assets = {}
    for key, name in S2_FILES.items():
        asset = dict(item["assets"][key])
        asset["href"] = str(folder / name)
        asset.pop("proj:shape", None)
        asset.pop("proj:transform", None)
        assets[key] = asset
    item["assets"] = assets
    item["links"] = []
    return item
