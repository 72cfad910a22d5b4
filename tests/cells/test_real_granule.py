"""The real ATL06 granule (open Pacific, many fill values), from a local file and from S3
(moto's server on loopback), checked against h5py + healpy computed one cell at a time;
the store opens with xarray and decodes with xdggs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from cells.granules import assert_matches_reference, reference_statistics
from helpers import read_csv
from tilefleet.engine.run import run_job
from tilefleet.jobs import build_job
from tilefleet.sources.atl06 import read_granule

PARENTS = [44325, 44338]  # order-6 cells the granule crosses (from healpy, see below)


def run_cells(tmp_path, run="run", **values):
    job = {"recipe": "cells", "run_dir": str(tmp_path / run), "workers": 2, "backoff_s": 0.05}
    return run_job(build_job(job | values))


def check_store(store, granule):
    group = zarr.open_group(store, path="12", mode="r")
    assert json.loads(json.dumps(group.attrs["tilefleet"]))["parents"] == PARENTS
    for index, parent in enumerate(PARENTS):
        reference = reference_statistics([granule], parent, 6, 12)
        assert_matches_reference(group, index, reference)
    return group


def test_parents_are_the_ones_healpy_finds(real_granule):
    import healpy

    points = read_granule(str(real_granule))
    assert len(points) == 81  # quality 0, no fill: 76 in gt1r, 5 in gt3r
    cells = healpy.ang2pix(64, points.lon, points.lat, nest=True, lonlat=True)
    assert sorted(set(cells.tolist())) == PARENTS


def test_local_granule_matches_reference_and_decodes(real_granule, tmp_path):
    result = run_cells(tmp_path, granules=[str(real_granule)], store=str(tmp_path / "c.zarr"))
    assert result.exit_code == 0 and result.report["succeeded"] == 2
    group = check_store(str(tmp_path / "c.zarr"), real_granule)
    assert int(np.sum(group["count"][:])) == 81
    ids = group["cell_ids"][:]
    assert ids.dtype == np.uint64
    assert ids[0] == PARENTS[0] << 12 and ids[-1] == ((PARENTS[1] + 1) << 12) - 1
    assert group["h_mean"].metadata.codecs[-1].to_dict()["name"] == "zstd"
    marker = json.loads((tmp_path / "c.zarr/.tilefleet/done/44325.json").read_text())
    assert (
        marker["points"]
        + json.loads((tmp_path / "c.zarr/.tilefleet/done/44338.json").read_text())["points"]
        == 81
    )

    xr = pytest.importorskip("xarray")
    ds = xr.open_zarr(str(tmp_path / "c.zarr"), group="12")
    assert ds.sizes["cells"] == 2 * 4096 and int(ds["count"].sum()) == 81
    try:
        import xdggs
    except ImportError:
        pytest.skip("xdggs is not installed (pip install tilefleet[test]): decode not checked")
    decoded = xdggs.decode(ds)
    assert decoded.dggs.grid_info.level == 12
    assert decoded.dggs.grid_info.indexing_scheme == "nested"

    # A rerun skips both parents: their markers exist.
    again = run_cells(
        tmp_path, "rerun", granules=[str(real_granule)], store=str(tmp_path / "c.zarr")
    )
    assert again.report["skipped"] == 2


def test_granule_on_s3_is_read_with_ranged_reads(real_granule, s3, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)  # set from AWS_ENDPOINT_URL
    s3.create_bucket(Bucket="granules")
    s3.create_bucket(Bucket="cells-out")
    s3.upload_file(str(real_granule), "granules", "atl06/g.h5")
    url = "s3://granules/atl06/g.h5"
    # Only the rows of one parent are read (h5coro hyperslab), not the whole beams.
    whole = read_granule(url)
    part = read_granule(url, parent=PARENTS[1], parent_order=6)
    assert len(whole) == 81 and part.rows_read < whole.rows_read
    result = run_cells(tmp_path, granules=[url], store="s3://cells-out/atl06.zarr")
    assert result.exit_code == 0 and result.report["succeeded"] == 2
    local = tmp_path / "copy.zarr"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="cells-out"):
        for obj in page.get("Contents", []):
            target = local / obj["Key"].removeprefix("atl06.zarr/")
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file("cells-out", obj["Key"], str(target))
    check_store(str(local), real_granule)
    assert (local / ".tilefleet/done/44338.json").is_file()


def test_dry_run_writes_no_store(real_granule, tmp_path):
    store = tmp_path / "dry.zarr"
    result = run_cells(tmp_path, granules=[str(real_granule)], store=str(store), dry_run=True)
    assert result.dry_run and result.planned == len(PARENTS)
    assert not store.exists() and not (tmp_path / "run").exists()


def test_per_cell_results_are_in_the_reports(real_granule, tmp_path):
    result = run_cells(tmp_path, granules=[str(real_granule)], store=str(tmp_path / "c.zarr"))
    assert result.exit_code == 0
    rows = {row["id"]: json.loads(row["results"]) for row in read_csv(tmp_path / "run/tasks.csv")}
    assert set(rows) == {f"6/{parent}" for parent in PARENTS}
    assert sum(r["points"] for r in rows.values()) == 81  # 76 in one parent, 5 in the other
    assert all(r["granules"] == 1 and r["cells_with_data"] >= 1 for r in rows.values())
    totals = result.report["results"]
    assert totals["points"] == 81 and totals["granules"] == 2
    assert "results    " in (tmp_path / "run/report.txt").read_text()
    assert "points 81" in (tmp_path / "run/report.txt").read_text()
