"""GridSpec: what a job file may say about tiles, and the tiles it stands for."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tilefleet.tiles import (
    GridSpec,
    TileDatabase,
    describe_validation_error,
    read_aoi,
    select_tiles,
    tiles_from_spec,
    ttc_tiles_in_aoi,
    utm_patches,
)


def error_of(**fields) -> str:
    with pytest.raises(ValidationError) as caught:
        GridSpec(**fields)
    return describe_validation_error(caught.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"grid": "ttc", "tiledb": "db.parquet"}, "ttc grid needs exactly one of bbox, aoi"),
        (
            {"grid": "ttc", "tiledb": "x", "bbox": [0, 0, 1, 1], "aoi": "a.geojson"},
            "(given: bbox, aoi)",
        ),
        ({"grid": "ttc", "bbox": [0, 0, 1, 1]}, "ttc grid needs tiledb"),
        ({"grid": "utm", "aoi": "a.geojson"}, "utm grid needs size"),
        ({"grid": "utm", "request": "r.json", "size": 10}, "request is not an area for the utm"),
        ({"grid": "utm", "aoi": "a", "size": 10, "order": 5}, "order only applies to the healpix"),
        ({"grid": "healpix", "aoi": "a", "order": 30}, "order: Input should be less than or"),
        ({"grid": "utm", "aoi": "a", "size": 0}, "size: Input should be greater than 0"),
        ({"grid": "hex", "aoi": "a"}, "grid: Input should be 'ttc', 'utm' or 'healpix'"),
        ({"grid": "healpix", "bbox": "1,2,3", "order": 3}, "bbox needs 4 numbers"),
        ({"grid": "healpix", "bbox": [0, 5, 1, 4], "order": 3}, "south < north"),
        ({"grid": "healpix", "aoi": "a", "order": 3, "colour": 1}, "colour: Extra inputs"),
    ],
)
def test_invalid_specs_say_what_is_wrong(fields, message):
    assert message in error_of(**fields)


def test_bbox_text_and_json_schema():
    spec = GridSpec(grid="healpix", bbox=" 10, 45 ,11,46", order=4)
    assert spec.bbox == (10.0, 45.0, 11.0, 46.0)
    schema = GridSpec.model_json_schema()
    assert set(schema["properties"]) >= {"grid", "bbox", "aoi", "tiledb", "size", "order"}


def test_specs_select_the_grids_tiles(tiledb_path, svn_path, grandmesa_path):
    ttc = GridSpec(grid="ttc", aoi=svn_path, tiledb=tiledb_path, year=2024)
    tiles = tiles_from_spec(ttc)
    expected = ttc_tiles_in_aoi(TileDatabase.open(tiledb_path), read_aoi(svn_path))
    assert [t.id for t in tiles] == expected.ids() and len(tiles) > 800
    assert {t.attrs["year"] for t in tiles} == {2024}

    utm = GridSpec(grid="utm", aoi=grandmesa_path, size=20_000, buffer=100)
    assert select_tiles(utm).ids() == utm_patches(read_aoi(grandmesa_path), 20_000, 100).ids()

    healpix = tiles_from_spec(GridSpec(grid="healpix", bbox=(13.0, 45.0, 14.0, 46.0), order=6))
    assert healpix and all(t.id.startswith("6/") for t in healpix)
