"""merge-samples and export against the head-process way, on a few hundred patches.

Inputs are derived from the real 29RKH L2A scene (``../shared/data``): the scene cut into
UTM patches of ``--patch-km`` km with a 5 % buffer. Sample tables: every pixel of each
patch at 100 m, with the chain's columns (indices, bands, the SCL clear/cloud label).
Prediction COGs: the scene's SCL clear/cloud classes at ``--resolution`` m on each
patch's buffered grid (uint8, nodata 255).

Each side runs in a fresh process, whose peak resident memory (ru_maxrss) is measured:

- merge: tilefleet's ``merge-samples`` task (streamed, row groups) against one process
  that reads every table, concatenates them and writes the two tables;
- export: tilefleet's ``export`` task (a VRT of the cropped patches, written by GDAL's
  COG driver block by block) against one ``rasterio.merge.merge`` call over every patch
  file into an array, then written as a COG.

The inputs are made for two patch counts (a quarter of the scene's, and all), so that the
peaks show which side grows with the number of patches. Outputs are checked equal.

    .venv/bin/python benchmarks/bench_ml_chain.py [--patch-km 5] [--resolution 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "ml-chain"
SCENE = (
    Path(os.environ.get("TILEFLEET_TEST_DATA", HERE.parent.parent / "shared" / "data"))
    / "s2_l2a_29RKH_20200219"
)
EPSG = 32629
LABELS = {5: 0, 8: 1, 9: 1, 10: 1}
BUFFER_SHARE = 0.05  # of the patch size, on each side


def scene_patches(patch_m: float, quarter: bool) -> list[tuple[int, int]]:
    """(col, row) of the lattice squares inside the scene (its north-west quarter)."""
    left, bottom, right, top = 199980.0, 2690220.0, 309780.0, 2800020.0
    if quarter:
        right, bottom = (left + right) / 2, (bottom + top) / 2
    cols = range(int(np.ceil(left / patch_m)), int(right // patch_m))
    rows = range(int(np.ceil(bottom / patch_m)), int(top // patch_m))
    return [(c, r) for c in cols for r in rows]


def _scene_arrays():
    import rasterio

    arrays = {}
    for name in ("B03", "B04", "B08", "B11", "SCL"):
        with rasterio.open(SCENE / f"{name}.tif") as src:
            arrays[name] = (src.read(1), src.transform)
    return arrays


def _pick(array, transform, xs, ys):
    """Nearest values of ``array`` at the points (x, y); 0 outside."""
    cols = np.floor((xs - transform.c) / transform.a).astype(int)
    rows = np.floor((ys - transform.f) / transform.e).astype(int)
    inside = (rows >= 0) & (rows < array.shape[0]) & (cols >= 0) & (cols < array.shape[1])
    out = np.zeros(xs.shape, dtype=array.dtype)
    out[inside] = array[rows[inside], cols[inside]]
    return out


def make_samples(folder: Path, patches, patch_m: float) -> int:
    """One sample table per patch: its pixels at 100 m with the chain's columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    arrays = _scene_arrays()
    side = int(patch_m / 100)
    rows_total = 0
    for col, row in patches:
        r, c = np.divmod(np.arange(side * side), side)
        xs = col * patch_m + (c + 0.5) * 100
        ys = (row + 1) * patch_m - (r + 0.5) * 100
        b = {k: _pick(*arrays[k], xs, ys).astype(np.float32) for k in arrays}
        with np.errstate(invalid="ignore", divide="ignore"):
            ndvi = (b["B08"] - b["B04"]) / (b["B08"] + b["B04"])
            ndwi = (b["B03"] - b["B08"]) / (b["B03"] + b["B08"])
            ndbi = (b["B11"] - b["B08"]) / (b["B11"] + b["B08"])
        label = np.full(len(xs), -1, dtype=np.int32)
        for source, value in LABELS.items():
            label[b["SCL"] == source] = value
        keep = label >= 0
        tile = f"{EPSG}_{col}_{row}"
        table = pa.table(
            {
                "tile": pa.array([tile] * int(keep.sum()), pa.string()),
                "row": r[keep].astype(np.int32),
                "col": c[keep].astype(np.int32),
                "x": xs[keep],
                "y": ys[keep],
                "NDVI": ndvi[keep],
                "NDWI": ndwi[keep],
                "NDBI": ndbi[keep],
                **{k: b[k][keep] for k in ("B03", "B04", "B08", "B11")},
                "label": label[keep],
            }
        )
        pq.write_table(table, folder / f"{tile}.parquet", compression="zstd")
        rows_total += table.num_rows
    return rows_total


