"""Tile lists on disk, read back with plain csv/json/pyarrow."""

from __future__ import annotations

import csv
import json
import os
import stat

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely

from tilefleet.tiles import (
    TileDatabase,
    TileInputError,
    healpix_cells,
    read_aoi,
    ttc_tiles_in_bbox,
    utm_patches,
    write_tiles,
)


@pytest.fixture(scope="module")
def ttc_tiles(tiledb_path):
    return ttc_tiles_in_bbox(TileDatabase.open(tiledb_path), (14.0, 46.0, 14.5, 46.3), year=2022)


def test_ttc_csv_is_the_tiles_csv(ttc_tiles, reference_db, tmp_path):
    path = write_tiles(ttc_tiles, tmp_path / "out" / "tiles.csv")
    with path.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["Year", "X", "Y", "Y_tile", "X_tile"]
    assert len(rows) == len(ttc_tiles) + 1 > 20
    for year, x, y, y_tile, x_tile in rows[1:]:
        row = reference_db.row_of(f"{x_tile}X{y_tile}Y")
        assert (float(x), float(y)) == (reference_db.x[row], reference_db.y[row])
        assert year == "2022"
    assert [p.name for p in path.parent.iterdir()] == ["tiles.csv"]  # no partial file left


def test_ttc_csv_without_year_leaves_it_empty(tiledb_path, tmp_path):
    tiles = ttc_tiles_in_bbox(TileDatabase.open(tiledb_path), (14.0, 46.0, 14.1, 46.1))
    path = write_tiles(tiles, tmp_path / "tiles.csv")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == len(tiles) and {r["Year"] for r in rows} == {""}


def test_geojson_features_hold_ids_columns_and_footprints(ttc_tiles, tmp_path):
    path = write_tiles(ttc_tiles, tmp_path / "tiles.geojson")
    document = json.loads(path.read_text())
    features = document["features"]
    assert document["type"] == "FeatureCollection" and len(features) == len(ttc_tiles)
    for feature, tile_id, bounds in zip(features, ttc_tiles.ids(), ttc_tiles.bounds(), strict=True):
        assert feature["id"] == tile_id
        assert feature["properties"]["Year"] == 2022
        assert f"{feature['properties']['X_tile']}X{feature['properties']['Y_tile']}Y" == tile_id
        geometry = shapely.geometry.shape(feature["geometry"])
        assert geometry.bounds == pytest.approx(tuple(bounds), abs=1e-12)
        assert shapely.is_ccw(geometry.exterior)  # RFC 7946 winding


def test_parquet_is_geoparquet(ttc_tiles, tmp_path):
    path = write_tiles(ttc_tiles, tmp_path / "tiles.parquet")
    table = pq.read_table(path)
    assert table.column_names == ["id", "Year", "X", "Y", "Y_tile", "X_tile", "geometry"]
    assert table.column("id").to_pylist() == list(ttc_tiles.ids())
    np.testing.assert_array_equal(table.column("X").to_numpy(), ttc_tiles.x)
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["encoding"] == "WKB"
    footprints = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(shapely.bounds(footprints), ttc_tiles.bounds())


def test_utm_and_healpix_columns(grandmesa_path, tmp_path):
    aoi = read_aoi(grandmesa_path)
    rows = list(csv.DictReader(write_tiles(utm_patches(aoi, 20_000), tmp_path / "u.csv").open()))
    assert list(rows[0]) == ["id", "epsg", "col", "row", "minx", "miny", "maxx", "maxy"]
    assert rows[0]["id"] == f"{rows[0]['epsg']}_{rows[0]['col']}_{rows[0]['row']}"
    cells = healpix_cells(aoi, 7)
    table = pq.read_table(write_tiles(cells, tmp_path / "h.parquet"))
    assert table.column_names == ["id", "cell_id", "order", "morton", "geometry"]
    assert str(table.schema.field("morton").type) == "uint64"
    np.testing.assert_array_equal(table.column("cell_id").to_numpy(), cells.cells)


def test_tile_files_are_readable_as_any_file_the_user_makes(ttc_tiles, tmp_path):
    previous = os.umask(0o022)
    try:
        for suffix in ("csv", "geojson", "parquet"):
            path = write_tiles(ttc_tiles, tmp_path / f"tiles.{suffix}")
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, suffix
    finally:
        os.umask(previous)


def test_empty_selection_writes_an_empty_file(tiledb_path, tmp_path):
    tiles = ttc_tiles_in_bbox(TileDatabase.open(tiledb_path), (-30.0, -10.0, -29.9, -9.9))
    assert len(tiles) == 0  # mid-Atlantic: not in the processing area
    for suffix in ("csv", "geojson", "parquet"):
        assert write_tiles(tiles, tmp_path / f"empty.{suffix}").stat().st_size > 0
    assert json.loads((tmp_path / "empty.geojson").read_text())["features"] == []


def test_unknown_extension_is_bad_input(ttc_tiles, tmp_path):
    with pytest.raises(TileInputError, match="unknown output extension '.txt'"):
        write_tiles(ttc_tiles, tmp_path / "tiles.txt")
    assert not list(tmp_path.iterdir())
