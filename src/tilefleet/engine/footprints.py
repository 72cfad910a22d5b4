"""Lon/lat footprints of tasks, for the tile map of the run report and the monitor.

A task of a tiled recipe carries its tile in ``task.params["tile"]`` (a
:meth:`Tile.as_record`: bounds in the tile's CRS, its EPSG code, and a WKB outline when
the footprint is not a lon/lat box); a ``cells`` task names its HEALPix parent cell
(``parent``, ``parent_order``). Other tasks (a manifest's rows) have no footprint.

The map only needs what a screen shows, so outlines are simplified (a UTM patch becomes
its four corners) and everything is done per array, not per tile: 300k tiles take about
a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilefleet.task import Task

#: Outlines are simplified to this fraction of the tile's extent (far below a pixel).
_SIMPLIFY_FRACTION = 0.01


@dataclass
class Footprints:
    """The shapes of a map: one per distinct tile, with the tasks that fall on it.

    ``rings`` holds every ring's lon/lat vertices (not closed) as one (n, 2) array;
    ``ring_start[r]`` is ring ``r``'s first vertex and ``shape_ring[s]`` shape ``s``'s first
    ring (each array ends with the total, so shape ``s`` has rings
    ``shape_ring[s]:shape_ring[s+1]``).
    """

    ids: list[str]
    #: For every shape, the indices (into the tasks given) of the tasks on it.
    tasks: list[list[int]]
    rings: np.ndarray
    ring_start: np.ndarray
    shape_ring: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def extent(self) -> tuple[float, float, float, float] | None:
        if not len(self.rings):
            return None
        lo, hi = self.rings.min(axis=0), self.rings.max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def geojson(self, shape: int) -> dict[str, Any]:
        """Shape ``shape`` as a GeoJSON (Multi)Polygon."""
        first, last = self.shape_ring[shape], self.shape_ring[shape + 1]
        polygons = []
        for r in range(first, last):
            ring = self.rings[self.ring_start[r] : self.ring_start[r + 1]].tolist()
            polygons.append([[*ring, ring[0]]])
        if len(polygons) == 1:
            return {"type": "Polygon", "coordinates": polygons[0]}
        return {"type": "MultiPolygon", "coordinates": polygons}


def tile_key(task: Task) -> tuple[str, Any] | None:
    """What a task's footprint is made from: ``("tile", record)``, ``("cell", (order,
    cell))``, or None for a task without one."""
    params = task.params or {}
    record = params.get("tile")
    if isinstance(record, dict) and "bounds" in record and "id" in record:
        return "tile", record
    if "parent" in params and "parent_order" in params:
        try:
            return "cell", (int(params["parent_order"]), int(params["parent"]))
        except (TypeError, ValueError):
            return None
    return None


def task_footprint(task: Task) -> dict[str, Any] | None:
    """A task's lon/lat footprint as a GeoJSON geometry, or None when it has no tile."""
    shapes = footprints([task])
    return shapes.geojson(0) if len(shapes) else None