def make_predictions(folder: Path, patches, patch_m: float, resolution: float) -> None:
    """One uint8 COG per patch: the SCL's clear/cloud classes on its buffered grid."""
    import rasterio
    from affine import Affine

    folder.mkdir(parents=True, exist_ok=True)
    scl, transform = _scene_arrays()["SCL"]
    lookup = np.full(256, 255, dtype=np.uint8)
    for source, value in LABELS.items():
        lookup[source] = value
    buffer = patch_m * BUFFER_SHARE
    side = int((patch_m + 2 * buffer) / resolution)
    for col, row in patches:
        x0, y1 = col * patch_m - buffer, (row + 1) * patch_m + buffer
        xs = x0 + (np.arange(side) + 0.5) * resolution
        ys = y1 - (np.arange(side) + 0.5) * resolution
        gx, gy = np.meshgrid(xs, ys)
        classes = lookup[_pick(scl, transform, gx, gy)]
        with rasterio.open(
            folder / f"{EPSG}_{col}_{row}.tif",
            "w",
            driver="COG",
            width=side,
            height=side,
            count=1,
            dtype="uint8",
            nodata=255,
            crs=f"EPSG:{EPSG}",
            transform=Affine(resolution, 0, x0, 0, -resolution, y1),
            compress="deflate",
        ) as out:
            out.write(classes, 1)


# --- the sides, each run in a fresh process by ``--side`` ---------------------------------


def merge_tilefleet(args) -> None:
    from tilefleet.recipes.ml.merge_samples import MergeSamplesRecipe

    recipe = MergeSamplesRecipe()
    params = recipe.Params.model_validate({"input": args.input, "dest": args.output})
    (task,) = recipe.plan(params)
    recipe.run(task)


def merge_head(args) -> None:
    """Every table read and concatenated in one process, then split and written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tilefleet.ops.sampling import patch_rng

    tables, held = [], []
    for path in sorted(Path(args.input).glob("*.parquet")):
        table = pq.read_table(path)
        tables.append(table)
        held.append(patch_rng(42, path.stem).random(table.num_rows) < 0.2)
    everything = pa.concat_tables(tables)
    mask = pa.array(np.concatenate(held))
    out = Path(args.output)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "validation").mkdir(parents=True, exist_ok=True)
    pq.write_table(everything.filter(pa.compute.invert(mask)), out / "train" / "all.parquet")
    pq.write_table(everything.filter(mask), out / "validation" / "all.parquet")


def export_tilefleet(args) -> None:
    from tilefleet.recipes.ml.export import ExportRecipe

    recipe = ExportRecipe()
    params = recipe.Params.model_validate(
        {
            "tiles": {
                "grid": "utm",
                "bbox": args.bbox,
                "size": args.patch_m,
                "buffer": args.patch_m * BUFFER_SHARE,
            },
            "input": args.input,
            "dest": args.output,
        }
    )
    tasks = recipe.plan(params)
    (task,) = [t for t in tasks if t.id == f"UTM_{EPSG}"]
    # The zone's extent: the patches made for the benchmark, not the bbox's rounding.
    task.params.update(cols=args.cols, rows=args.rows, patches=args.count)
    recipe.run(task)


def export_head(args) -> None:
    """One rasterio.merge call over every patch file, then a COG."""
    import rasterio
    from rasterio.merge import merge

    from tilefleet.store.cog import cog_options, write_cog

    size = args.patch_m
    bounds = (
        args.cols[0] * size,
        args.rows[0] * size,
        (args.cols[1] + 1) * size,
        (args.rows[1] + 1) * size,
    )
    paths = sorted(Path(args.input).glob("*.tif"))
    mosaic, transform = merge(paths, bounds=bounds, nodata=255)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    plain = out / "plain.tif"
    with rasterio.open(
        plain,
        "w",
        driver="GTiff",
        width=mosaic.shape[2],
        height=mosaic.shape[1],
        count=1,
        dtype="uint8",
        nodata=255,
        crs=f"EPSG:{EPSG}",
        transform=transform,
        tiled=True,
    ) as dst:
        dst.write(mosaic)
    write_cog(str(plain), out / f"UTM_{EPSG}.tif", cog_options("deflate"))
    plain.unlink()


SIDES = {
    "merge-tilefleet": merge_tilefleet,
    "merge-head": merge_head,
    "export-tilefleet": export_tilefleet,
    "export-head": export_head,
}


def measure(side: str, repeat: int = 1, **values) -> tuple[float, float]:
    """(best wall s, highest peak RSS MiB) of ``repeat`` runs of one side, each in a fresh
    process. The peak is the child's own VmHWM (ru_maxrss would carry over the parent's
    from before exec on Linux)."""
    command = [sys.executable, __file__, "--side", side, "--side-args", json.dumps(values)]
    walls, peaks = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{side} failed:\n{done.stderr}")
        peaks.append(float(done.stdout.strip().splitlines()[-1]) / 1024)
    return min(walls), max(peaks)


def peak_rss_kib() -> int:
    """This process's peak resident memory (its address space since exec), KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise SystemExit("no VmHWM in /proc/self/status (Linux only)")


