"""Areas of interest: GeoJSON or bbox in, WGS84 lon/lat out, antimeridian handled."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import shapely
from pydantic import BeforeValidator
from shapely.affinity import translate
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from tilefleet.tiles.tile import WGS84_EPSG, TileInputError, lookup_crs, transform_geometry

WORLD = shapely.box(-180.0, -90.0, 180.0, 90.0)


def read_aoi(path: str | Path) -> BaseGeometry:
    """The union of all geometries in a GeoJSON file, in WGS84 lon/lat.

    Accepts a FeatureCollection, a Feature or a bare geometry; a legacy ``crs`` member (e.g.
    ``urn:ogc:def:crs:EPSG::32633``) names the source CRS, otherwise it is WGS84 lon/lat.
    Raises ``TileInputError`` for a missing or unreadable file, an empty AOI or an invalid
    geometry (with GEOS's reason), since guessing a repair would change the area silently.
    """
    path = Path(path)
    if not path.is_file():
        raise TileInputError(f"AOI file not found: {path}")
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TileInputError(f"AOI file {path} is not readable JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise TileInputError(f"AOI file {path} is not a GeoJSON object")

    geometries = [
        _geometry_from(obj, path, i) for i, obj in enumerate(_geojson_geometries(document))
    ]
    geometries = [g for g in geometries if g is not None and not g.is_empty]
    if not geometries:
        raise TileInputError(f"AOI file {path} contains no geometry (empty AOI)")
    for i, geometry in enumerate(geometries):
        if not geometry.is_valid:
            reason = shapely.is_valid_reason(geometry)
            raise TileInputError(f"AOI file {path}: invalid geometry (feature {i}): {reason}")
    aoi = shapely.union_all(geometries)
    return to_wgs84(aoi, _crs_of(document, path))


def _geojson_geometries(document: dict[str, Any]) -> list[dict[str, Any] | None]:
    kind = document.get("type")
    if kind == "FeatureCollection":
        features = document.get("features") or []
        return [f.get("geometry") if isinstance(f, dict) else None for f in features]
    if kind == "Feature":
        return [document.get("geometry")]
    return [document]


def _geometry_from(obj: Any, path: Path, index: int) -> BaseGeometry | None:
    if obj is None:
        return None
    try:
        return shape(obj)
    except Exception as exc:  # shapely raises several types for malformed GeoJSON
        raise TileInputError(f"AOI file {path}: geometry {index} is malformed: {exc}") from exc


def _crs_of(document: dict[str, Any], path: Path) -> Any:
    crs = document.get("crs")
    if crs is None:
        return WGS84_EPSG
    name = crs.get("properties", {}).get("name") if isinstance(crs, dict) else None
    if not name:
        raise TileInputError(f"AOI file {path}: unsupported 'crs' member {crs!r}")
    return name


def to_wgs84(geometry: BaseGeometry, crs: Any) -> BaseGeometry:
    """``geometry`` (in ``crs``) reprojected to WGS84 lon/lat; a no-op when it already is."""
    if lookup_crs(crs).equals(lookup_crs("OGC:CRS84"), ignore_axis_order=True):
        return geometry  # GeoJSON coordinates are lon/lat whatever the axis order of the CRS
    result = transform_geometry(geometry, crs, WGS84_EPSG)
    if not result.is_valid:  # a valid AOI made invalid by reprojection rounding
        result = shapely.make_valid(result)
    return result


_BBOX_TEXT = re.compile(r"^\s*-?[\d.]+\s*(,\s*-?[\d.]+\s*){3}$")


def is_bbox_text(value: object) -> bool:
    """Whether an area given as text is four numbers ``W,S,E,N`` rather than a file name:
    ``--aoi`` takes both."""
    text = str(value) if isinstance(value, str | Path) else None  # a path, as typed
    return text is not None and _BBOX_TEXT.match(text) is not None


def parse_bbox(value: str | Sequence[float]) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` from ``"W,S,E,N"`` or four numbers, checked.

    ``west > east`` means the box crosses the antimeridian (as in GeoJSON).
    """
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    if len(parts) != 4:
        raise TileInputError(f"bbox needs 4 numbers W,S,E,N, got {value!r}")
    try:
        west, south, east, north = (float(p) for p in parts)
    except (TypeError, ValueError) as exc:
        raise TileInputError(f"bbox needs 4 numbers W,S,E,N, got {value!r}") from exc
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise TileInputError(f"bbox values must be finite, got {value!r}")
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise TileInputError(f"bbox longitudes must be within [-180, 180], got {value!r}")
    if not (-90 <= south < north <= 90):
        raise TileInputError(f"bbox needs -90 <= south < north <= 90, got {value!r}")
    if west == east:
        raise TileInputError(f"bbox has zero width, got {value!r}")
    return west, south, east, north


def _checked_bbox(value: Any) -> Any:
    """A model field's bbox, checked by :func:`parse_bbox` with its one-line message."""
    if value is None:
        return None
    try:
        return parse_bbox(value)
    except TileInputError as exc:
        raise ValueError(str(exc)) from None
    except TypeError:
        raise ValueError(f"bbox needs 4 numbers W,S,E,N, got {value!r}") from None


#: A lon/lat box as a model field: ``"W,S,E,N"`` or four numbers, checked.
LonLatBox = Annotated[tuple[float, float, float, float], BeforeValidator(_checked_bbox)]


def bbox_geometry(bbox: Sequence[float]) -> BaseGeometry:
    """The lon/lat polygon of a bbox; two boxes when it crosses the antimeridian."""
    west, south, east, north = parse_bbox(bbox)
    if west < east:
        return shapely.box(west, south, east, north)
    return shapely.MultiPolygon(
        [shapely.box(west, south, 180.0, north), shapely.box(-180.0, south, east, north)]
    )


def normalize_longitudes(geometry: BaseGeometry) -> BaseGeometry:
    """``geometry`` with parts beyond +-180 degrees moved back into [-180, 180]."""
    minx, _, maxx, _ = geometry.bounds
    if minx >= -180 and maxx <= 180:
        return geometry
    if minx < -540 or maxx > 540:
        raise TileInputError("AOI longitudes must lie within [-540, 540]")
    pieces = [
        shapely.intersection(translate(geometry, xoff=shift), WORLD)
        for shift in (-360.0, 0.0, 360.0)
    ]
    return shapely.union_all([p for p in pieces if not p.is_empty])


def wrap_copies(geometry: BaseGeometry) -> BaseGeometry:
    """``geometry`` (within [-180, 180]) plus its copies shifted by 360 degrees where they
    can meet shapes whose longitudes were unwrapped past +-180 (e.g. cells on the antimeridian).
    """
    minx, _, maxx, _ = geometry.bounds
    copies = [geometry]
    if minx < -90:
        copies.append(translate(geometry, xoff=360.0))
    if maxx > 90:
        copies.append(translate(geometry, xoff=-360.0))
    return shapely.union_all(copies) if len(copies) > 1 else geometry


def wrap_to_world(geometries: np.ndarray) -> np.ndarray:
    """Geometries whose longitudes run past +-180 cut at the antimeridian and moved back."""
    geometries = np.asarray(geometries, dtype=object).copy()
    bounds = shapely.bounds(geometries)
    crossing = np.flatnonzero((bounds[:, 0] < -180) | (bounds[:, 2] > 180))
    for i in crossing:
        geometries[i] = normalize_longitudes(geometries[i])
    return geometries
