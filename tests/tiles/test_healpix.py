"""HEALPix cells, checked against healpy (ids, centres, outlines), shapely on healpy's cell
outlines (coverage) and mortie (morton words)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.affinity import translate

from tilefleet.tiles import TileInputError, bbox_geometry, read_aoi
from tilefleet.tiles.healpix import (
    HealpixCellSet,
    cell_boundaries,
    cell_centers,
    cell_polygons,
    cells_covering,
    children,
    decimal_morton_to_nested,
    default_edge_points,
    healpix_cells,
    lonlat_to_cell,
    morton_to_nested,
    nested_to_decimal_morton,
    nested_to_morton,
    parents,
)

hp = pytest.importorskip("healpy", reason="healpy (the 'healpix' extra) is the reference")


def unit_vectors(lon, lat) -> np.ndarray:
    lon, lat = np.radians(lon), np.radians(lat)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def healpy_outlines(order: int, cells: np.ndarray, step: int) -> np.ndarray:
    """Cell outlines from healpy's boundaries, as lon/lat polygons with longitudes unwrapped
    around each cell's centre (so a cell on the antimeridian may reach past +-180)."""
    vectors = hp.boundaries(2**order, cells, step=step, nest=True)  # (n, 3, 4 * step)
    lon, lat = hp.vec2ang(np.moveaxis(vectors, 1, 2).reshape(-1, 3), lonlat=True)
    lon, lat = lon.reshape(len(cells), -1), lat.reshape(len(cells), -1)
    centre, _ = hp.pix2ang(2**order, cells, nest=True, lonlat=True)
    lon = centre[:, None] + ((lon - centre[:, None] + 180) % 360 - 180)
    return shapely.polygons(np.stack([lon, lat], axis=2))


def cells_near(order: int, lon: float, lat: float, radius: float) -> np.ndarray:
    """All cells at ``order`` that reach into a disc (degrees) around a point, by healpy."""
    centre = hp.ang2vec(lon, lat, lonlat=True)
    return hp.query_disc(2**order, centre, np.radians(radius), inclusive=True, nest=True)


def assert_coverage(got: np.ndarray, aoi, order: int, candidates: np.ndarray) -> None:
    """``got`` holds every candidate whose healpy outline meets the AOI (shrunk by a hair) and
    none that misses it (grown by a hair): what shapely says, up to float noise."""
    outlines = healpy_outlines(order, candidates, default_edge_points(order))
    copies = shapely.union_all([translate(aoi, s) for s in (-360, 0, 360)])
    strict = set(candidates[shapely.intersects(outlines, copies.buffer(-1e-9))].tolist())
    loose = set(candidates[shapely.intersects(outlines, copies.buffer(1e-9))].tolist())
    got = set(got.tolist())
    assert strict <= got, f"missing cells: {sorted(strict - got)[:10]}"
    assert got <= loose, f"extra cells: {sorted(got - loose)[:10]}"
    assert len(loose - strict) <= 0.01 * len(strict) + 2


# --- point -> cell ---------------------------------------------------------------------------


@pytest.mark.parametrize("order", [0, 3, 9, 16, 29])
def test_points_to_cells_match_healpy(order):
    rng = np.random.default_rng(order)
    lon = rng.uniform(-180, 180, 300_000)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 300_000)))
    np.testing.assert_array_equal(
        lonlat_to_cell(lon, lat, order), hp.ang2pix(2**order, lon, lat, nest=True, lonlat=True)
    )