def _line(name: str, ours: tuple[float, float], peer: tuple[float, float]) -> None:
    print(
        f"{name}: tilefleet {ours[0]:.2f} s, peer {peer[0]:.2f} s, ratio {ours[0] / peer[0]:.2f}; "
        f"peak memory tilefleet {ours[1]:.0f} MiB, peer {peer[1]:.0f} MiB, "
        f"ratio {ours[1] / peer[1]:.2f}"
    )


def _check_merge(ours: Path, peer: Path) -> None:
    import pyarrow.dataset as ds

    for table in ("train", "validation"):
        keys = [("tile", "ascending"), ("row", "ascending"), ("col", "ascending")]
        a = ds.dataset(str(ours / table)).to_table().sort_by(keys)
        b = ds.dataset(str(peer / table)).to_table().sort_by(keys)
        assert a.equals(b), f"merged {table} tables differ"


def _check_export(ours: Path, peer: Path) -> None:
    import rasterio

    with rasterio.open(ours / f"UTM_{EPSG}.tif") as a, rasterio.open(peer / f"UTM_{EPSG}.tif") as b:
        assert a.transform == b.transform, (a.transform, b.transform)
        assert np.array_equal(a.read(), b.read()), "zone maps differ"


def main() -> None:
    import shutil

    parser = argparse.ArgumentParser()
    parser.add_argument("--patch-km", type=float, default=5.0)
    parser.add_argument("--resolution", type=float, default=10.0, help="of the predictions, m")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--side", choices=SIDES)
    parser.add_argument("--side-args")
    args = parser.parse_args()
    if args.side:
        SIDES[args.side](argparse.Namespace(**json.loads(args.side_args)))
        print(peak_rss_kib())
        return
    patch_m = args.patch_km * 1000
    for quarter in (True, False):
        patches = scene_patches(patch_m, quarter)
        work = WORK / ("quarter" if quarter else "whole")
        shutil.rmtree(work, ignore_errors=True)
        rows = make_samples(work / "samples", patches, patch_m)
        make_predictions(work / "predictions", patches, patch_m, args.resolution)
        cols = [min(c for c, _ in patches), max(c for c, _ in patches)]
        rows_range = [min(r for _, r in patches), max(r for _, r in patches)]
        print(f"{len(patches)} patches of {args.patch_km:g} km, {rows:,} sample rows:")
        common = {"input": str(work / "samples"), "repeat": args.repeat}
        ours = measure("merge-tilefleet", **common, output=str(work / "merge-tf"))
        peer = measure("merge-head", **common, output=str(work / "merge-head"))
        _check_merge(work / "merge-tf", work / "merge-head")
        _line(f"  merge-samples ({len(patches)} patches)", ours, peer)
        common = {
            "input": str(work / "predictions"),
            "patch_m": patch_m,
            "cols": cols,
            "rows": rows_range,
            "count": len(patches),
            "bbox": [-11.9, 24.4, -11.0, 25.2],
            "repeat": args.repeat,
        }
        ours = measure("export-tilefleet", **common, output=str(work / "export-tf"))
        peer = measure("export-head", **common, output=str(work / "export-head"))
        _check_export(work / "export-tf", work / "export-head")
        _line(f"  export ({len(patches)} patches)", ours, peer)


if __name__ == "__main__":
    main()
