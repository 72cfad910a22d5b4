"""`tilefleet tiles ...` through typer's CliRunner on the sub-app: outputs, one-line errors,
exit status 3 for bad input."""

from __future__ import annotations

import csv
import json

import pytest
import shapely
from typer.testing import CliRunner

from tilefleet.cli.tiles import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_bad_input(result, message: str) -> None:
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert result.stdout == ""


def test_ttc_bbox_to_csv(tiledb_path, tmp_path):
    out = tmp_path / "tiles.csv"
    result = invoke(
        "ttc", "--bbox", "14,46,14.5,46.3", "--tiledb", tiledb_path, "--year", 2024, "-o", out
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert result.stdout.strip() == f"ttc: {len(rows)} tiles written to {out}"
    assert len(rows) > 20 and {r["Year"] for r in rows} == {"2024"}


def test_ttc_request_warnings_go_to_stderr(tiledb_path, reference_db, tmp_path):
    tile_id = f"{reference_db.x_tile[7]}X{reference_db.y_tile[7]}Y"
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"p": {"2023": {"missing_tiles": [tile_id, "junk"]}}}))
    out = tmp_path / "tiles.geojson"
    result = invoke("ttc", "--request", request, "--tiledb", tiledb_path, "-o", out)
    assert result.exit_code == 0, result.output
    assert "warning: 1 tile ids do not parse" in result.stderr
    assert "ttc: 1 tiles written" in result.stdout
    assert json.loads(out.read_text())["features"][0]["id"] == tile_id


def test_utm_and_healpix_outputs(grandmesa_path, tmp_path):
    result = invoke(
        "utm", "--aoi", grandmesa_path, "--size", 20000, "--buffer", 50, "-o", tmp_path / "u.csv"
    )
    assert result.exit_code == 0, result.output
    epsgs = {r["epsg"] for r in csv.DictReader((tmp_path / "u.csv").open())}
    assert epsgs == {"32612", "32613"}
    result = invoke("healpix", "--aoi", grandmesa_path, "--order", 8, "-o", tmp_path / "h.csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "h.csv").open()))
    assert list(rows[0]) == ["cell_id", "order", "morton"] and {r["order"] for r in rows} == {"8"}


def test_request_without_valid_ids(tiledb_path, tmp_path):
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"p": {"2023": {"missing_tiles": ["junk", "12X"]}}}))
    result = invoke("ttc", "--request", request, "--tiledb", tiledb_path, "-o", tmp_path / "t.csv")
    assert_bad_input(result, "has no valid tile ids")
    assert not (tmp_path / "t.csv").exists()


def test_empty_aoi(write_aoi, tmp_path):
    aoi = write_aoi(None)  # a FeatureCollection whose only feature has no geometry
    result = invoke("healpix", "--aoi", aoi, "--order", 5, "-o", tmp_path / "h.csv")
    assert_bad_input(result, "contains no geometry (empty AOI)")


def test_invalid_geometry(write_aoi, tmp_path):
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    result = invoke("utm", "--aoi", write_aoi(bowtie), "--size", 1000, "-o", tmp_path / "u.csv")
    assert_bad_input(result, "invalid geometry (feature 0): Self-intersection")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["healpix", "--bbox", "0,0,1,1", "--order", 3, "-o", "cells.txt"],
            "unknown output extension",
        ),
        (
            ["healpix", "--aoi", "missing.geojson", "--order", 3, "-o", "c.csv"],
            "AOI file not found",
        ),
        (["healpix", "--bbox", "0,0,1,1", "-o", "c.csv"], "healpix grid needs order"),
        (["healpix", "--bbox", "0,0,1,1", "--order", 3], "give an output file with -o"),
        (["utm", "--bbox", "0,0,1", "--size", 10, "-o", "u.csv"], "bbox needs 4 numbers"),
        (["ttc", "--bbox", "0,0,1,1", "-o", "t.csv"], "ttc grid needs tiledb"),
        (
            ["ttc", "--bbox", "0,0,1,1", "--tiledb", "nope.parquet", "-o", "t.csv"],
            "tile database not found",
        ),
        (
            ["ttc", "--tiles", "nope.csv", "--tiledb", "{tiledb}", "-o", "t.csv"],
            "CSV file not found",
        ),
    ],
)
def test_bad_input_exits_3(args, message, tiledb_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(*[str(a).replace("{tiledb}", str(tiledb_path)) for a in args])
    assert_bad_input(result, message)


def test_dest_is_the_output_option_and_aoi_takes_a_box(tmp_path):
    """``--dest`` (``-o``, ``--output`` kept), ``--aoi W,S,E,N`` as ``--bbox``: the same file."""
    files = []
    for number, (area, out) in enumerate(
        [("--bbox", "-o"), ("--aoi", "--dest"), ("--aoi", "--output")]
    ):
        path = tmp_path / f"h{number}.csv"
        result = invoke("healpix", area, "5,51,6,52", "--order", 6, out, path)
        assert result.exit_code == 0, result.output
        files.append(path.read_text())
    assert files[0] == files[1] == files[2] and len(files[0].splitlines()) > 3


def test_dash_writes_geojson_to_stdout_that_geopandas_reads(tmp_path):
    import geopandas

    result = invoke("healpix", "--aoi", "5,51,6,52", "--order", 6, "-o", "-")
    assert result.exit_code == 0, result.output
    assert "tiles written to stdout" in result.stderr  # stdout is the data alone
    (tmp_path / "stdout.geojson").write_text(result.stdout)
    frame = geopandas.read_file(tmp_path / "stdout.geojson")
    invoke("healpix", "--aoi", "5,51,6,52", "--order", 6, "-o", tmp_path / "f.geojson")
    from_file = geopandas.read_file(tmp_path / "f.geojson")
    assert len(frame) == len(from_file) > 3 and "WGS 84" in frame.crs.name
    assert list(frame["cell_id"]) == list(from_file["cell_id"])


@pytest.mark.parametrize("suffix", ["csv", "geojson", "parquet"])
def test_geopandas_reads_every_output(suffix, grandmesa_path, tmp_path):
    import geopandas
    import pandas

    path = tmp_path / f"u.{suffix}"
    result = invoke("utm", "--aoi", grandmesa_path, "--size", 20000, "-o", path)
    assert result.exit_code == 0, result.output
    if suffix == "csv":  # a table without geometry: pandas' side of geopandas
        table = pandas.read_csv(path)
    else:
        table = geopandas.read_file(path) if suffix == "geojson" else geopandas.read_parquet(path)
        assert "WGS 84" in table.crs.name and table.geometry.is_valid.all()  # EPSG:4326, CRS84
    assert len(table) > 4 and "id" in table.columns