@pytest.mark.parametrize("order", [1, 6, 12])
def test_points_on_edges_poles_and_antimeridian(order):
    """On cell edges the two may pick different neighbours (1-ulp differences in cos); they
    must then both be cells the point lies on, as healpy's nudged points show."""
    edge_lat = np.degrees(np.arcsin(2 / 3))  # the polar-cap / equatorial-belt boundary
    lons = np.concatenate([np.arange(-180, 180.1, 11.25), [-179.9999999999, 179.9999999999]])
    lats = np.concatenate([np.arange(-90, 90.1, 7.5), [edge_lat, -edge_lat, 89.99999, -89.99999]])
    lon, lat = (a.ravel() for a in np.meshgrid(lons, lats))
    mine = lonlat_to_cell(lon, lat, order)
    theirs = hp.ang2pix(2**order, lon, lat, nest=True, lonlat=True)
    differ = np.flatnonzero(mine != theirs)
    assert len(differ) < 0.02 * len(lon)
    nudges = [(dx, dy) for dx in (-1e-9, 0, 1e-9) for dy in (-1e-9, 0, 1e-9)]
    for i in differ:
        near = {
            int(hp.ang2pix(2**order, lon[i] + dx, np.clip(lat[i] + dy, -90, 90), True, True))
            for dx, dy in nudges
        }
        assert {mine[i], theirs[i]} <= near, (lon[i], lat[i])
    # The antimeridian is one meridian.
    probe = lats[::6]
    np.testing.assert_array_equal(
        lonlat_to_cell(np.full(len(probe), 180.0), probe, order),
        lonlat_to_cell(np.full(len(probe), -180.0), probe, order),
    )
    # At a pole, a point goes to one of the four cells that meet there, by its longitude.
    at_pole = lonlat_to_cell(np.array([-170.0, -20.0, 10.0, 100.0]), np.full(4, 90.0), order)
    corners = np.moveaxis(hp.boundaries(2**order, at_pole, step=1, nest=True), 1, 2)
    assert len(set(at_pole.tolist())) == 4 and np.all(np.isclose(corners[..., 2], 1).any(axis=1))


def test_bad_orders_and_latitudes_are_bad_input():
    with pytest.raises(TileInputError, match="order"):
        lonlat_to_cell([0.0], [0.0], 30)
    with pytest.raises(TileInputError, match="latitudes"):
        lonlat_to_cell([0.0], [90.5], 3)
    with pytest.raises(TileInputError, match="out of range"):
        cell_centers(np.array([12 * 4**3]), 3)


# --- cell geometry and hierarchy ---------------------------------------------------------------


@pytest.mark.parametrize("order", [0, 1, 5, 12, 29])
def test_centres_and_outlines_match_healpy(order):
    rng = np.random.default_rng(100 + order)
    cells = np.unique(rng.integers(0, 12 * 4**order, 2_000))
    lon, lat = cell_centers(cells, order)
    ref_lon, ref_lat = hp.pix2ang(2**order, cells, nest=True, lonlat=True)
    np.testing.assert_allclose(unit_vectors(lon, lat), unit_vectors(ref_lon, ref_lat), atol=1e-13)
    assert lon.min() >= -180 and lon.max() < 180
    for step in (1, 4):
        lon, lat = cell_boundaries(cells, order, step)
        ref = np.moveaxis(hp.boundaries(2**order, cells, step=step, nest=True), 1, 2)
        np.testing.assert_allclose(unit_vectors(lon, lat), ref, atol=1e-13)


def test_children_lie_in_their_parent():
    parent_cells = np.array([0, 5, 767, 3 * 4**5 + 77])
    kids = children(parent_cells, 5, 7)
    assert kids.shape == (4 * 16,)
    lon, lat = hp.pix2ang(2**7, kids, nest=True, lonlat=True)
    np.testing.assert_array_equal(
        hp.ang2pix(2**5, lon, lat, nest=True, lonlat=True), np.repeat(parent_cells, 16)
    )
    np.testing.assert_array_equal(parents(kids, 7, 5), np.repeat(parent_cells, 16))
    np.testing.assert_array_equal(children(parent_cells, 5, 5), parent_cells)
    with pytest.raises(TileInputError, match="coarser"):
        children(parent_cells, 5, 4)


