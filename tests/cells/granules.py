"""Helpers of the cells tests: synthetic granules written with
h5py's default file format (h5coro cannot read superblock v3), and an independent
reference computation (h5py + healpy, one cell at a time)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
FILL = np.float32(3.4028235e38)
REAL_GRANULE = "icesat2_atl06/ATL06_20181013235645_02340114_209_01.h5"


def write_granule(path: Path, beams: dict[str, dict[str, np.ndarray]]) -> Path:
    """An ATL06-shaped file: ``beams`` maps a beam to lat/lon/h/sigma/q arrays (gzip,
    chunked like ATL06, h5py's default libver)."""
    with h5py.File(path, "w") as f:
        for beam, columns in beams.items():
            group = f.create_group(f"{beam}/land_ice_segments")
            n = len(columns["lat"])
            values = {
                "latitude": np.asarray(columns["lat"], dtype=np.float64),
                "longitude": np.asarray(columns["lon"], dtype=np.float64),
                "h_li": np.asarray(columns.get("h", np.full(n, 100.0)), dtype=np.float32),
                "h_li_sigma": np.asarray(columns.get("sigma", np.full(n, 0.1)), dtype=np.float32),
                "atl06_quality_summary": np.asarray(columns.get("q", np.zeros(n)), dtype=np.int8),
            }
            for name, data in values.items():
                group.create_dataset(
                    name, data=data, chunks=(max(1, min(n, 1000)),), compression="gzip"
                )
    return path


def reference_statistics(paths, parent: int, parent_order: int, child_order: int, binner=None):
    """Per-cell statistics the straightforward way: h5py reads, healpy bins (or ``binner``),
    a numpy loop."""
    import healpy

    lon, lat, h, s = [], [], [], []
    for path in paths:
        with h5py.File(path, "r") as f:
            for beam in BEAMS:
                if beam not in f:
                    continue
                g = f[f"{beam}/land_ice_segments"]
                hh, ss = g["h_li"][:].astype(float), g["h_li_sigma"][:].astype(float)
                keep = (g["atl06_quality_summary"][:] == 0) & (hh < 3.4e38) & np.isfinite(hh)
                keep &= (ss > 0) & (ss < 3.4e38)
                lon.append(g["longitude"][:][keep])
                lat.append(g["latitude"][:][keep])
                h.append(hh[keep])
                s.append(ss[keep])
    lon, lat, h, s = (np.concatenate(v) for v in (lon, lat, h, s))
    if binner is None:
        cells = healpy.ang2pix(2**child_order, lon, lat, nest=True, lonlat=True)
    else:
        cells = binner(lon, lat)
    depth = child_order - parent_order
    n = 4**depth
    out = {"count": np.zeros(n, dtype=np.int64)}
    for name in ("h_min", "h_max", "h_mean", "h_sigma", "h_variance", "h_q25", "h_q50", "h_q75"):
        out[name] = np.full(n, np.nan)
    for offset in range(n):
        sel = cells == (parent << (2 * depth)) + offset
        if not sel.any():
            continue
        values, weights = h[sel], 1 / s[sel] ** 2
        out["count"][offset] = sel.sum()
        out["h_min"][offset], out["h_max"][offset] = values.min(), values.max()
        out["h_mean"][offset] = np.average(values, weights=weights)
        out["h_sigma"][offset] = 1 / np.sqrt(weights.sum())
        out["h_variance"][offset] = np.var(values)
        for name, q in (("h_q25", 0.25), ("h_q50", 0.5), ("h_q75", 0.75)):
            out[name][offset] = np.quantile(values, q)
    return out


def assert_matches_reference(group, chunk_index: int, reference) -> None:
    n = len(reference["count"])
    part = slice(chunk_index * n, (chunk_index + 1) * n)
    np.testing.assert_array_equal(group["count"][part], reference["count"])
    for name, expected in reference.items():
        if name != "count":
            np.testing.assert_allclose(
                group[name][part], expected.astype(np.float32), rtol=1e-6, err_msg=name
            )
