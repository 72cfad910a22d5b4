"""tilefleet ``mosaic`` against odc-stac + Dask, on one month of synthetic Sentinel-2 scenes.

Inputs (generated once per set of options, deterministic seed): ``--dates`` scenes in one
calendar month, each with 4 bands (B02, B03, B04, B08: uint16, ``--size``² pixels at 10 m,
DEFLATE COGs, nodata 0) and a Scene Classification Layer (SCL, uint8 at 20 m, as in L2A)
with cloud blobs (classes 8, 9, 10, and their shadows 3) covering 10-40 % of each scene, clear
classes 4/5/6 elsewhere and, on a quarter of the scenes, a no-data wedge (class 0, bands 0)
like the edge of a swath. All scenes share one EPSG:32631 10 m pixel lattice, and the
scene's top-left corner sits on the tile lattice. The scenes are listed in a static STAC
ItemCollection (eo, proj, raster extensions).

Sides, each in its own subprocess, both on 2 workers, both masking SCL classes
0,1,3,8,9,10 and both writing a 4-band uint16 DEFLATE COG of the result:

- tilefleet: ``build_job({"recipe": "mosaic", "catalog": ..., "executor": "local",
  "workers": 2, ...})`` + ``run_job`` on the scenes' own grid, cut into tiles of ``--tile``
  pixels (default: half the scene, so 4 tile-month tasks for the 2 workers);
- dask: what users write today: ``odc.stac.load(items, bands, geobox=<the same grid>,
  chunks={"x": 1024, "y": 1024}, groupby="solar_day")``,
  ``.where(~scl.isin(classes))``, ``.resample(time="1MS").median()``, rounded half to
  even into uint16 (no data: 0) and written with ``odc.geo``'s ``write_cog``. Computed on
  the Dask threaded scheduler with 2 threads (``dask.config.set(scheduler="threads",
  num_workers=2)``): the default of ``.compute()`` and the usual notebook set-up.
  ``--dask-cluster`` uses a ``distributed.LocalCluster`` of 2 single-threaded worker
  processes instead (started inside the timed section, as tilefleet's workers are).

Time: wall seconds measured inside each subprocess from just before the side's work (job
built / items loaded from the JSON) to the output COG written, so interpreter start and
imports are left out on both sides; the subprocess's whole wall time is printed as well.
Memory: the peak over the run of the summed RSS of the subprocess and all its descendants
(psutil, polled every 20 ms; pages shared between processes count once per process), and
``ru_maxrss`` of the subprocess tree from ``os.wait4`` (the largest single process).

The outputs are then checked pixel for pixel: tilefleet's tile COGs are pasted onto the
scene grid and compared with the Dask COG (values and no-data).

    .venv/bin/python benchmarks/bench_mosaic.py [--dates 24] [--size 2048] [--tile N]
        [--dask-cluster] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from common import (  # benchmarks/ is the script's folder, first on sys.path
    run_tilefleet_quietly,
    smooth_field,
)

GENERATOR_VERSION = 2  # bump when the synthetic scenes change, to regenerate cached inputs
SEED = 20240117
EPSG = 32631
PIXEL_M = 10
BANDS = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}
SCL_MASK = (0, 1, 3, 8, 9, 10)  # tilefleet's default, given to both sides explicitly
YEAR, MONTH = 2024, 1
# Scene origin: on the tile lattice (multiples of 20480 m) near zone 31's central meridian.
ORIGIN_X, ORIGIN_Y = 24 * 20480, 245 * 20480  # 491520 E, 5017600 N: ~45.3 N, 2.9 E
POLL_S = 0.02
GOAL_SPEED = 2.0  # tilefleet at least this many times faster
GOAL_MEMORY = 0.5  # tilefleet peak memory at most this fraction of Dask's


# --------------------------------------------------------------------------- inputs


def landscape(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(surface, parcels): the fixed ground every date sees, in about [-1, 1]."""
    terrain = smooth_field(rng, size, 12) + 0.35 * smooth_field(rng, size, 96)
    parcel = max(8, size // 64)
    count = -(-size // parcel)
    labels = rng.standard_normal((count, count)).astype(np.float32)
    parcels = np.repeat(np.repeat(labels, parcel, axis=0), parcel, axis=1)[:size, :size]
    return terrain, parcels


def scene_classes(rng: np.random.Generator, half: int, terrain20: np.ndarray) -> np.ndarray:
    """SCL at 20 m: clear 4/5/6 from the ground, cloud blobs 8/9, cirrus 10, shadows 3,
    and on some scenes a no-data wedge 0 (the edge of a swath)."""
    cover = rng.uniform(0.10, 0.40)  # cloud + shadow + cirrus share of the scene
    scl = np.full((half, half), 4, dtype=np.uint8)  # vegetation
    scl[terrain20 > 0.6] = 5  # bare soil
    scl[terrain20 < -0.9] = 6  # water
    clouds = smooth_field(rng, half, 10) + 0.3 * smooth_field(rng, half, 40)
    cloud = clouds > np.quantile(clouds, 1 - 0.75 * cover)
    core = clouds > np.quantile(clouds, 1 - 0.35 * cover)
    shift = (int(rng.integers(8, 40)), int(rng.integers(8, 40)))
    shadow = np.roll(cloud, shift, axis=(0, 1)) & ~cloud
    cirrus_field = smooth_field(rng, half, 6)
    cirrus = cirrus_field > np.quantile(cirrus_field, 1 - 0.1 * cover)
    scl[shadow] = 3
    scl[cirrus] = 10
    scl[cloud] = 8
    scl[core] = 9
    if rng.random() < 0.25:  # no-data wedge along one side
        yy, xx = np.mgrid[0:half, 0:half]
        scl[xx + 0.5 * yy < rng.uniform(0.1, 0.4) * half] = 0
    return scl


def scene_bands(
    rng: np.random.Generator, ground: tuple[np.ndarray, np.ndarray], scl10: np.ndarray, day: int
) -> np.ndarray:
    """(4, size, size) uint16 reflectance × 10000: the ground, seasonal drift, sensor noise;
    bright where clouds are, dark in shadows, 0 where the scene has no data."""
    terrain, parcels = ground
    size = terrain.shape[0]
    out = np.empty((len(BANDS), size, size), dtype=np.uint16)
    cloud = np.isin(scl10, (8, 9, 10))
    shadow = scl10 == 3
    for index in range(len(BANDS)):
        base = 700 + 500 * index + 8 * day
        values = (
            base
            + (300 + 120 * index) * terrain
            + (150 - 30 * index) * parcels
            + rng.normal(0.0, 40.0, (size, size)).astype(np.float32)
        )
        values[cloud] += 4000 + 200 * index
        values[shadow] *= 0.4
        band = np.clip(np.rint(values), 1, 15000).astype(np.uint16)
        band[scl10 == 0] = 0
        out[index] = band
    return out


def _write_cog(path: Path, data: np.ndarray, pixel: int, nodata: int) -> None:
    import rasterio
    import rasterio.shutil
    from rasterio.transform import from_origin

    profile = {
        "driver": "MEM",
        "width": data.shape[-1],
        "height": data.shape[-2],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": f"EPSG:{EPSG}",
        "transform": from_origin(ORIGIN_X, ORIGIN_Y, pixel, pixel),
        "nodata": nodata,
    }
    with rasterio.open("/vsimem/scene.tif", "w", **profile) as mem:
        mem.write(data, 1)
        rasterio.shutil.copy(
            mem,
            str(path),
            driver="COG",
            COMPRESS="DEFLATE",
            PREDICTOR="2",
            BLOCKSIZE="512",
            NUM_THREADS="ALL_CPUS",
            OVERVIEW_RESAMPLING="NEAREST",
        )


def scene_days(dates: int) -> list[int]:
    """Distinct days of the month, spread over its first 28."""
    return [1 + (index * 28) // dates for index in range(dates)]


def scene_lonlat(size: int, inset_m: float = 0.0):
    """The scene square (shrunk by ``inset_m``) as a lon/lat polygon (densified edges)."""
    import shapely
    from pyproj import Transformer

    extent = size * PIXEL_M
    x0, y0 = ORIGIN_X + inset_m, ORIGIN_Y - extent + inset_m
    x1, y1 = ORIGIN_X + extent - inset_m, ORIGIN_Y - inset_m
    steps = np.linspace(0.0, 1.0, 17)
    xs = np.concatenate(
        [x0 + (x1 - x0) * steps, np.full(17, x1), x1 - (x1 - x0) * steps, np.full(17, x0)]
    )
    ys = np.concatenate(
        [np.full(17, y1), y1 - (y1 - y0) * steps, np.full(17, y0), y0 + (y1 - y0) * steps]
    )
    lon, lat = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(xs, ys)
    return shapely.Polygon(np.column_stack([lon, lat]))


def stac_item(scene_id: str, when: datetime, files: dict[str, Path], size: int, cloud: float):
    import shapely

    footprint = scene_lonlat(size)
    half = size // 2
    assets = {}
    for key, path in files.items():
        scl = key == "SCL"
        pixel = PIXEL_M * (2 if scl else 1)
        shape = half if scl else size
        asset = {
            "href": str(path),
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "proj:shape": [shape, shape],
            "proj:transform": [pixel, 0, ORIGIN_X, 0, -pixel, ORIGIN_Y],
            "raster:bands": [
                {
                    "nodata": 0,
                    "data_type": "uint8" if scl else "uint16",
                    "spatial_resolution": pixel,
                }
            ],
        }
        if scl:
            asset["title"] = "Scene classification map (SCL)"
        else:
            asset["title"] = f"{BANDS[key].capitalize()} ({key})"
            asset["eo:bands"] = [{"name": key, "common_name": BANDS[key]}]
            asset["raster:bands"][0]["scale"] = 0.0001
        assets[key] = asset
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": scene_id,
        "collection": "synthetic-sentinel-2-l2a",
        "geometry": shapely.geometry.mapping(footprint),
        "bbox": list(footprint.bounds),
        "properties": {
            "datetime": when.isoformat().replace("+00:00", "Z"),
            "platform": "sentinel-2a",
            "constellation": "sentinel-2",
            "eo:cloud_cover": round(cloud, 2),
            "proj:epsg": EPSG,
        },
        "links": [],
        "assets": assets,
    }


def ensure_inputs(work: Path, dates: int, size: int) -> tuple[Path, list[Path]]:
    """The scenes' COGs and their ItemCollection, reused when generated with the same options."""
    inputs = work / "inputs"
    stamp = inputs / "params.json"
    catalog = inputs / "items.json"
    params = {"dates": dates, "size": size, "seed": SEED, "version": GENERATOR_VERSION}
    if stamp.exists() and json.loads(stamp.read_text()) == params and catalog.exists():
        files = sorted((inputs / "scenes").glob("*.tif"))
        if len(files) == dates * (len(BANDS) + 1):
            print(f"inputs: reusing {len(files)} COGs in {inputs}")
            return catalog, files
    shutil.rmtree(inputs, ignore_errors=True)
    (inputs / "scenes").mkdir(parents=True)
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    ground = landscape(rng, size)
    terrain20 = ground[0][::2, ::2]
    items, paths = [], []
    for day in scene_days(dates):
        when = datetime(YEAR, MONTH, day, 10, 36, 29, tzinfo=UTC)
        scene_id = f"S2A_31TDK_{when:%Y%m%d}_0_L2A"
        scl = scene_classes(rng, size // 2, terrain20)
        scl10 = np.repeat(np.repeat(scl, 2, axis=0), 2, axis=1)
        bands = scene_bands(rng, ground, scl10, day)
        files = {}
        for index, key in enumerate(BANDS):
            files[key] = inputs / "scenes" / f"{scene_id}_{key}.tif"
            _write_cog(files[key], bands[index], PIXEL_M, 0)
        files["SCL"] = inputs / "scenes" / f"{scene_id}_SCL.tif"
        _write_cog(files["SCL"], scl, 2 * PIXEL_M, 0)
        cloud = 100.0 * np.isin(scl, (3, 8, 9, 10)).mean()
        items.append(stac_item(scene_id, when, files, size, cloud))
        paths.extend(files.values())
    catalog.write_text(json.dumps({"type": "FeatureCollection", "features": items}, indent=1))
    stamp.write_text(json.dumps(params))
    megabytes = sum(path.stat().st_size for path in paths) / 1e6
    print(
        f"inputs: generated {len(paths)} COGs ({megabytes:.0f} MB) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return catalog, paths


def warm_page_cache(paths: list[Path]) -> None:
    """Read every input once so that neither side pays for the first read from disk."""
    for path in paths:
        with path.open("rb") as handle:
            while handle.read(16 << 20):
                pass


# --------------------------------------------------------------------------- sides


def grid_bounds(size: int) -> tuple[float, float, float, float]:
    extent = size * PIXEL_M
    return ORIGIN_X, ORIGIN_Y - extent, ORIGIN_X + extent, ORIGIN_Y


def side_tilefleet(args: argparse.Namespace, out: Path) -> dict:
    import shapely

    inputs = args.work / "inputs"
    # The area is the scene's own square (1 m inside it, so no neighbouring tile of the
    # lattice is touched): tilefleet cuts its tiles to the area, and their pixel grids,
    # snapped outwards, then cover the same grid the Dask side loads.
    aoi = out / "area.geojson"
    aoi.parent.mkdir(parents=True, exist_ok=True)
    area = shapely.geometry.mapping(scene_lonlat(args.size, inset_m=1.0))
    aoi.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": area}))
    last_day = scene_days(args.dates)[-1]
    started = time.perf_counter()
    run_tilefleet_quietly(
        {
            "recipe": "mosaic",
            "catalog": str(inputs / "items.json"),
            "aoi": str(aoi),
            "start_date": f"{YEAR}-{MONTH:02d}-01",
            "end_date": f"{YEAR}-{MONTH:02d}-{last_day:02d}",
            "bands": ",".join(BANDS),
            "crs": f"EPSG:{EPSG}",
            "resolution": PIXEL_M,
            "tile_size": args.tile * PIXEL_M,
            "scl_mask": ",".join(map(str, SCL_MASK)),
            "dest": str(out / "tilefleet"),
            "run_dir": str(out / "run"),
            "executor": "local",
            "workers": 2,
            "retries": 0,
        },
        (args.size // args.tile) ** 2,
    )
    wall = time.perf_counter() - started
    return {"wall": wall}


def side_dask(args: argparse.Namespace, out: Path) -> dict:
    import dask
    import odc.stac
    import pystac
    from odc.geo.geobox import GeoBox

    inputs = args.work / "inputs"
    started = time.perf_counter()
    cluster = client = None
    if args.dask_cluster:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    items = pystac.ItemCollection.from_file(str(inputs / "items.json"))
    geobox = GeoBox.from_bbox(grid_bounds(args.size), crs=f"EPSG:{EPSG}", resolution=PIXEL_M)
    ds = odc.stac.load(
        items,
        bands=[*BANDS, "SCL"],
        geobox=geobox,
        chunks={"x": 1024, "y": 1024},
        groupby="solar_day",
        resampling="nearest",
    )
    clear = ~ds.SCL.isin(list(SCL_MASK))
    median = ds[list(BANDS)].where(clear).resample(time="1MS").median()
    mosaic = median.isel(time=0).to_array("band").fillna(0).round().astype("uint16")
    # With a Client, compute() goes to its cluster; otherwise to 2 threads.
    settings = {} if client is not None else {"scheduler": "threads", "num_workers": 2}
    with dask.config.set(settings):
        loaded = time.perf_counter()
        mosaic = mosaic.compute()
        computed = time.perf_counter()
    mosaic.odc.write_cog(
        str(out / "dask.tif"),
        overwrite=True,
        nodata=0,
        compress="DEFLATE",
        blocksize=512,
        overview_resampling="nearest",
    )
    wall = time.perf_counter() - started
    if client is not None:
        client.close()
        cluster.close()
    return {"wall": wall, "compute": computed - loaded, "graph": loaded - started}


def run_side(name: str, args: argparse.Namespace) -> dict:
    """Run one side in a child process; return its timings and the peak memory of its tree."""
    import psutil

    out = args.work / "out"
    report = out / f"{name}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--side",
        name,
        "--work",
        str(args.work),
        "--dates",
        str(args.dates),
        "--size",
        str(args.size),
        "--tile",
        str(args.tile),
    ] + (["--dask-cluster"] if args.dask_cluster else [])
    started = time.perf_counter()
    child = subprocess.Popen(command)
    root = psutil.Process(child.pid)
    peak = 0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        total = 0
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += proc.memory_info().rss
        peak = max(peak, total)
        time.sleep(POLL_S)
    child.returncode = os.waitstatus_to_exitcode(status)
    process_wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"side {name} failed with exit status {child.returncode}")
    result = json.loads(report.read_text())
    result.update(
        process_wall=process_wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss=peak,
        maxrss=usage.ru_maxrss * 1024,
    )
    return result


def child_main(args: argparse.Namespace) -> None:
    import warnings

    warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)  # pixels never clear
    # odc-loader warps SCL (20 m) through an in-memory source rasterio calls ungeoreferenced.
    warnings.filterwarnings("ignore", "Dataset has no geotransform")
    logging.getLogger("tilefleet").setLevel(logging.WARNING)
    os.environ["TILEFLEET_HISTORY"] = str(args.work / "history.sqlite")  # not the user's
    out = args.work / "out"
    side = side_tilefleet if args.side == "tilefleet" else side_dask
    result = side(args, out)
    (out / f"{args.side}.json").write_text(json.dumps(result))


# --------------------------------------------------------------------------- checks


def tilefleet_mosaic(dest: Path, size: int) -> np.ndarray:
    """tilefleet's tile COGs (one per band) pasted onto the scene grid."""
    import rasterio

    folder = dest / f"monthly-mosaic-{YEAR}-{MONTH:02d}"
    items = sorted(folder.glob("*.json"))
    if not items:
        raise AssertionError(f"no tilefleet output in {dest}")
    canvas = np.zeros((len(BANDS), size, size), dtype=np.uint16)
    filled = np.zeros((size, size), dtype=np.int32)
    for item in items:
        tile = item.stem
        for index, band in enumerate(BANDS):
            tif = folder / f"{tile}-{band}.tif"
            with rasterio.open(tif) as src:
                if src.nodata != 0 or src.dtypes[0] != "uint16" or src.count != 1:
                    raise AssertionError(
                        f"{tif.name}: {src.count}×{src.dtypes[0]} nodata {src.nodata}"
                    )
                col = round((src.transform.c - ORIGIN_X) / PIXEL_M)
                row = round((ORIGIN_Y - src.transform.f) / PIXEL_M)
                if col < 0 or row < 0 or col + src.width > size or row + src.height > size:
                    raise AssertionError(f"{tif.name}: outside the scene grid")
                canvas[index, row : row + src.height, col : col + src.width] = src.read(1)
        filled[row : row + src.height, col : col + src.width] += 1
    if not (filled == 1).all():
        raise AssertionError("tilefleet's tiles do not cover the scene grid exactly once")
    return canvas


def compare(dest: Path, dask_cog: Path, size: int) -> str:
    import rasterio

    ours = tilefleet_mosaic(dest, size)
    with rasterio.open(dask_cog) as src:
        theirs = src.read()
        if src.nodata != 0 or src.shape != (size, size):
            raise AssertionError(f"dask COG {src.shape} nodata {src.nodata}")
    differ = ours != theirs
    nodata = int((theirs[0] == 0).sum())
    if differ.any():
        raise AssertionError(
            f"results differ at {int(differ.sum())} of {differ.size} values "
            f"(largest difference {int(np.abs(ours.astype(int) - theirs).max())})"
        )
    return (
        f"identical: {len(BANDS)} bands × {size}² values equal; {nodata} pixel(s) without "
        f"a clear observation (no data) in both"
    )


# --------------------------------------------------------------------------- main


def _load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def _mib(n: float) -> str:
    return f"{n / 2**20:7.0f} MiB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dates", type=int, default=24, help="scenes in the month (<= 28)")
    parser.add_argument("--size", type=int, default=2048, help="scene side in 10 m pixels")
    parser.add_argument("--tile", type=int, help="tilefleet tile side in pixels [size/2]")
    parser.add_argument(
        "--dask-cluster",
        action="store_true",
        help="Dask on a LocalCluster of 2 processes, not 2 threads",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per side, interleaved")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(__file__).resolve().parent / "_work" / "mosaic",
        help="work folder (default benchmarks/_work/mosaic)",
    )
    parser.add_argument("--side", choices=("tilefleet", "dask"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.tile = args.tile or args.size // 2
    if not 1 <= args.dates <= 28 or args.size < 64 or args.size % 2 or args.repeat < 1:
        parser.error("need 1 <= --dates <= 28, an even --size >= 64 and --repeat >= 1")
    if args.size % args.tile or args.tile < 16:
        parser.error("--tile must divide --size (and be >= 16)")
    args.work = args.work.resolve()
    if args.side:
        child_main(args)
        return

    import odc.stac
    import rasterio

    import tilefleet

    args.work.mkdir(parents=True, exist_ok=True)
    catalog, paths = ensure_inputs(args.work, args.dates, args.size)
    print(
        f"machine: {os.cpu_count()} CPUs, load {_load()}, {platform.python_implementation()} "
        f"{platform.python_version()}, GDAL {rasterio.__gdal_version__}, tilefleet "
        f"{getattr(tilefleet, '__version__', '?')}, odc-stac {odc.stac.__version__}"
    )
    megabytes = sum(path.stat().st_size for path in paths) / 1e6
    scheduler = "LocalCluster 2 processes × 1 thread" if args.dask_cluster else "threads, 2"
    print(
        f"inputs: {args.dates} dates × ({len(BANDS)} bands uint16 {args.size}² at 10 m + SCL "
        f"{args.size // 2}² at 20 m), DEFLATE COGs, {megabytes:.0f} MB; one month; "
        f"tilefleet tiles {args.tile}² ({(args.size // args.tile) ** 2} tasks), 2 workers; "
        f"Dask scheduler: {scheduler}"
    )
    if os.getloadavg()[0] > 0.5:
        print(
            "warning: the machine is busy before the start; wall times suffer from it, "
            "CPU seconds much less"
        )
    out = args.work / "out"
    warm_page_cache(paths)
    runs: dict[str, list[dict]] = {"dask": [], "tilefleet": []}
    for rep in range(args.repeat):
        for name in runs:  # interleaved, so drift in the machine's load hits both sides
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            r = run_side(name, args)
            runs[name].append(r)
            extra = ""
            if "compute" in r:
                extra = f" (graph {r['graph']:.1f} s, compute {r['compute']:.1f} s, then COG)"
            print(
                f"  run {rep + 1}: {name:<9} {r['wall']:6.2f} s wall{extra}, {r['cpu']:6.1f} s "
                f"CPU; peak tree RSS {_mib(r['peak_rss'])}, largest process "
                f"{_mib(r['maxrss'])}; load {_load()}",
                flush=True,
            )
            if name == "dask":
                shutil.move(out / "dask.tif", args.work / "dask.tif")
        print(f"  check: {compare(out / 'tilefleet', args.work / 'dask.tif', args.size)}")
    best = {}
    for name, results in runs.items():
        best[name] = {
            "wall": min(r["wall"] for r in results),
            "cpu": min(r["cpu"] for r in results),
            "peak_rss": max(r["peak_rss"] for r in results),
            "maxrss": max(r["maxrss"] for r in results),
        }
        b = best[name]
        print(
            f"{name:<9}: best wall {b['wall']:6.2f} s, best CPU {b['cpu']:6.1f} s; highest peak "
            f"tree RSS {_mib(b['peak_rss'])}, largest process {_mib(b['maxrss'])}"
        )
    ours, theirs = best["tilefleet"], best["dask"]
    speed = theirs["wall"] / ours["wall"]
    memory = ours["peak_rss"] / theirs["peak_rss"]
    print(
        f"time: tilefleet/dask {ours['wall'] / theirs['wall']:.2f} (speed-up {speed:.2f}×, "
        f"goal >= {GOAL_SPEED:g}×: {'met' if speed >= GOAL_SPEED else 'NOT met'}); "
        f"CPU seconds tilefleet/dask {ours['cpu'] / theirs['cpu']:.2f}"
    )
    print(
        f"peak memory: tilefleet/dask {memory:.2f} (goal <= {GOAL_MEMORY:g}: "
        f"{'met' if memory <= GOAL_MEMORY else 'NOT met'}); largest single process "
        f"tilefleet/dask {ours['maxrss'] / theirs['maxrss']:.2f}"
    )
    if args.keep:
        print(f"work folder kept: {args.work}")
    else:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