# --- coverage ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [6, 9, 11])
def test_slovenia_coverage_matches_shapely_on_healpy_outlines(svn_path, order):
    aoi = read_aoi(svn_path)
    got = cells_covering(aoi, order)
    assert np.all(np.diff(got) > 0)
    assert_coverage(got, aoi, order, cells_near(order, 14.9, 46.1, 2.5))
    # Every cell that holds a point of the AOI is there (points binned by healpy).
    rng = np.random.default_rng(order)
    minx, miny, maxx, maxy = aoi.bounds
    lon, lat = rng.uniform(minx, maxx, 20_000), rng.uniform(miny, maxy, 20_000)
    inside = shapely.contains_xy(aoi, lon, lat)
    sampled = hp.ang2pix(2**order, lon[inside], lat[inside], nest=True, lonlat=True)
    assert set(sampled.tolist()) <= set(got.tolist())


def test_coverage_of_polygon_with_hole(svn_path):
    order = 10
    aoi = read_aoi(svn_path)
    hole = shapely.Point(14.8, 46.1).buffer(0.3)
    holed = aoi.difference(hole)
    got = cells_covering(holed, order)
    candidates = cells_near(order, 14.9, 46.1, 2.5)
    assert_coverage(got, holed, order, candidates)
    outlines = healpy_outlines(order, candidates, 1)
    in_hole = candidates[shapely.contains(hole, outlines)]
    assert len(in_hole) > 30 and not set(in_hole.tolist()) & set(got.tolist())
    assert len(got) < len(cells_covering(aoi, order)) - len(in_hole) + 1


def test_coverage_across_the_antimeridian():
    order = 7
    aoi = bbox_geometry((175.0, -5.0, -175.0, 5.0))  # two boxes meeting at +-180
    got = cells_covering(aoi, order)
    assert_coverage(got, aoi, order, cells_near(order, 180.0, 0.0, 10.0))
    lon, _ = hp.pix2ang(2**order, got, nest=True, lonlat=True)
    lon = np.where(lon >= 180, lon - 360, lon)
    assert (lon > 175).any() and (lon < -175).any() and np.all(np.abs(lon) > 174)
    # Cells centred exactly on the antimeridian are in, and their outlines are cut there.
    on_line = got[np.abs(lon) == 180]
    assert len(on_line) > 3
    for outline in cell_polygons(on_line, order):
        assert outline.geom_type == "MultiPolygon"
        assert outline.bounds[0] == -180 and outline.bounds[2] == 180
    # As tiles, their pixel grid stays one piece across 180; their footprint is cut there.
    tile = next(t for t in HealpixCellSet(order, on_line[:1]).tiles())
    minx, _, maxx, _ = tile.bounds
    assert minx < 180 < maxx or minx < -180 < maxx
    assert tile.geobox(0.01).shape[1] < 100  # ~0.46 degrees wide, not the whole world
    assert tile.footprint.geom_type == "MultiPolygon"
    # The same area written with longitudes past 180 gives the same cells.
    shifted = shapely.box(175.0, -5.0, 185.0, 5.0)
    np.testing.assert_array_equal(cells_covering(shifted, order), got)


@pytest.mark.parametrize("north", [True, False])
def test_coverage_of_a_polar_cap(north):
    """A cap above 88 degrees holds exactly the cells that reach past 88: a cell's highest
    point is one of its corners (healpy's), since latitude is monotonic along its edges."""
    order = 6
    aoi = shapely.box(-180, 88, 180, 90) if north else shapely.box(-180, -90, 180, -88)
    got = cells_covering(aoi, order)
    corners = hp.boundaries(2**order, np.arange(12 * 4**order), step=1, nest=True)
    _, corner_lat = hp.vec2ang(np.moveaxis(corners, 1, 2).reshape(-1, 3), lonlat=True)
    corner_lat = corner_lat.reshape(-1, 4)
    reach = corner_lat.max(axis=1) > 88 if north else corner_lat.min(axis=1) < -88
    np.testing.assert_array_equal(got, np.flatnonzero(reach))
    pole = 90.0 if north else -90.0
    at_pole = lonlat_to_cell(np.array([0.0, 123.0]), np.array([pole, pole]), order)
    assert set(at_pole.tolist()) <= set(got.tolist())
    # The four cells at the pole: in lon/lat each is 90 degrees wide along the pole line.
    touching = np.flatnonzero(np.isclose(np.abs(corner_lat), 90).any(axis=1) & reach)
    assert len(touching) == 4
    for outline in cell_polygons(touching, order):
        minx, miny, maxx, maxy = outline.bounds
        assert maxx - minx == pytest.approx(90)
        assert (maxy if north else miny) == pole


