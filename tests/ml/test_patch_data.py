"""patch-data: the real scene's bands and SCL on each patch's grid, through the STAC API."""

from __future__ import annotations

import numpy as np
import rasterio

from ml.conftest import SCENE
from tilefleet.store.patch_cube import read_cube

SCENE_TOP, SCENE_LEFT = 2800020.0, 199980.0  # the scene's grid origin (EPSG:32629)


def _nearest(data_dir, name: str, cube) -> np.ndarray:
    """The file's values at each cube pixel centre, picked by hand (nearest neighbour)."""
    with rasterio.open(data_dir / SCENE / name) as src:
        values, res = src.read(1), src.transform.a
    a, _, c, _, e, f = cube.transform
    rows, cols = cube.shape
    y = f + (np.arange(rows) + 0.5) * e
    x = c + (np.arange(cols) + 0.5) * a
    r = np.floor((SCENE_TOP - y) / res).astype(int)
    k = np.floor((x - SCENE_LEFT) / res).astype(int)
    inside_r, inside_k = (r >= 0) & (r < values.shape[0]), (k >= 0) & (k < values.shape[1])
    out = np.zeros((rows, cols), dtype=values.dtype)
    out[np.ix_(inside_r, inside_k)] = values[np.ix_(r[inside_r], k[inside_k])]
    return out


def test_each_patch_cube_holds_the_scene_bands_and_scl_on_the_buffered_grid(local_chain, data_dir):
    cubes = sorted(p.name for p in local_chain["data"].glob("*.zarr"))
    assert len(cubes) == 8
    cube = read_cube(str(local_chain["data"]), "32629_26_279")
    assert cube.bands == ["B02", "B03", "B04", "B08", "B11", "SCL"]
    assert cube.times == ["2020-02-19"]
    assert cube.data.shape == (1, 6, 110, 110)  # 10 km + 2 x 500 m at 100 m
    assert cube.transform[:3] == (100.0, 0.0, 259500.0) and cube.transform[5] == 2800500.0
    for name in ("B04.tif", "B11.tif", "SCL.tif"):
        expected = _nearest(data_dir, name, cube)
        band = cube.band(name.removesuffix(".tif"))[0]
        np.testing.assert_array_equal(band[cube.valid[0]], expected[cube.valid[0]])
    # The buffer reaches 480 m past the scene's northern edge: those 5 rows are invalid,
    # the rest valid (the test keeps clouds valid: scl_mask [0]).
    assert not cube.valid[0, :5].any()
    assert cube.valid[0, 5:].all()


def test_scl_mask_classes_make_pixels_invalid_but_keep_their_values(local_chain, tmp_path):
    from tilefleet.recipes import get_recipe

    recipe = get_recipe("patch-data")
    step = dict(local_chain.steps["data"])
    step.pop("name"), step.pop("recipe")
    tiles = dict(local_chain.variables["patches"])
    params = recipe.Params.model_validate(
        {
            **step,
            "tiles": tiles,
            "resolution": 100,
            "start_date": "2020-02-01",
            "end_date": "2020-02-29",
            "scl_mask": [0, 8, 9, 10],
            "dest": str(tmp_path),
        }
    )
    (task,) = [t for t in recipe.plan(params) if t.id == "32629_28_279"]
    metrics = recipe.run(task)
    masked = read_cube(str(tmp_path), task.id)
    kept = read_cube(str(local_chain["data"]), task.id)
    cloudy = np.isin(kept.band("SCL")[0], [8, 9, 10])
    assert cloudy.sum() > 500  # the corner is cloudy
    assert not masked.valid[0][cloudy].any()
    assert (masked.valid[0] == (kept.valid[0] & ~cloudy)).all()
    np.testing.assert_array_equal(masked.data, kept.data)  # values kept, only flagged
    assert metrics["valid_fraction"] < 0.8


def test_a_patch_no_scene_covers_fails_alone_with_one_line(stac_api, tmp_path):
    import tilefleet

    # Patches straddling the scene's eastern edge (lon -10.87) and past it.
    result = tilefleet.run(
        "patch-data",
        run_dir=tmp_path / "run",
        progress=False,
        workers=1,
        tiles={"grid": "utm", "bbox": [-10.95, 25.20, -10.78, 25.28], "size": 10000},
        resolution=100,
        stac_url=stac_api.url,
        collections=["sentinel-2-l2a"],
        start_date="2020-02-01",
        end_date="2020-02-29",
        dest=str(tmp_path / "out"),
    )
    assert result.exit_code != 0
    failed = {t.id: t.reason for t in result.failed}
    assert failed and all("no scene covers it" in r and tid in r for tid, r in failed.items())
    assert result.counts["succeeded"] >= 1