def footprints(tasks: Sequence[Task]) -> Footprints:
    """The distinct tiles of ``tasks`` (a tile with several tasks, such as one per month, is
    one shape) with their simplified lon/lat outlines; tasks without a tile are left out."""
    order: dict[str, int] = {}
    shape_tasks: list[list[int]] = []
    boxes: list[tuple[int, list[float]]] = []  # lon/lat boxes
    outlines: list[tuple[int, bytes]] = []  # WKB lon/lat outlines
    projected: dict[int, list[tuple[int, list[float]]]] = {}  # boxes per EPSG
    cells: dict[int, list[tuple[int, int]]] = {}  # HEALPix cells per order
    for index, task in enumerate(tasks):
        key = tile_key(task)
        if key is None:
            continue
        kind, value = key
        name = str(value["id"]) if kind == "tile" else f"{value[0]}/{value[1]}"
        shape = order.get(name)
        if shape is not None:
            shape_tasks[shape].append(index)
            continue
        shape = order[name] = len(shape_tasks)
        shape_tasks.append([index])
        if kind == "cell":
            cells.setdefault(value[0], []).append((shape, value[1]))
        elif value.get("outline"):
            outlines.append((shape, bytes.fromhex(value["outline"])))
        elif int(value.get("epsg") or 4326) == 4326:
            boxes.append((shape, [float(v) for v in value["bounds"]]))
        else:
            projected.setdefault(int(value["epsg"]), []).append(
                (shape, [float(v) for v in value["bounds"]])
            )
    parts: list[list[np.ndarray]] = [[] for _ in shape_tasks]
    for shape, bounds in boxes:
        parts[shape].append(_box_ring(*bounds))
    if outlines:
        _add_outlines(parts, outlines)
    for epsg, items in projected.items():
        _add_projected(parts, epsg, items)
    for cell_order, items in cells.items():
        _add_cells(parts, cell_order, items)
    return _pack(list(order), shape_tasks, parts)


def _box_ring(minx: float, miny: float, maxx: float, maxy: float) -> np.ndarray:
    return np.array([[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy]], dtype=float)


def _add_outlines(parts: list[list[np.ndarray]], outlines: list[tuple[int, bytes]]) -> None:
    import shapely

    geometries = shapely.from_wkb([wkb for _, wkb in outlines])
    bounds = shapely.bounds(geometries)
    extent = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
    geometries = shapely.simplify(geometries, extent * _SIMPLIFY_FRACTION)
    # Every polygon's exterior ring (not closed) at once: no shapely object per ring.
    polygons, owner = shapely.get_parts(geometries, return_index=True)
    coords, ring_of = shapely.get_coordinates(
        shapely.get_exterior_ring(polygons), return_index=True
    )
    sizes = np.bincount(ring_of, minlength=len(polygons))
    starts = np.concatenate([[0], np.cumsum(sizes)])
    for polygon, index in enumerate(owner.tolist()):
        if sizes[polygon] >= 4:  # three corners and the closing point, at least
            parts[outlines[index][0]].append(coords[starts[polygon] : starts[polygon + 1] - 1])


def _add_projected(
    parts: list[list[np.ndarray]], epsg: int, items: list[tuple[int, list[float]]]
) -> None:
    """Boxes in a projected CRS: their corners and edge midpoints reprojected at once."""
    from tilefleet.tiles.tile import WGS84_EPSG, transform_points

    b = np.array([bounds for _, bounds in items], dtype=float)
    minx, miny, maxx, maxy = b.T
    midx, midy = (minx + maxx) / 2, (miny + maxy) / 2
    x = np.stack([minx, midx, maxx, maxx, maxx, midx, minx, minx], axis=1)
    y = np.stack([miny, miny, miny, midy, maxy, maxy, maxy, midy], axis=1)
    lon, lat = transform_points(x, y, epsg, WGS84_EPSG)
    for (shape, _), ring_lon, ring_lat in zip(items, lon, lat, strict=True):
        parts[shape].append(np.stack([ring_lon, ring_lat], axis=1))


def _add_cells(
    parts: list[list[np.ndarray]], cell_order: int, items: list[tuple[int, int]]
) -> None:
    from tilefleet.tiles.healpix import cell_polygons

    polygons = cell_polygons(np.array([cell for _, cell in items], dtype=np.int64), cell_order)
    _add_outlines(
        parts, [(shape, polygon.wkb) for (shape, _), polygon in zip(items, polygons, strict=True)]
    )


def _pack(ids: list[str], shape_tasks: list[list[int]], parts: list[list[np.ndarray]]):
    rings = [ring for shape in parts for ring in shape]
    sizes = np.array([len(r) for r in rings], dtype=np.int64)
    ring_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    shape_ring = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    vertices = np.concatenate(rings) if rings else np.zeros((0, 2))
    return Footprints(ids, shape_tasks, vertices, ring_start, shape_ring)
