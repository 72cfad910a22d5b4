"""features and reference: indices, aggregation and labels computed right on real patches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.conftest import CLASSES
from tilefleet.errors import PermanentError
from tilefleet.ops.indices import aggregate_over_time, normalized_difference
from tilefleet.recipes.ml.features import compute_features
from tilefleet.store.patch_cube import PatchCube, read_cube

TILE = "32629_28_279"


def test_features_are_the_indices_and_bands_of_the_patch_data(local_chain):
    data = read_cube(str(local_chain["data"]), TILE)
    features = read_cube(str(local_chain["features"]), TILE)
    assert features.bands == ["NDVI", "NDWI", "NDBI", "B02", "B03", "B04", "B08", "B11"]
    assert features.times == data.times and features.data.dtype == np.float32
    valid = data.valid[0]
    b = {name: data.band(name)[0].astype(np.float64) for name in ("B03", "B04", "B08", "B11")}
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 outside the scene
        by_hand = _indices_by_hand(b)
    for name, expected in by_hand.items():
        np.testing.assert_allclose(features.band(name)[0][valid], expected[valid], rtol=1e-6)
        assert np.isnan(features.band(name)[0][~valid]).all()
    np.testing.assert_array_equal(features.band("B08")[0][valid], b["B08"][valid])
    np.testing.assert_array_equal(features.valid, data.valid)


def _indices_by_hand(b: dict) -> dict:
    return {
        "NDVI": (b["B08"] - b["B04"]) / (b["B08"] + b["B04"]),
        "NDWI": (b["B03"] - b["B08"]) / (b["B03"] + b["B08"]),
        "NDBI": (b["B11"] - b["B08"]) / (b["B11"] + b["B08"]),
    }


def test_aggregation_over_time_uses_only_valid_dates():
    # Two dates made from the real values: the second one brighter, half of it invalid.
    rng = np.random.default_rng(0)
    first = rng.integers(500, 4000, size=(6, 4, 4)).astype(np.uint16)
    second = (first * 1.5).astype(np.uint16)
    data = np.stack([first, second])
    valid = np.ones((2, 4, 4), dtype=bool)
    valid[1, :2] = False
    cube = PatchCube(
        data,
        valid,
        ["B02", "B03", "B04", "B08", "B11", "SCL"],
        ["2020-02-01", "2020-02-11"],
        32629,
        (100.0, 0, 0, 0, -100.0, 0),
        {},
    )
    out = compute_features(cube, {"NDVI": ("B08", "B04")}, ["B04"], ["mean", "max", "p50"])
    assert out.bands == ["NDVI_mean", "NDVI_max", "NDVI_p50", "B04_mean", "B04_max", "B04_p50"]
    assert out.times == ["all"] and out.data.shape == (1, 6, 4, 4)
    b04 = out.band("B04_mean")[0]
    np.testing.assert_allclose(b04[:2], first[2, :2])  # only the first date is valid there
    np.testing.assert_allclose(b04[2:], (first[2, 2:] + second[2, 2:].astype(float)) / 2)
    np.testing.assert_allclose(out.band("B04_max")[0][2:], second[2, 2:])
    ndvi = normalized_difference(data[:, 3], data[:, 2], valid)
    np.testing.assert_allclose(out.band("NDVI_p50")[0], np.nanmedian(ndvi, axis=0), rtol=1e-6)
    assert out.valid.all()


def test_index_pieces_are_nan_where_invalid_or_undefined():
    a = np.array([[3, 0, 5]], dtype=np.uint16)
    b = np.array([[1, 0, 5]], dtype=np.uint16)
    out = normalized_difference(a, b, np.array([[True, True, False]]))
    assert out[0, 0] == pytest.approx(0.5) and np.isnan(out[0, 1:]).all()
    assert np.isnan(aggregate_over_time(np.full((2, 1, 1), np.nan, np.float32), "mean")).all()


def test_a_missing_band_is_one_line_naming_the_patch(local_chain):
    data = read_cube(str(local_chain["data"]), TILE)
    with pytest.raises(PermanentError, match=rf"patch {TILE}: band\(s\) B12 not in its cube"):
        compute_features(data, {"X": ("B12", "B04")}, [], ["dates"])


def test_reference_labels_are_the_scl_classes_mapped(local_chain):
    data = read_cube(str(local_chain["data"]), TILE)
    labels = read_cube(str(local_chain["reference"]), TILE)
    scl = data.band("SCL")[0]
    expected = np.full(scl.shape, -1)
    for source, label in CLASSES.items():
        expected[scl == source] = label
    inside = data.valid[0]  # the reference raster is the scene's own SCL: same pixels
    np.testing.assert_array_equal(labels.data[0, 0][inside], expected[inside])
    np.testing.assert_array_equal(labels.valid[0][inside], expected[inside] >= 0)
    assert {0, 1} <= set(np.unique(labels.data[0, 0][labels.valid[0]]).tolist())
    assert not labels.valid[0][:5].any()  # north of the scene: no reference


def _scl_polygons(data_dir, path, as_text: bool):
    """The SCL of the test corner as polygons with a ``class`` column (real shapes)."""
    import geopandas as gpd
    import rasterio
    from rasterio.features import shapes
    from rasterio.windows import Window
    from shapely.geometry import shape

    with rasterio.open(data_dir / "s2_l2a_29RKH_20200219/SCL.tif") as src:
        window = Window(230, 0, 319, 80)  # x 245980.., the north-east corner
        values = src.read(1, window=window)
        transform = src.window_transform(window)
        crs = src.crs
    records = [(shape(g), int(v)) for g, v in shapes(values, transform=transform)]
    names = {5: "clear", 8: "cloud", 9: "cloud", 10: "cloud", 2: "dark", 7: "other"}
    frame = gpd.GeoDataFrame(
        {"class": [names[v] if as_text else v for _, v in records]},
        geometry=[g for g, _ in records],
        crs=crs,
    ).to_crs(4326)
    if str(path).endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_file(path, driver="GeoJSON")
    return path


@pytest.mark.parametrize(("name", "as_text"), [("scl.geojson", False), ("scl.parquet", True)])
def test_a_vector_reference_gives_the_labels_of_the_raster(
    local_chain, data_dir, tmp_path, name, as_text
):
    from tilefleet.recipes import get_recipe

    vector = _scl_polygons(data_dir, tmp_path / name, as_text)
    classes = {"clear": 0, "cloud": 1} if as_text else CLASSES
    recipe = get_recipe("reference")
    params = recipe.Params.model_validate(
        {
            "tiles": local_chain.variables["patches"],
            "resolution": 100,
            "vector": str(vector),
            "classes": classes,
            "dest": str(tmp_path / "out"),
        }
    )
    tasks = {t.id: t for t in recipe.plan(params)}
    recipe.run(tasks[TILE])
    from_vector = read_cube(str(tmp_path / "out"), TILE)
    from_raster = read_cube(str(local_chain["reference"]), TILE)
    np.testing.assert_array_equal(from_vector.valid, from_raster.valid)
    np.testing.assert_array_equal(from_vector.data, from_raster.data)
    marker = json.loads((tmp_path / "out" / f"{TILE}.json").read_text())
    assert marker["labelled"] == int(from_raster.valid.sum())


def test_a_vector_without_the_class_column_fails_naming_the_patch(local_chain, data_dir, tmp_path):
    from tilefleet.recipes import get_recipe

    vector = _scl_polygons(data_dir, tmp_path / "scl.geojson", False)
    recipe = get_recipe("reference")
    params = recipe.Params.model_validate(
        {
            "tiles": local_chain.variables["patches"],
            "resolution": 100,
            "vector": str(vector),
            "column": "landcover",
            "dest": str(tmp_path / "out"),
        }
    )
    task = recipe.plan(params)[0]
    with pytest.raises(PermanentError, match=rf"patch {task.id}: .* no column 'landcover'"):
        recipe.run(task)
