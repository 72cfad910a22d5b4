"""Grid specs: what a job file may say about tiles, and the tiles it stands for."""

from __future__ import annotations

import sys
import types
from importlib.metadata import EntryPoint
from typing import Annotated, Literal

import numpy as np
import pytest
from pydantic import Field, TypeAdapter, ValidationError

from tilefleet import plugins
from tilefleet.fields import Cli
from tilefleet.tiles import (
    HealpixGrid,
    TileDatabase,
    TtcGrid,
    UtmGrid,
    UtmPatchSet,
    describe_validation_error,
    grid_spec_schema,
    parse_grid_spec,
    read_aoi,
    select_tiles,
    tiles_from_spec,
    ttc_tiles_in_aoi,
    utm_patches,
)
from tilefleet.tiles import grid as grid_module
from tilefleet.tiles import spec as spec_module


def error_of(**fields) -> str:
    with pytest.raises(ValidationError) as caught:
        parse_grid_spec(fields)
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
        ({"grid": "hex", "aoi": "a"}, "unknown grid 'hex'; known: healpix, ttc, utm"),
        ({"aoi": "a"}, "no grid given; known: healpix, ttc, utm"),
        ({"grid": "healpix", "bbox": "1,2,3", "order": 3}, "bbox needs 4 numbers"),
        ({"grid": "healpix", "bbox": [0, 5, 1, 4], "order": 3}, "south < north"),
        ({"grid": "healpix", "aoi": "a", "order": 3, "colour": 1}, "colour: Extra inputs"),
    ],
)
def test_invalid_specs_say_what_is_wrong(fields, message):
    assert message in error_of(**fields)


def test_bbox_text_and_json_schema():
    spec = parse_grid_spec({"grid": "healpix", "bbox": " 10, 45 ,11,46", "order": 4})
    assert spec == HealpixGrid(bbox=(10.0, 45.0, 11.0, 46.0), order=4)
    assert spec.bbox == (10.0, 45.0, 11.0, 46.0)
    schema = grid_spec_schema()
    assert schema["discriminator"]["propertyName"] == "grid"
    alternatives = [schema["$defs"][ref["$ref"].rsplit("/", 1)[1]] for ref in schema["oneOf"]]
    properties = {name for alternative in alternatives for name in alternative["properties"]}
    assert properties >= {"grid", "bbox", "aoi", "tiledb", "size", "order"}
    assert all({"grid", "bbox", "aoi"} <= set(a["properties"]) for a in alternatives)
    assert all("grid" in a["required"] for a in alternatives)  # a job file names its grid


def test_each_grid_is_its_own_model():
    assert type(parse_grid_spec({"grid": "ttc", "tiledb": "db", "tiles": "t.csv"})) is TtcGrid
    utm = parse_grid_spec({"grid": "utm", "bbox": "0,0,1,1", "size": 10})
    assert utm == UtmGrid(bbox=(0, 0, 1, 1), size=10) and utm.buffer == 0
    with pytest.raises(ValidationError, match="Input should be 'ttc'"):
        TtcGrid(grid="utm", tiledb="db", bbox=(0, 0, 1, 1))
    with pytest.raises(ValidationError, match="frozen"):
        utm.size = 20


def test_specs_select_the_grids_tiles(tiledb_path, svn_path, grandmesa_path):
    ttc = parse_grid_spec({"grid": "ttc", "aoi": svn_path, "tiledb": tiledb_path, "year": 2024})
    tiles = tiles_from_spec(ttc)
    expected = ttc_tiles_in_aoi(TileDatabase.open(tiledb_path), read_aoi(svn_path))
    assert [t.id for t in tiles] == expected.ids() and len(tiles) > 800
    assert {t.attrs["year"] for t in tiles} == {2024}

    utm = UtmGrid(aoi=grandmesa_path, size=20_000, buffer=100)
    assert select_tiles(utm).ids() == utm_patches(read_aoi(grandmesa_path), 20_000, 100).ids()

    healpix = tiles_from_spec(HealpixGrid(bbox=(13.0, 45.0, 14.0, 46.0), order=6))
    assert healpix and all(t.id.startswith("6/") for t in healpix)


class SquareGrid(grid_module.Grid):
    """A grid made in a test: one module-like class plus one entry point, nothing else."""

    grid: Annotated[Literal["square"], Cli(hidden=True)] = "square"
    size: float = Field(gt=0, description="Square side, metres.")

    def select(self) -> UtmPatchSet:
        empty = np.empty(0, np.int64)
        return UtmPatchSet(self.size, 0.0, empty, empty, empty)


@pytest.fixture
def square_registered(monkeypatch):
    """The registry as if a package declared ``square = "square_plugin:SquareGrid"``."""
    monkeypatch.setitem(sys.modules, "square_plugin", types.SimpleNamespace(SquareGrid=SquareGrid))
    points = dict(plugins.registered(plugins.GRIDS))
    points["square"] = EntryPoint("square", "square_plugin:SquareGrid", plugins.GRIDS)
    real = plugins.registered
    monkeypatch.setattr(
        plugins, "registered", lambda group: points if group == plugins.GRIDS else real(group)
    )
    caches = (grid_module.registered_grids, spec_module.grid_spec_type)
    for cache in caches:
        cache.cache_clear()
    yield TypeAdapter(spec_module.grid_spec_type())
    for cache in caches:
        cache.cache_clear()


def test_a_new_grid_is_a_subclass_and_an_entry_point(square_registered):
    spec = square_registered.validate_python({"grid": "square", "bbox": "0,0,1,1", "size": 5})
    assert isinstance(spec, SquareGrid) and len(select_tiles(spec)) == 0
    with pytest.raises(ValidationError) as caught:
        square_registered.validate_python({"grid": "healpix", "bbox": "0,0,1,1", "size": 5})
    assert describe_validation_error(caught.value) == (
        "size only applies to the square or utm grid, not healpix"
    )
    with pytest.raises(ValidationError) as caught:
        square_registered.validate_python({"grid": "hex"})
    assert "known: healpix, square, ttc, utm" in describe_validation_error(caught.value)
