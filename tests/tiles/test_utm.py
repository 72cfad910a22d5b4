"""UTM patches, checked by projecting the patches back to lon/lat with pyproj and testing them
against the AOI with shapely, and by binning points of the AOI into patches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from tilefleet.tiles import TileInputError, read_aoi, utm_patches

SIZE = 10_000.0
BUFFER = 250.0


def zone_box(zone: int, north: bool):
    west = -180 + 6 * (zone - 1)
    return shapely.box(west, 0, west + 6, 84) if north else shapely.box(west, -80, west + 6, 0)


def sampled_patches(aoi, size: float, step: float = 0.01) -> set[tuple[int, int, int]]:
    """(epsg, col, row) of the patches holding a grid of points of the AOI."""
    minx, miny, maxx, maxy = aoi.bounds
    lon, lat = (
        a.ravel() for a in np.meshgrid(np.arange(minx, maxx, step), np.arange(miny, maxy, step))
    )
    keep = shapely.contains_xy(aoi, lon, lat)
    lon, lat = lon[keep], lat[keep]
    zone = np.floor((lon + 180) / 6).astype(int) + 1
    found = set()
    for z in np.unique(zone):
        for north in (True, False):
            mine = (zone == z) & ((lat >= 0) == north)
            if not mine.any():
                continue
            epsg = (32600 if north else 32700) + int(z)
            x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon[mine], lat[mine])
            found |= {(epsg, int(c), int(r)) for c, r in zip(x // size, y // size, strict=True)}
    return found


def squares_in_lonlat(epsg: int, cols, rows, size: float):
    """Lattice squares of a zone, projected back to lon/lat with 16 points per edge."""
    t = np.linspace(0, 1, 16, endpoint=False)
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    squares = []
    for c, r in zip(cols, rows, strict=True):
        x0, y0 = c * size, r * size
        xs = np.concatenate(
            [x0 + size * t, np.full(16, x0 + size), x0 + size - size * t, np.full(16, x0)]
        )
        ys = np.concatenate(
            [np.full(16, y0), y0 + size * t, np.full(16, y0 + size), y0 + size - size * t]
        )
        squares.append(shapely.Polygon(np.column_stack(to_lonlat.transform(xs, ys))))
    return np.array(squares, dtype=object)


def assert_patches_cover(patches, aoi, size: float) -> None:
    """Per zone: every lattice square near the AOI that meets the AOI's part in that zone
    (shrunk by a hair) is a patch, and every patch meets it (grown by a hair)."""
    got = set(zip(patches.epsg.tolist(), patches.col.tolist(), patches.row.tolist(), strict=True))
    sampled = sampled_patches(aoi, size)
    assert sampled <= got
    for epsg in {e for e, _, _ in sampled}:
        zone, north = epsg % 100, epsg < 32700
        part = aoi.intersection(zone_box(zone, north))
        cols = [c for e, c, _ in sampled if e == epsg]
        rows = [r for e, _, r in sampled if e == epsg]
        grid = np.meshgrid(
            np.arange(min(cols) - 2, max(cols) + 3), np.arange(min(rows) - 2, max(rows) + 3)
        )
        col, row = (a.ravel() for a in grid)
        squares = squares_in_lonlat(epsg, col, row, size)
        strict = shapely.intersects(squares, part.buffer(-1e-7))
        loose = shapely.intersects(squares, part.buffer(1e-7))
        mine = {(c, r) for e, c, r in got if e == epsg}
        assert {(c, r) for c, r, s in zip(col, row, strict, strict=True) if s} <= mine
        assert mine <= {(c, r) for c, r, s in zip(col, row, loose, strict=True) if s}


def test_grand_mesa_spans_two_zones(grandmesa_path):
    aoi = read_aoi(grandmesa_path)
    assert aoi.bounds == (-108.5, 38.0, -107.0, 39.5)
    patches = utm_patches(aoi, SIZE, BUFFER)
    assert set(patches.epsg.tolist()) == {32612, 32613}
    assert_patches_cover(patches, aoi, SIZE)
    # ~1.5 x 1.5 degrees of 10 km patches, both zones clipped at -108.
    assert 250 < len(patches) < 330
    ids = patches.ids()
    assert len(set(ids)) == len(ids)
    for tile_id, epsg, col, row in zip(ids, patches.epsg, patches.col, patches.row, strict=True):
        assert tile_id == f"{epsg}_{col}_{row}"


def test_patch_bounds_buffer_and_lattice(grandmesa_path):
    patches = utm_patches(read_aoi(grandmesa_path), SIZE, BUFFER)
    bounds = patches.bounds()
    np.testing.assert_array_equal(bounds[:, 0], patches.col * SIZE - BUFFER)
    np.testing.assert_array_equal(bounds[:, 3], (patches.row + 1) * SIZE + BUFFER)
    np.testing.assert_array_equal(bounds[:, 2] - bounds[:, 0], SIZE + 2 * BUFFER)
    # Neighbours overlap by twice the buffer.
    by_id = dict(zip(patches.ids(), bounds.tolist(), strict=True))
    e, c, r = patches.epsg[0], patches.col[0], patches.row[0]
    right = by_id.get(f"{e}_{c + 1}_{r}")
    assert right is not None and by_id[f"{e}_{c}_{r}"][2] - right[0] == 2 * BUFFER


def test_ids_are_stable_across_aois(grandmesa_path):
    whole = utm_patches(read_aoi(grandmesa_path), SIZE, BUFFER)
    part = utm_patches(shapely.box(-108.2, 38.3, -107.6, 38.9), SIZE, BUFFER)
    whole_bounds = dict(zip(whole.ids(), whole.bounds().tolist(), strict=True))
    assert 0 < len(part) < len(whole)
    for tile_id, bounds in zip(part.ids(), part.bounds().tolist(), strict=True):
        assert whole_bounds[tile_id] == bounds


def test_slovenia_from_its_utm_geojson(svn_path):
    aoi = read_aoi(svn_path)
    patches = utm_patches(aoi, 20_000.0)
    assert set(patches.epsg.tolist()) == {32633}
    assert_patches_cover(patches, aoi, 20_000.0)


def test_aoi_across_the_equator_uses_both_hemispheres():
    aoi = shapely.box(9.2, -0.3, 9.8, 0.3)
    patches = utm_patches(aoi, 5_000.0)
    assert set(patches.epsg.tolist()) == {32632, 32732}
    assert_patches_cover(patches, aoi, 5_000.0)


def test_patch_tiles_and_their_pixel_grid(grandmesa_path):
    patches = utm_patches(read_aoi(grandmesa_path), SIZE, BUFFER)
    tiles = list(patches.tiles())
    assert [t.id for t in tiles] == patches.ids()
    tile = tiles[0]
    assert tile.epsg == tile.attrs["epsg"] and tile.attrs["buffer"] == BUFFER
    box = tile.geobox(10.0)
    assert box.crs.epsg == tile.epsg
    assert box.shape == (1050, 1050)
    assert (box.transform.c, box.transform.f) == (tile.bounds[0], tile.bounds[3])
    # The WGS84 footprint is the buffered square, projected.
    centre = ((tile.bounds[0] + tile.bounds[2]) / 2, (tile.bounds[1] + tile.bounds[3]) / 2)
    lon, lat = Transformer.from_crs(tile.epsg, 4326, always_xy=True).transform(*centre)
    assert tile.footprint.contains(shapely.Point(lon, lat))
    footprint_area_km2 = tile.footprint.area * 111.32**2 * math.cos(math.radians(lat))
    assert footprint_area_km2 == pytest.approx(10.5**2, rel=0.01)


@pytest.mark.parametrize(
    ("aoi", "size", "buffer", "message"),
    [
        (shapely.box(9, 45, 10, 46), 0.0, 0.0, "positive"),
        (shapely.box(9, 45, 10, 46), 1000.0, -5.0, "non-negative"),
        (shapely.box(9, 80, 10, 85), 1000.0, 0.0, "outside UTM"),
        (shapely.Polygon(), 1000.0, 0.0, "empty"),
    ],
)
def test_bad_input(aoi, size, buffer, message):
    with pytest.raises(TileInputError, match=message):
        utm_patches(aoi, size, buffer)


def test_patches_across_the_antimeridian():
    aoi = shapely.MultiPolygon(
        [shapely.box(179.6, 60.0, 180.0, 60.4), shapely.box(-180.0, 60.0, -179.6, 60.4)]
    )
    patches = utm_patches(aoi, SIZE)
    assert set(patches.epsg.tolist()) == {32660, 32601}
    assert_patches_cover(patches, aoi, SIZE)
    footprints = patches.footprints()
    assert shapely.is_valid(footprints).all()
    assert shapely.bounds(footprints)[:, [0, 2]].min() >= -180
    assert shapely.bounds(footprints)[:, [0, 2]].max() <= 180
    # Patches of one zone that reach into the next are cut at 180, not smeared over the globe.
    cut = [f for f in footprints if f.geom_type == "MultiPolygon"]
    assert cut and all(f.area < 0.5 for f in cut)


def test_patches_in_one_crs_cover_an_aoi_across_zones(grandmesa_path):
    from tilefleet.tiles.utm import patches_in_crs

    aoi = read_aoi(grandmesa_path)  # spans UTM zones 12 and 13
    patches = patches_in_crs(aoi, 5070, 50_000)  # CONUS Albers: one CRS for all
    assert set(patches.epsg.tolist()) == {5070}
    to_albers = Transformer.from_crs(4326, 5070, always_xy=True)
    albers_aoi = shapely.transform(aoi, lambda xy: np.column_stack(to_albers.transform(*xy.T)))
    boxes = [shapely.box(*b) for b in patches.bounds()]
    assert shapely.union_all(boxes).covers(albers_aoi)
    assert all(box.intersects(albers_aoi) for box in boxes)
    assert patches.ids()[0] == f"5070_{patches.col[0]}_{patches.row[0]}"
    footprints = patches.footprints()
    assert all(f.intersects(aoi) for f in footprints)
