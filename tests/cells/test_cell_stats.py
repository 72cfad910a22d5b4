"""The vectorised statistics against numpy, one cell at a time."""

from __future__ import annotations

import numpy as np
import pytest

from tilefleet.ops.cell_stats import STATISTICS, cell_statistics


def loop_statistics(slots, h, s, n):
    out = {name: np.full(n, np.nan) for name in STATISTICS}
    out["count"] = np.zeros(n)
    for cell in range(n):
        v, w = h[slots == cell], 1 / s[slots == cell] ** 2
        if v.size:
            out["count"][cell] = v.size
            out["h_min"][cell], out["h_max"][cell] = v.min(), v.max()
            out["h_mean"][cell] = np.average(v, weights=w)
            out["h_sigma"][cell] = 1 / np.sqrt(w.sum())
            out["h_variance"][cell] = np.var(v)
            for name, q in (("h_q25", 0.25), ("h_q50", 0.5), ("h_q75", 0.75)):
                out[name][cell] = np.quantile(v, q)
    return out


def test_every_statistic_matches_numpy_per_cell():
    rng = np.random.default_rng(5)
    n = 256
    slots = rng.integers(0, n // 2, 5000) * 2  # odd cells stay empty
    slots[:3] = 1  # one cell with exactly 3 points, one with a single point
    slots[3] = 3
    h = rng.normal(1500, 300, slots.size)
    s = rng.uniform(0.01, 2, slots.size)
    got = cell_statistics(slots, h, s, n)
    want = loop_statistics(slots, h, s, n)
    assert got["count"].dtype == np.int32 and got["h_mean"].dtype == np.float32
    np.testing.assert_array_equal(got["count"], want["count"])
    for name in STATISTICS[1:]:
        np.testing.assert_allclose(got[name], want[name].astype(np.float32), rtol=1e-6)
    assert np.isnan(got["h_mean"][5]) and got["count"][5] == 0


def test_chosen_statistics_only_and_no_sigma_needed():
    got = cell_statistics(np.array([0, 0, 2]), np.array([1.0, 3.0, 5.0]), None, 4, ["h_q50"])
    assert list(got) == ["h_q50"]
    np.testing.assert_array_equal(got["h_q50"], [2.0, np.nan, 5.0, np.nan])


def test_no_points_gives_fill_values():
    got = cell_statistics(np.empty(0, int), np.empty(0), np.empty(0), 4)
    assert got["count"].tolist() == [0, 0, 0, 0] and np.isnan(got["h_max"]).all()


@pytest.mark.parametrize(("slots", "message"), [([4], "slots must lie"), ([-1], "slots must lie")])
def test_bad_input_is_refused(slots, message):
    with pytest.raises(ValueError, match=message):
        cell_statistics(np.array(slots), np.array([1.0]), np.array([1.0]), 4)
    with pytest.raises(ValueError, match="unknown statistic"):
        cell_statistics(np.array([0]), np.array([1.0]), np.array([1.0]), 4, ["h_std"])


def test_float32_heights_take_the_packed_sort_and_stay_exact():
    rng = np.random.default_rng(9)
    slots = rng.integers(0, 64, 3000)
    h = rng.normal(0, 50, slots.size).astype(np.float32).astype(np.float64)  # +/- values
    h[:4] = [-0.0, 0.0, -1e-30, 1e30]
    got = cell_statistics(slots, h, None, 64, ["h_min", "h_max", "h_q25", "h_q50", "h_q75"])
    for cell in range(64):
        v = h[slots == cell]
        assert got["h_min"][cell] == np.float32(v.min())
        assert got["h_max"][cell] == np.float32(v.max())
        assert got["h_q50"][cell] == np.float32(np.quantile(v, 0.5))