def test_empty_aoi_is_bad_input():
    with pytest.raises(TileInputError, match="empty"):
        cells_covering(shapely.Polygon(), 5)


def test_cell_set_columns_and_tiles(svn_path):
    cells = healpix_cells(read_aoi(svn_path), 8)
    assert isinstance(cells, HealpixCellSet) and len(cells) > 20
    columns = cells.columns()
    assert list(columns) == ["cell_id", "order", "morton"]
    assert columns["morton"].dtype == np.uint64 and set(columns["order"].tolist()) == {8}
    tiles = list(cells.tiles())
    assert [t.id for t in tiles] == [f"8/{c}" for c in cells.cells.tolist()]
    lon, lat = hp.pix2ang(2**8, cells.cells, nest=True, lonlat=True)
    for tile, x, y in zip(tiles, lon, lat, strict=True):
        assert tile.footprint.contains(shapely.Point(x, y))
        assert tile.attrs["cell_id"] == int(tile.id.split("/")[1])


# --- morton words (mortie) ---------------------------------------------------------------------


def test_morton_words_match_mortie():
    mortie = pytest.importorskip("mortie", reason="mortie defines the morton convention")
    rng = np.random.default_rng(7)
    for order in range(30):
        cells = np.unique(
            np.concatenate([rng.integers(0, 12 * 4**order, 500), [0, 12 * 4**order - 1]])
        )
        words = nested_to_morton(cells, order)
        base, inner = cells >> (2 * order), cells & ((1 << (2 * order)) - 1)
        np.testing.assert_array_equal(words, mortie.norm2mort(inner, base, order).astype(np.uint64))
        back, back_order = morton_to_nested(words)
        ref_cells, ref_order = mortie.mort2healpix(words)
        np.testing.assert_array_equal(back, cells)
        np.testing.assert_array_equal(back, np.asarray(ref_cells))
        assert back_order == ref_order == order
        if order <= 18:
            decimal = nested_to_decimal_morton(cells, order)
            rendered = [int(str(mortie.MortonWord(int(w)))) for w in words]
            np.testing.assert_array_equal(decimal, rendered)
            assert decimal_morton_to_nested(decimal) == (pytest.approx(cells), order)


def test_point_morton_matches_mortie_geodetic_spherical():
    mortie = pytest.importorskip("mortie", reason="mortie defines the morton convention")
    rng = np.random.default_rng(8)
    lon, lat = rng.uniform(-180, 180, 50_000), rng.uniform(-90, 90, 50_000)
    for order in (6, 12, 18):
        ours = nested_to_morton(lonlat_to_cell(lon, lat, order), order)
        theirs = mortie.geo2mort(lat, lon, order=order, latitude="geodetic-spherical")
        np.testing.assert_array_equal(ours, theirs)


def test_morton_words_of_mixed_orders_are_refused():
    words = np.concatenate([nested_to_morton(np.array([5]), 3), nested_to_morton(np.array([5]), 4)])
    with pytest.raises(TileInputError, match="mix orders"):
        morton_to_nested(words)
    with pytest.raises(TileInputError, match="prefix"):
        morton_to_nested(np.array([5], dtype=np.uint64))
