"""sample and merge-samples: seeded, valid, balanced samples; a streamed, lossless merge."""

from __future__ import annotations

import collections
import json

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from ml.conftest import run_chain_file  # noqa: F401 - the fixture module, for its helpers
from tilefleet.ops import sampling
from tilefleet.recipes import get_recipe
from tilefleet.store.patch_cube import read_cube

KEYS = ["tile", "row", "col"]


def _samples(folder) -> pa.Table:
    return (
        ds.dataset(str(folder), format="parquet")
        .to_table()
        .sort_by([(k, "ascending") for k in KEYS])
    )


def _run(recipe_name: str, values: dict) -> list:
    """Plan and run every task of a job in this process (fast, no workers)."""
    recipe = get_recipe(recipe_name)
    params = recipe.Params.model_validate(values)
    tasks = recipe.plan(params)
    return [recipe.run(task) for task in tasks]


def test_samples_are_valid_labelled_pixels_with_their_feature_values(local_chain):
    table = _samples(local_chain["samples"])
    assert table.column_names[:5] == ["tile", "row", "col", "x", "y"]
    assert table.column_names[-1] == "label"
    tile = "32629_28_279"
    mine = table.filter(pa.compute.equal(table["tile"], tile))
    features = read_cube(str(local_chain["features"]), tile)
    labels = read_cube(str(local_chain["reference"]), tile)
    rows, cols = mine["row"].to_numpy(), mine["col"].to_numpy()
    assert labels.valid[0][rows, cols].all() and features.valid[0][rows, cols].all()
    np.testing.assert_array_equal(mine["label"].to_numpy(), labels.data[0, 0][rows, cols])
    np.testing.assert_array_equal(mine["NDVI"].to_numpy(), features.band("NDVI")[0][rows, cols])
    a, _, c, _, e, f = features.transform
    np.testing.assert_allclose(mine["x"].to_numpy(), c + (cols + 0.5) * a)
    # Balanced: each class gets fraction x eligible / classes, capped by what it has.
    eligible = labels.valid[0] & features.valid[0]
    present = np.unique(labels.data[0, 0][eligible])
    per_class = round(0.2 * eligible.sum() / len(present))
    counts = collections.Counter(mine["label"].to_pylist())
    for value in present.tolist():
        assert counts[value] == min(per_class, int((labels.data[0, 0][eligible] == value).sum()))


def test_sampling_is_seeded_per_patch_and_the_same_on_any_worker(local_chain, tmp_path):
    step = {k: v for k, v in local_chain.steps["sample"].items() if k not in ("name", "recipe")}
    values = {
        **step,
        "tiles": local_chain.variables["patches"],
        "resolution": 100,
        "features": str(local_chain["features"]),
        "reference": str(local_chain["reference"]),
    }
    _run("sample", {**values, "dest": str(tmp_path / "again")})
    assert _samples(tmp_path / "again").equals(_samples(local_chain["samples"]))
    _run("sample", {**values, "seed": 8, "dest": str(tmp_path / "other")})
    assert not _samples(tmp_path / "other").equals(_samples(local_chain["samples"]))


def test_block_sampling_takes_eligible_pixels_of_the_blocks_only(local_chain, tmp_path):
    values = {
        "tiles": local_chain.variables["patches"],
        "resolution": 100,
        "features": str(local_chain["features"]),
        "reference": str(local_chain["reference"]),
        "blocks": 3,
        "block_size": 5,
        "dest": str(tmp_path),
    }
    metrics = _run("sample", values)
    table = _samples(tmp_path)
    assert 0 < table.num_rows <= 8 * 3 * 25
    assert sum(m["samples"] for m in metrics) == table.num_rows


def test_block_and_fraction_draws():
    rng = sampling.patch_rng(1, "t")
    eligible = np.ones((20, 20), bool)
    eligible[:, :10] = False
    picked = sampling.sample_blocks(eligible, 4, 3, rng)
    assert eligible.ravel()[picked].all() and len(picked) <= 36
    assert len(sampling.sample_fraction(eligible, 0.1, rng)) == 20
    labels = np.zeros((20, 20), int)
    labels[:1] = 1  # 10 eligible pixels of class 1, 190 of class 0
    balanced = sampling.sample_balanced(eligible, labels, 0.2, rng)
    assert collections.Counter(labels.ravel()[balanced].tolist()) == {0: 20, 1: 10}


def test_merge_keeps_every_sample_once_and_splits_them_seeded(local_chain, tmp_path):
    samples = _samples(local_chain["samples"])
    merged = local_chain["merged"]
    train, validation = _samples(merged / "train"), _samples(merged / "validation")
    assert train.num_rows + validation.num_rows == samples.num_rows
    both = pa.concat_tables([train, validation]).sort_by([(k, "ascending") for k in KEYS])
    assert both.equals(samples)
    assert validation.num_rows / samples.num_rows == pytest.approx(0.25, abs=0.03)
    # Three parts (three tasks) give the same tables as one, split alike.
    values = {
        "input": str(local_chain["samples"]),
        "validation_fraction": 0.25,
        "parts": 3,
        "row_group_rows": 500,
        "dest": str(tmp_path),
    }
    metrics = _run("merge-samples", values)
    assert sum(m["patches"] for m in metrics) == 8
    assert _samples(tmp_path / "train").equals(train)
    assert _samples(tmp_path / "validation").equals(validation)
    for part in (tmp_path / "train").glob("*.parquet"):  # written in bounded row groups
        meta = pq.ParquetFile(part).metadata
        assert all(meta.row_group(i).num_rows <= 1000 for i in range(meta.num_row_groups))
    record = json.loads((tmp_path / "parts" / "part-00000.json").read_text())
    assert record["train"] + record["validation"] > 0


def test_a_patch_split_holds_whole_patches_out(local_chain, tmp_path):
    values = {
        "input": str(local_chain["samples"]),
        "validation_fraction": 0.4,
        "split_by": "patch",
        "seed": 3,
        "dest": str(tmp_path),
    }
    _run("merge-samples", values)
    train = set(_samples(tmp_path / "train")["tile"].to_pylist())
    validation = set(_samples(tmp_path / "validation")["tile"].to_pylist())
    assert train and validation and not train & validation


def test_a_sample_table_with_other_columns_fails_naming_it(local_chain, tmp_path):
    from tilefleet.errors import PermanentError

    folder = tmp_path / "samples"
    folder.mkdir()
    for path in local_chain["samples"].glob("*.parquet"):
        (folder / path.name).write_bytes(path.read_bytes())
    odd = pq.read_table(folder / "32629_28_279.parquet").drop_columns(["NDVI"])
    pq.write_table(odd, folder / "32629_28_279.parquet")
    with pytest.raises(PermanentError, match="sample table 32629_28_279.parquet: its columns"):
        _run("merge-samples", {"input": str(folder), "dest": str(tmp_path / "out")})
