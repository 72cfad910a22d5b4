"""The pure computations of ttc-ard: slope, Sentinel-1 selection and composites,
Sentinel-2 screening rules, date matching and scaling."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from pyproj import Geod

from tilefleet.ops.s1_composite import (
    S1Scene,
    choose_orbit,
    pick_quarter_scenes,
    quarter_composite,
    quarter_of,
    select_quarters,
)
from tilefleet.ops.s2_screening import (
    Candidate,
    ScreenedScene,
    bad_fraction,
    centre_window,
    cirrus_mask,
    day_of_year,
    match_items,
    scale_reflectance,
    select_dates,
)
from tilefleet.ops.slope import floor_small_slopes, geographic_spacing, slope_degrees


def test_slope_of_planes_is_their_angle():
    rows, cols = np.mgrid[0:5, 0:6].astype(float)
    east = rows * 0 + cols * 10.0  # rises 10 m per 10 m pixel eastwards: 45 degrees
    assert np.allclose(slope_degrees(east, 10.0, 10.0), 45.0)
    north = rows * 10.0 * np.tan(np.radians(30)) / 1.0
    assert np.allclose(slope_degrees(north, 10.0, 10.0), 30.0)
    assert slope_degrees(east, 10.0, 10.0).shape == (3, 4)  # the border is cropped
    flat = slope_degrees(np.zeros((3, 3)), 10.0, 10.0)
    assert floor_small_slopes(flat).tolist() == [[0.0]]  # flat stays flat
    assert floor_small_slopes(np.array([0.001, 0.03])).tolist() == pytest.approx([0.02, 0.03])


def test_ground_spacing_matches_geodesic_distances():
    res = 1 / 10800
    geod = Geod(ellps="WGS84")
    for lat in (0.25, 24.8, 53.9):
        dx, dy = geographic_spacing(np.array([lat]), res, res)
        _, _, east = geod.inv(10.0, lat, 10.0 + res, lat)
        _, _, north = geod.inv(10.0, lat - res / 2, 10.0, lat + res / 2)
        assert dx[0] == pytest.approx(east, rel=1e-6) and dy[0] == pytest.approx(north, rel=1e-6)
    # Near the equator a 1/3 arc-second pixel is ~10.3 m wide, at 54 N about 6 m.
    assert geographic_spacing(np.array([53.9]), res, res)[0][0] < 6.1


def test_quarter_windows_include_both_ends():
    assert [quarter_of(date(2020, m, d)) for m, d in ((1, 14), (1, 15), (3, 15), (3, 16))] == [
        None, 1, 1, None,
    ]  # fmt: skip
    assert quarter_of(date(2020, 12, 15)) == 4 and quarter_of(date(2020, 12, 31)) is None


def test_s1_orbit_auto_and_the_top_three_by_coverage():
    day = date(2020, 7, 20)
    scenes = [S1Scene(f"d{i}", day + timedelta(days=i), "DESCENDING", 1.0) for i in range(3)]
    scenes += [S1Scene("a0", day, "ASCENDING", 1.0), S1Scene("a1", day, "ASCENDING", 0.5)]
    assert choose_orbit(scenes, "AUTO") == "DESCENDING"
    assert choose_orbit(scenes, "ASCENDING") == "ASCENDING"
    partial = [S1Scene("p", day, "ASCENDING", 0.6), S1Scene("q", day, "ASCENDING", 0.7)]
    assert [s.id for s in pick_quarter_scenes(partial)] == ["q"]  # none full: the best one
    full = [S1Scene(f"f{i}", day, "A", c) for i, c in enumerate((0.96, 1.0, 0.99, 0.97, 0.5))]
    assert [s.id for s in pick_quarter_scenes(full)] == ["f1", "f2", "f3"]
    quarters = select_quarters(scenes, 2020, "DESCENDING")
    assert [len(quarters[q]) for q in (1, 2, 3, 4)] == [0, 0, 3, 0]


def test_s1_composite_median_ignores_nodata_and_keeps_zero_for_none():
    stack = np.array([[[0.1, 2.0, 0.0]], [[0.3, 0.5, np.nan]], [[0.2, 0.4, 0.0]]], np.float32)
    valid = np.array([[[1, 1, 0]], [[1, 0, 0]], [[1, 1, 0]]], bool)
    out = quarter_composite(stack, valid)
    assert out.dtype == np.uint16
    # Pixel 1: valid 2.0 and 0.4 -> median 1.2, clipped to 1; pixel 2: nothing valid -> 0.
    assert out[0].tolist() == [round(0.2 * 65535), 65535, 0]
    tiny = quarter_composite(np.full((1, 1, 1), 1e-7, np.float32), np.ones((1, 1, 1), bool))
    assert tiny[0, 0] == 1  # valid but rounding to 0: kept apart from nodata


def test_s2_fractions_of_a_scl_window():
    scl = np.full((60, 60), 5, np.uint8)
    scl[:, :15] = 9  # a cloud bank on the west quarter
    assert bad_fraction(scl) == pytest.approx(0.25)
    assert bad_fraction(centre_window(scl)) == 0.0
    scl[25:35, 25:35] = 3  # a cloud shadow in the centre
    assert bad_fraction(centre_window(scl)) == pytest.approx(100 / 900)


def scene(day, g, loc):
    return ScreenedScene(date.fromisoformat(day), g, loc)


def test_s2_drop_rules():
    kept = select_dates(
        [
            scene("2020-01-05", 0.6, 0.0),  # dropped: more than half bad
            scene("2020-02-05", 0.35, 0.45),  # dropped: 0.25*0.35 + 0.75*0.45 > 0.4
            scene("2020-03-05", 0.35, 0.2),  # kept: score 0.2375
            scene("2020-04-05", 0.1, 0.30),  # dropped: April has a scene clearer by 0.3
            scene("2020-04-20", 0.1, 0.0),
            scene("2020-12-31", 0.0, 0.0),  # 31 December is a date like the others
        ]
    )
    assert [s.day.isoformat() for s in kept] == ["2020-03-05", "2020-04-20", "2020-12-31"]


def test_s2_two_a_month_then_topped_up_to_24():
    days = [date(2020, 1, 1) + timedelta(days=i) for i in range(0, 366, 5)]  # 74 scenes
    scenes = [ScreenedScene(d, (i % 7) / 100, 0.0) for i, d in enumerate(days)]
    kept = select_dates(scenes)
    assert len(kept) == 24
    # Two a month first (24 of them), nothing to top up: exactly two per month.
    assert sorted({(s.day.month) for s in kept}) == list(range(1, 13))
    few = select_dates([scenes[0], scenes[1], scenes[2], scenes[3], scenes[7]])
    # January's first four: two by the monthly cap, the rest topped up (24 is the cap).
    assert len(few) == 5


def test_s2_matching_prefers_full_coverage_then_the_nearest_day():
    day = date(2020, 5, 10)
    candidates = [
        Candidate(0, day, 0.5),
        Candidate(1, day + timedelta(days=1), 1.0),
        Candidate(2, day + timedelta(days=3), 1.0),
        Candidate(3, day + timedelta(days=4), 1.0),
    ]
    assert match_items([day], candidates) == [1]
    assert match_items([day, day], candidates) == [1, 2]  # one item serves one date
    assert match_items([day + timedelta(days=20)], candidates) == [None]


def test_s2_scaling_dates_and_cirrus():
    dn = np.array([[0, 5000, 10000, 12000]], np.uint16)
    assert scale_reflectance(dn).tolist() == [[0, 32768, 65535, 65535]]
    assert day_of_year(date(2021, 12, 31)) == 365 and day_of_year(date(2020, 12, 31)) == 366
    assert day_of_year(date(2020, 1, 1)) == 1
    scl = np.full((10, 10), 4, np.uint8)
    scl[2:6, 2:6] = 10  # a cirrus patch
    scl[8, 8] = 10  # a speckle
    mask = cirrus_mask(scl)
    assert mask.dtype == np.uint8 and mask[2:6, 2:6].all() and mask.sum() == 16
