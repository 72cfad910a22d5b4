"""The Tile: compact, picklable, and a pixel grid that lines up across tiles and runs."""

from __future__ import annotations

import dataclasses
import math
import pickle
from importlib import import_module
from typing import Annotated, get_args, get_origin

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from tilefleet.tiles import Tile, TileInputError

HALF = 1 / 36


def ttc_tile(x: float, y: float) -> Tile:
    return Tile("1935X1767Y", (x - HALF, y - HALF, x + HALF, y + HALF), attrs={"year": 2023})


def on_lattice(value: float, resolution: float) -> bool:
    return abs(value / resolution - round(value / resolution)) < 1e-6


def test_box_footprint_is_kept_as_bounds_and_pickles_small():
    tile = Tile.from_footprint("a", shapely.box(13.8, 45.4, 13.9, 45.5), {"year": 2023})
    assert tile.outline is None and tile.bounds == (13.8, 45.4, 13.9, 45.5)
    assert tile.footprint.equals(shapely.box(13.8, 45.4, 13.9, 45.5))
    data = pickle.dumps(tile)
    assert len(data) < 250 and pickle.loads(data) == tile
    with pytest.raises(dataclasses.FrozenInstanceError):
        tile.id = "b"
    assert hash(tile) == hash(pickle.loads(data))


def test_other_footprints_are_kept_as_wkb():
    triangle = shapely.Polygon([(10, 10), (11, 10), (10, 11)])
    tile = Tile.from_footprint("t", triangle)
    assert tile.outline is not None and tile.footprint.equals(triangle)
    assert tile.bounds == (10.0, 10.0, 11.0, 11.0)
    with pytest.raises(TileInputError, match="empty"):
        Tile.from_footprint("e", shapely.Polygon())


def test_geobox_snaps_outwards_to_the_resolution_lattice():
    resolution = 1 / 3600  # one arc-second
    tile = ttc_tile(13.8056, 45.4166481395307)
    box = tile.geobox(resolution)
    left, bottom, right, top = box.boundingbox
    assert box.crs.epsg == 4326
    for edge in (left, bottom, right, top):
        assert on_lattice(edge, resolution)
    minx, miny, maxx, maxy = tile.bounds
    assert left <= minx < left + resolution and right - resolution < maxx <= right
    assert bottom <= miny < bottom + resolution and top - resolution < maxy <= top
    assert tuple(box.shape) in {(200, 200), (200, 201), (201, 200), (201, 201)}
    # A neighbour's grid is the same lattice: its edges sit a whole number of pixels away.
    neighbour = ttc_tile(13.8611, 45.4166481395307).geobox(resolution)
    offset = (neighbour.transform.c - box.transform.c) / resolution
    assert abs(offset - round(offset)) < 1e-6 and round(offset) in (199, 200, 201)


def test_geobox_in_another_crs_covers_the_footprint():
    tile = ttc_tile(13.8056, 45.4166481395307)
    box = tile.geobox(10, crs="EPSG:32633")
    assert box.crs.epsg == 32633
    left, bottom, right, top = box.boundingbox
    assert all(on_lattice(v, 10) for v in (left, bottom, right, top))
    # Every point of the footprint's edge (projected with pyproj here) lies in the grid.
    ring = shapely.segmentize(tile.footprint, 0.001).exterior.coords
    lon, lat = np.array(ring).T
    x, y = Transformer.from_crs(4326, 32633, always_xy=True).transform(lon, lat)
    assert x.min() >= left and x.max() <= right and y.min() >= bottom and y.max() <= top
    assert x.min() - left < 10 and right - x.max() < 10  # and no more than a pixel beyond
    assert math.isclose(box.resolution.x, 10) and math.isclose(box.resolution.y, -10)


def test_geobox_needs_a_positive_resolution():
    assert (
        ttc_tile(0.0, 0.0).geobox(np.float64(0.01)).shape == ttc_tile(0.0, 0.0).geobox(0.01).shape
    )
    for bad in (0, -1.0, float("nan"), True, "10"):
        with pytest.raises(TileInputError, match="resolution"):
            ttc_tile(0.0, 0.0).geobox(bad)


def test_package_exports_resolve_lazily():
    import tilefleet.tiles as tiles

    assert sorted(tiles.__all__) == sorted(tiles._EXPORTS) == sorted(dir(tiles))
    for name, module in tiles._EXPORTS.items():
        value = getattr(tiles, name)
        assert value is getattr(import_module(f"tilefleet.tiles.{module}"), name)
        # A type alias (GridSpec) lives where its members do.
        members = get_args(get_args(value)[0]) if get_origin(value) is Annotated else (value,)
        assert members and all(m.__module__.startswith("tilefleet.tiles.") for m in members)
    with pytest.raises(AttributeError):
        tiles.not_a_name  # noqa: B018
