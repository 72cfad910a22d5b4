"""Job files that name a grid and an area: the engine plans one task per tile (tile-index
recipe: one STAC item per tile), checked against the tile database read directly."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from tilefleet.cli import app
from tilefleet.engine.run import run_job
from tilefleet.jobs import load_job


def write_job(path, **values):
    path.write_text(yaml.safe_dump(values))
    return path


def test_ttc_bbox_job_plans_one_task_per_tile(data_dir, tmp_path):
    tiledb = data_dir / "ttc_tiledb/tiledb.parquet"
    bbox = [-52.6, -13.2, -52.2, -12.9]
    job = write_job(
        tmp_path / "job.yaml",
        recipe="tile-index",
        dest="out",
        run_dir="run",
        tiles={"grid": "ttc", "bbox": bbox, "tiledb": str(tiledb), "year": 2023},
        resolution=0.0001,
        workers=2,
    )
    result = run_job(load_job(job))
    assert result.exit_code == 0
    table = pq.read_table(tiledb, columns=["X", "Y", "X_tile", "Y_tile"]).to_pandas()
    half = 1 / 36
    inside = table[
        (table.X + half > bbox[0])
        & (table.X - half < bbox[2])
        & (table.Y + half > bbox[1])
        & (table.Y - half < bbox[3])
    ]
    expected = {f"{x}X{y}Y" for x, y in zip(inside.X_tile, inside.Y_tile, strict=True)}
    written = {p.stem for p in (tmp_path / "out").glob("*.json")} - {"collection"}
    assert written == expected and result.report["succeeded"] == len(expected) > 10
    item = json.loads((tmp_path / "out/1035X727Y.json").read_text())
    west, south, east, north = item["bbox"]
    assert (west + east) / 2 == pytest.approx(-52.5278, abs=1e-4)
    assert east - west == pytest.approx(1 / 18, abs=1e-4)
    assert item["properties"]["tilefleet:year"] == 2023
    # A tile of a year stands for that year: dated by it, not by when it was written.
    assert item["properties"]["datetime"] is None
    assert item["properties"]["start_datetime"] == "2023-01-01T00:00:00Z"
    assert item["properties"]["end_datetime"] == "2023-12-31T23:59:59Z"
    collection = json.loads((tmp_path / "out/collection.json").read_text())
    assert collection["extent"]["temporal"]["interval"] == [
        ["2023-01-01T00:00:00Z", "2023-12-31T23:59:59Z"]
    ]
    transform = item["properties"]["proj:transform"]
    # Pixel edges on multiples of the resolution, like gdalwarp -tap.
    assert transform[2] / 0.0001 == pytest.approx(round(transform[2] / 0.0001), abs=1e-6)


def test_utm_job_from_aoi_relative_to_the_job_file(data_dir, tmp_path):
    (tmp_path / "aoi.geojson").write_text((data_dir / "aoi/grandmesa.geojson").read_text())
    job = write_job(
        tmp_path / "job.yaml",
        recipe="tile-index",
        dest="out",
        run_dir="run",
        tiles={"grid": "utm", "aoi": "aoi.geojson", "size": 20000},
        resolution=10,
        workers=2,
    )
    result = run_job(load_job(job))
    assert result.exit_code == 0
    items = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")]
    items = [item for item in items if item["type"] == "Feature"]  # not the collection
    assert len(items) == result.report["succeeded"] > 4
    # Grand Mesa (-108.5..-107.0) straddles the 108°W line between UTM zones 12N and 13N.
    assert {item["properties"]["proj:code"] for item in items} == {"EPSG:32612", "EPSG:32613"}
    for item in items:
        assert item["properties"]["proj:shape"] == [2000, 2000]
        x0, y0 = item["properties"]["proj:transform"][2], item["properties"]["proj:transform"][5]
        assert x0 % 20000 == 0 and y0 % 20000 == 0
    origins = {
        (i["properties"]["proj:code"], *i["properties"]["proj:transform"][2:6:3]) for i in items
    }
    assert len(origins) == len(items)


def test_healpix_job_writes_cells_by_order(data_dir, tmp_path):
    job = write_job(
        tmp_path / "job.yaml",
        recipe="tile-index",
        dest=str(tmp_path / "out"),
        run_dir=str(tmp_path / "run"),
        workers=2,
        tiles={"grid": "healpix", "aoi": str(data_dir / "aoi/grandmesa.geojson"), "order": 6},
    )
    result = run_job(load_job(job))
    cells = sorted(int(p.stem) for p in (tmp_path / "out/6").glob("*.json"))
    assert result.exit_code == 0 and len(cells) == result.report["succeeded"] >= 2
    healpy = pytest.importorskip("healpy")
    # Each cell is near Grand Mesa (-108.5..-107, 38..39.5; order-6 cells are ~1°)...
    lon, lat = healpy.pix2ang(2**6, np.array(cells), nest=True, lonlat=True)
    lon = (lon + 180) % 360 - 180
    assert ((lon > -110.5) & (lon < -105) & (lat > 36.5) & (lat < 41)).all()
    # ...and the cells healpy finds for points spread over the AOI are all there.
    grid_lon, grid_lat = np.meshgrid(np.linspace(-108.5, -107, 31), np.linspace(38, 39.5, 31))
    inside = healpy.ang2pix(2**6, grid_lon.ravel(), grid_lat.ravel(), nest=True, lonlat=True)
    assert set(inside.tolist()) <= set(cells)


def test_empty_area_is_an_invalid_job(data_dir, tmp_path):
    job = write_job(
        tmp_path / "job.yaml",
        recipe="tile-index",
        dest="out",
        tiles={
            "grid": "ttc",
            "bbox": [-30, -40, -29.5, -39.5],  # open ocean
            "tiledb": str(data_dir / "ttc_tiledb/tiledb.parquet"),
        },
    )
    result = CliRunner().invoke(app, ["run", str(job)])
    assert result.exit_code == 3 and "no tile" in result.output


def test_grid_errors_name_the_problem(tmp_path):
    job = write_job(
        tmp_path / "job.yaml",
        recipe="tile-index",
        dest="out",
        tiles={"grid": "utm", "order": 3, "bbox": [0, 0, 1, 1]},
    )
    result = CliRunner().invoke(app, ["run", str(job)])
    assert result.exit_code == 3 and "tiles" in result.output


def test_variables_are_expanded_inside_nested_settings(data_dir, tmp_path, monkeypatch):
    (tmp_path / "aoi.geojson").write_text((data_dir / "aoi/grandmesa.geojson").read_text())
    monkeypatch.setenv("TF_TEST_AREA", "aoi.geojson")
    monkeypatch.setenv("TF_TEST_OUT", "out")
    job = write_job(
        tmp_path / "job.yaml",
        recipe="tile-index",
        dest="${TF_TEST_OUT}",
        tiles={"grid": "utm", "aoi": "${TF_TEST_AREA}", "size": 50000},
    )
    loaded = load_job(job)
    assert loaded.params.tiles.aoi == tmp_path / "aoi.geojson"  # expanded, then made relative
    assert loaded.params.dest == str(tmp_path / "out")
