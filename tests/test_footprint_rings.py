"""The map's outlines, read from shapely's arrays at once, are exactly the rings of the
simplified polygons read one shapely object at a time: UTM patches (one crossing the
antimeridian: a MultiPolygon), HEALPix cells (a pole among them), a TTC box."""

from __future__ import annotations

import numpy as np
import shapely

from tilefleet.engine.footprints import _SIMPLIFY_FRACTION, footprints
from tilefleet.task import Task
from tilefleet.tiles.healpix import healpix_cells
from tilefleet.tiles.tile import Tile
from tilefleet.tiles.utm import utm_patches


def rings_one_by_one(tasks: list[Task]) -> list[np.ndarray]:
    """Each task's outline simplified as the map does, its polygons' exterior rings (not
    closed) read through shapely objects, in order; a box its four corners."""
    rings = []
    for task in tasks:
        record = task.params["tile"]
        if not record["outline"]:
            minx, miny, maxx, maxy = record["bounds"]
            rings.append(np.array([[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy]]))
            continue
        geometry = shapely.from_wkb(bytes.fromhex(record["outline"]))
        minx, miny, maxx, maxy = geometry.bounds
        simple = shapely.simplify(geometry, max(maxx - minx, maxy - miny) * _SIMPLIFY_FRACTION)
        for polygon in getattr(simple, "geoms", [simple]):
            ring = np.asarray(polygon.exterior.coords)[:-1]
            if not polygon.is_empty and len(ring) >= 3:
                rings.append(ring)
    return rings


def test_outlines_are_the_rings_of_the_simplified_polygons():
    tiles = [
        *utm_patches(shapely.box(6.0, 51.0, 6.3, 51.2), 5000).tiles(),
        *utm_patches(shapely.box(179.95, -16.6, 180.0, -16.5), 5000).tiles(),
        *healpix_cells(shapely.box(-180, 80, 180, 90), 3).tiles(),
        Tile("1X1Y", (10.0, 45.0, 10.0 + 1 / 18, 45.0 + 1 / 18)),
    ]
    tasks = [Task(t.id, "r", {"tile": t.as_record()}, "", "") for t in tiles]
    shapes = footprints(tasks)
    expected = rings_one_by_one(tasks)
    multi = [s for s in range(len(shapes)) if shapes.shape_ring[s + 1] - shapes.shape_ring[s] > 1]
    assert multi  # the patch cut at the antimeridian
    drawn = [
        shapes.rings[shapes.ring_start[r] : shapes.ring_start[r + 1]]
        for r in range(len(shapes.ring_start) - 1)
    ]
    assert len(drawn) == len(expected)
    for ours, theirs in zip(drawn, expected, strict=True):
        assert ours.shape == theirs.shape and np.array_equal(ours, theirs)
