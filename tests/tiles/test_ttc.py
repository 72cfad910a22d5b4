"""TTC grid: selections checked against the database read directly and shapely per tile."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import shapely
from shapely.affinity import translate

from tilefleet.tiles import (
    TileDatabase,
    TileInputError,
    format_tile_id,
    parse_tile_id,
    read_aoi,
    ttc_tiles_from_csv,
    ttc_tiles_from_request,
    ttc_tiles_in_aoi,
    ttc_tiles_in_bbox,
)

BRAZIL = (-74.0, -34.0, -34.0, 5.3)
HALF = 1 / 36  # a tile is its centre +- 1/36 degree


@pytest.fixture(scope="module")
def tiledb(tiledb_path) -> TileDatabase:
    return TileDatabase.open(tiledb_path)


def expected_rows(ref, area) -> np.ndarray:
    """The straightforward way: bbox prefilter on centres, then shapely on each tile square."""
    minx, miny, maxx, maxy = area.bounds
    pad = 2 * HALF
    candidates = np.flatnonzero(
        (ref.x >= minx - pad)
        & (ref.x <= maxx + pad)
        & (ref.y >= miny - pad)
        & (ref.y <= maxy + pad)
    )
    x, y = ref.x[candidates], ref.y[candidates]
    squares = shapely.box(x - HALF, y - HALF, x + HALF, y + HALF)
    return candidates[shapely.intersects(squares, area)]


def test_tile_ids_parse_and_format():
    assert parse_tile_id("1035X727Y") == (1035, 727)
    assert parse_tile_id("  -3X12Y \n") == (-3, 12)
    assert format_tile_id(1035, 727) == "1035X727Y"
    for bad in ("1035x727y", "1035X", "X727Y", "10.5X3Y", "", None, 1035):
        with pytest.raises(TileInputError):
            parse_tile_id(bad)


def test_database_open_is_cached_and_complete(tiledb_path, reference_db):
    first = TileDatabase.open(tiledb_path)
    assert TileDatabase.open(tiledb_path) is first
    assert len(first) == len(reference_db.x) == 2_943_795
    np.testing.assert_array_equal(first.x, reference_db.x)
    np.testing.assert_array_equal(first.y_tile, reference_db.y_tile)


def test_missing_or_malformed_database_is_bad_input(tmp_path, grandmesa_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pytest.raises(TileInputError, match="not found"):
        TileDatabase.open(tmp_path / "nope.parquet")
    with pytest.raises(TileInputError, match="cannot read tile database"):
        TileDatabase.open(grandmesa_path)
    pq.write_table(pa.table({"X": [1.0], "Y": [2.0], "X_tile": [3]}), tmp_path / "partial.parquet")
    with pytest.raises(TileInputError, match="lacks column\\(s\\) Y_tile"):
        TileDatabase.open(tmp_path / "partial.parquet")


def test_brazil_bbox_matches_shapely_per_tile(tiledb, reference_db):
    tiles = ttc_tiles_in_bbox(tiledb, BRAZIL, year=2024)
    expected = expected_rows(reference_db, shapely.box(*BRAZIL))
    assert len(tiles) == len(expected) > 300_000
    assert set(tiles.ids()) == reference_db.ids(expected)
    assert set(tiles.years.tolist()) == {2024}


def test_bbox_across_antimeridian_is_two_boxes(tiledb, reference_db):
    tiles = ttc_tiles_in_bbox(tiledb, "170,-20,-170,-10")
    area = shapely.MultiPolygon(
        [shapely.box(170, -20, 180, -10), shapely.box(-180, -20, -170, -10)]
    )
    expected = reference_db.ids(expected_rows(reference_db, area))
    assert set(tiles.ids()) == expected and len(expected) > 0
    assert tiles.x.min() > 169  # nothing from the rest of the world's longitudes


def test_slovenia_geojson_in_utm_is_reprojected(svn_path, svn_wgs84):
    aoi = read_aoi(svn_path)
    minx, miny, maxx, maxy = aoi.bounds
    assert 13.3 < minx < 13.5 and 16.5 < maxx < 16.7 and 45.3 < miny < 45.5 and 46.8 < maxy < 46.95
    # Same area as reprojecting the raw vertices; read_aoi also densifies long edges so that
    # they stay straight in UTM, which moves them by centimetres.
    assert aoi.symmetric_difference(svn_wgs84).area < 1e-4 * svn_wgs84.area


def test_slovenia_polygon_matches_shapely_per_tile(tiledb, reference_db, svn_wgs84):
    tiles = ttc_tiles_in_aoi(tiledb, svn_wgs84)
    expected = expected_rows(reference_db, svn_wgs84)
    assert set(tiles.ids()) == reference_db.ids(expected)
    assert 800 < len(tiles) < 1000  # ~20,000 km2 of 6 km tiles, plus the border's
    assert tiles.years is None


def test_polygon_with_hole(tiledb, reference_db, svn_wgs84):
    hole = shapely.Point(14.8, 46.1).buffer(0.3)
    assert svn_wgs84.contains(hole)
    holed = svn_wgs84.difference(hole)
    assert len(shapely.get_interior_ring(holed, 0).coords) > 0
    tiles = ttc_tiles_in_aoi(tiledb, holed)
    assert set(tiles.ids()) == reference_db.ids(expected_rows(reference_db, holed))
    # Tiles whose square lies inside the hole are gone; at least a few dozen do.
    in_hole = _rows_inside(reference_db, hole)
    assert len(in_hole) > 20
    assert not reference_db.ids(in_hole) & set(tiles.ids())


def _rows_inside(ref, area) -> np.ndarray:
    minx, miny, maxx, maxy = area.bounds
    rows = np.flatnonzero((ref.x > minx) & (ref.x < maxx) & (ref.y > miny) & (ref.y < maxy))
    squares = shapely.box(
        ref.x[rows] - HALF, ref.y[rows] - HALF, ref.x[rows] + HALF, ref.y[rows] + HALF
    )
    return rows[shapely.contains(area, squares)]


def test_large_irregular_multipolygon(tiledb, reference_db, svn_wgs84):
    # Slovenia grown by 2.5 degrees (~60,000 km2 of irregular edge) plus a far-off copy.
    area = shapely.union_all([svn_wgs84.buffer(2.5), translate(svn_wgs84, 40, -50)])
    tiles = ttc_tiles_in_aoi(tiledb, area)
    expected = expected_rows(reference_db, area)
    assert len(tiles) == len(expected) > 10_000
    assert set(tiles.ids()) == reference_db.ids(expected)


def test_empty_area_is_bad_input(tiledb):
    with pytest.raises(TileInputError, match="empty"):
        ttc_tiles_in_aoi(tiledb, shapely.Polygon())


def test_tile_objects_carry_database_centres(tiledb, reference_db):
    tiles = ttc_tiles_in_bbox(tiledb, (14.0, 46.0, 14.2, 46.1), year=2023)
    made = list(tiles.tiles())
    assert [t.id for t in made] == tiles.ids() and len(made) > 4
    for tile in made:
        row = reference_db.row_of(tile.id)
        x, y = reference_db.x[row], reference_db.y[row]
        assert tile.bounds == pytest.approx((x - HALF, y - HALF, x + HALF, y + HALF), abs=1e-12)
        assert tile.attrs == {
            "X_tile": reference_db.x_tile[row],
            "Y_tile": reference_db.y_tile[row],
            "X": x,
            "Y": y,
            "year": 2023,
        }
        assert tile.footprint.equals(shapely.box(*tile.bounds))
        assert len(pickle.dumps(tile)) < 300
        assert pickle.loads(pickle.dumps(tile)) == tile


def _request(reference_db) -> tuple[dict, set[tuple[int, str]]]:
    rows = [100, 200_000, 1_500_000, 2_900_000]
    ids = [f"{reference_db.x_tile[r]}X{reference_db.y_tile[r]}Y" for r in rows]
    request = {
        "project-a": {
            "2022": {"all_tiles": ids, "missing_tiles": [ids[0], ids[1], ids[1], " " + ids[2]]},
            "2023": {"missing_tiles": [ids[3], "not-a-tile", "12X"]},
            "20x3": {"missing_tiles": [ids[0]]},
        },
        "project-b": {"2022": {"missing_tiles": [ids[0], "99999X99999Y"]}},
    }
    expected = {(2022, ids[0]), (2022, ids[1]), (2022, ids[2]), (2023, ids[3])}
    return request, expected


def test_request_pairs_are_deduplicated_and_joined(tiledb, reference_db, tmp_path):
    request, expected = _request(reference_db)
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    tiles = ttc_tiles_from_request(tiledb, path)
    assert set(zip(tiles.years.tolist(), tiles.ids(), strict=True)) == expected
    assert len(tiles) == len(expected)
    for tile_id, x, y in zip(tiles.ids(), tiles.x, tiles.y, strict=True):
        row = reference_db.row_of(tile_id)
        assert (x, y) == (reference_db.x[row], reference_db.y[row])
    warnings = "\n".join(tiles.warnings)
    assert "'20x3' is not an integer" in warnings
    assert "2 tile ids do not parse" in warnings and "'not-a-tile'" in warnings
    assert "1 tile ids are not in the tile database" in warnings and "99999X99999Y" in warnings


def test_request_year_filter(tiledb, reference_db):
    request, expected = _request(reference_db)
    tiles = ttc_tiles_from_request(tiledb, request, year=2023)
    assert set(zip(tiles.years.tolist(), tiles.ids(), strict=True)) == {
        p for p in expected if p[0] == 2023
    }


@pytest.mark.parametrize(
    "request_doc",
    [
        {"p": {"2022": {"missing_tiles": ["bad", "1035X"]}}},
        {"p": {"year": {"missing_tiles": ["1035X727Y"]}}},
        {"p": {"2022": {"missing_tiles": ["99999X99999Y"]}}},
        {"p": {}},
    ],
)
def test_request_without_valid_ids_is_bad_input(tiledb, request_doc):
    with pytest.raises(TileInputError, match="no valid tile ids|none of its"):
        ttc_tiles_from_request(tiledb, request_doc)


def test_request_not_json_is_bad_input(tiledb, tmp_path):
    path = tmp_path / "request.json"
    path.write_text("{not json")
    with pytest.raises(TileInputError, match="not readable JSON"):
        ttc_tiles_from_request(tiledb, path)


def test_tiles_csv_columns_matched_by_name(tiledb, reference_db, tmp_path):
    rows = [10, 20, 30]
    ref = reference_db
    lines = ["X_tile,Y,Year,note,Y_tile,X"]  # not the usual order, plus an extra column
    for r in rows:
        lines.append(f"{ref.x_tile[r]},{ref.y[r]},2021,hello,{ref.y_tile[r]},{ref.x[r]}")
    lines.append(lines[1])  # a repeated row counts once
    r = 40  # X and Y values swapped: the database's centre wins, with a warning
    lines.append(f"{ref.x_tile[r]},{ref.x[r]},2021,,{ref.y_tile[r]},{ref.y[r]}")
    lines.append("abc,1,2021,,2,3")
    path = tmp_path / "tiles.csv"
    path.write_text("\ufeff" + "\n".join(lines) + "\n")  # with a BOM, as Excel writes

    tiles = ttc_tiles_from_csv(tiledb, path)
    assert tiles.ids() == [f"{ref.x_tile[r]}X{ref.y_tile[r]}Y" for r in (10, 20, 30, 40)]
    np.testing.assert_array_equal(tiles.x, ref.x[[10, 20, 30, 40]])
    assert tiles.years.tolist() == [2021] * 4
    warnings = "\n".join(tiles.warnings)
    assert "1 rows have X/Y that differ" in warnings
    assert "1 rows have no integer" in warnings and "lines 7" in warnings


def test_tiles_csv_without_year_column_takes_given_year(tiledb, reference_db, tmp_path):
    path = tmp_path / "tiles.csv"
    path.write_text(f"Y_tile,X_tile\n{reference_db.y_tile[5]},{reference_db.x_tile[5]}\n")
    tiles = ttc_tiles_from_csv(tiledb, path, year=2020)
    assert tiles.years.tolist() == [2020] and len(tiles) == 1


def test_tiles_csv_missing_column_is_bad_input(tiledb, tmp_path):
    path = tmp_path / "tiles.csv"
    path.write_text("Year,X,Y,Ytile,X_tile\n2021,1,2,3,4\n")
    with pytest.raises(TileInputError, match="lacks column\\(s\\) Y_tile"):
        ttc_tiles_from_csv(tiledb, path)
