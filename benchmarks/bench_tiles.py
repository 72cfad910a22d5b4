"""TTC tile selection: tilefleet against the straightforward way, on real inputs.

The straightforward way is what the TTC pipeline does: read the tile database, keep tile
centres within the area's bounding box grown by a tile, then test each candidate tile's
square against the area with shapely, one tile at a time. Both sides must select the same
tiles. Prints one line per comparison: ``name: tilefleet X s, straightforward Y s, ratio R``.

    .venv/bin/python benchmarks/bench_tiles.py [--data ../shared/data] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.dataset  # noqa: F401  (imported up front: the timings are of work, not imports)
import pyarrow.parquet as pq
import shapely

from tilefleet.tiles import TileDatabase, read_aoi, ttc_tiles_in_aoi, ttc_tiles_in_bbox

HALF = 1 / 36
BRAZIL_BBOX = (-74.0, -34.0, -34.0, 5.3)


def straightforward_read(path: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(path, columns=["X", "Y", "X_tile", "Y_tile"])
    return {name: table.column(name).to_numpy() for name in table.column_names}


def straightforward_select(db: dict[str, np.ndarray], area) -> set[str]:
    """Bounding-box prefilter, then one shapely intersection per candidate tile."""
    minx, miny, maxx, maxy = area.bounds
    x, y = db["X"], db["Y"]
    pad = 2 * HALF
    candidates = np.flatnonzero(
        (x >= minx - pad) & (x <= maxx + pad) & (y >= miny - pad) & (y <= maxy + pad)
    )
    selected = set()
    for i in candidates:
        square = shapely.box(x[i] - HALF, y[i] - HALF, x[i] + HALF, y[i] + HALF)
        if area.intersects(square):
            selected.add(f"{db['X_tile'][i]}X{db['Y_tile'][i]}Y")
    return selected


def best_time(function: Callable[[], object], repeat: int) -> tuple[float, object]:
    """The median wall time of ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def compare(name: str, ours: Callable[[], set[str]], theirs: Callable[[], set[str]], repeat: int):
    ours_s, ours_ids = best_time(ours, repeat)
    theirs_s, theirs_ids = best_time(theirs, max(1, repeat // 2))
    if ours_ids != theirs_ids:
        raise SystemExit(f"{name}: the two sides disagree ({len(ours_ids)} vs {len(theirs_ids)})")
    ratio = theirs_s / ours_s
    print(
        f"{name} ({len(ours_ids)} tiles): tilefleet {ours_s:.4f} s, "
        f"straightforward {theirs_s:.4f} s, ratio {ratio:.1f}",
        flush=True,
    )


def star_polygon(cx: float, cy: float, radius: float, points: int, seed: int = 0):
    """A large irregular polygon: a star of ``points`` spikes of random length."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * math.pi, points, endpoint=False)
    radii = radius * rng.uniform(0.55, 1.0, points)
    return shapely.Polygon(
        np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)])
    )


def main() -> None:
    default_data = Path(
        os.environ.get("TILEFLEET_TEST_DATA", Path(__file__).parents[1].parent / "shared" / "data")
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tiledb = args.data / "ttc_tiledb" / "tiledb.parquet"
    slovenia = read_aoi(args.data / "aoi" / "svn_border.geojson")

    # Brazil-sized bbox, reading the parquet included on both sides.
    compare(
        "brazil bbox, parquet read included",
        lambda: set(ttc_tiles_in_bbox(TileDatabase.read(tiledb), BRAZIL_BBOX).ids()),
        lambda: straightforward_select(straightforward_read(tiledb), shapely.box(*BRAZIL_BBOX)),
        args.repeat,
    )

    # Polygons, with the database already in memory on both sides (reading costs the same).
    ours_db, their_db = TileDatabase.open(tiledb), straightforward_read(tiledb)
    polygons = {
        "slovenia polygon": slovenia,
        "slovenia grown by 3 degrees": slovenia.buffer(3.0),
        "brazil-sized star polygon (2000 spikes)": star_polygon(-54.0, -14.0, 18.0, 2000),
    }
    for name, area in polygons.items():
        # Each side gets its own copy: tilefleet prepares (indexes) the geometry it is given,
        # which would speed up the other side's per-tile tests too.
        ours_area, their_area = (shapely.from_wkb(shapely.to_wkb(area)) for _ in range(2))
        compare(
            name,
            lambda area=ours_area: set(ttc_tiles_in_aoi(ours_db, area).ids()),
            lambda area=their_area: straightforward_select(their_db, area),
            args.repeat,
        )


if __name__ == "__main__":
    main()
