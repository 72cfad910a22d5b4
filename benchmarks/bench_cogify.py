"""tilefleet ``cogify`` against the tools it replaces, on the same GeoTIFFs.

Sides, all writing the same COG settings (``tilefleet.store.cog.cog_options("deflate")``:
DEFLATE, 512-pixel blocks, overviews AUTO with nearest resampling, one thread per file):

- GDAL's COG driver, one file after another (what the GeoTIFF → COG crank runs);
- rio-cogeo's ``cog_translate``, one file after another;
- tilefleet ``cogify`` on the local executor with 1 worker, then with 2 workers;
- for reference, the COG driver on 2 spawned processes: the speed-up this machine allows.

tilefleet does more per file than the peers: it also writes a JPEG preview and a STAC item,
validates the COG, and keeps its run record (ledger, reports). That is part of its job and
part of its time. Each side runs ``--repeat`` times, the sides one after another in each
repetition. A goal is judged on the *paired* ratio: tilefleet's time over its peer's in the
same repetition (run back to back, so that the machine's drift cancels), the median over
the repetitions (so that the one a burst of other load hit does not decide). The ratio of
the best (min) wall times and that of the CPU seconds (this process and its children) are
printed beside it; on this 2-core machine either swings by ±10 % between runs a few
minutes apart, which is why neither decides. Each repetition line also shows the CPU time
the hypervisor gave to other guests meanwhile ("steal", from ``/proc/stat``), and each
result line the steal of its pairs: a pair with steal was timed on a machine that was not
wholly ours, and the result says how many were.

Two sets of inputs: synthetic scenes (striped, uncompressed, no overviews: what the crank
is fed), and the real rasters of the shared test data (the Copernicus DEM tiles, the
Landsat GeoTIFFs, the Sentinel-2 bands; most of them COGs with overviews already, which
GDAL copies and tilefleet rebuilds from the full resolution with the job's resampling).

The real set is also timed as cogify's tasks run one after another in this process
(``tasks-only``): tilefleet's work per file, without the engine's fixed costs (worker
start-up, ledger, reports), which a batch of a few seconds cannot spread.
It runs with this process's malloc (glibc's default), where a worker keeps the memory a
task freed for the next (``worker_env.MALLOC_SETTINGS``): the same tasks spend more system
time here, faulting their arrays in again, than in a worker.

    .venv/bin/python benchmarks/bench_cogify.py [--files 4] [--size 2048] [--repeat 2]
        [--data ../shared/data] [--real-copies 4] [--real-repeat 3] [--full]

The default run takes about two minutes on 2 idle cores; ``--full`` is the set the goals
were first measured on (8 synthetic 3072² files, 3 repetitions of every side; 7 of the
real set, whose repetitions take seconds each).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
import rio_cogeo
from common import (  # benchmarks/ is the script's folder, first on sys.path
    run_tilefleet_quietly,
    smooth_field,
)
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

from tilefleet.store.cog import cog_options

GENERATOR_VERSION = 1  # bump when the synthetic scenes change, to regenerate cached inputs
BANDS = 3
DTYPE = "uint16"
SEED = 20240611
CHECK_FILES = 2  # files whose pixels are compared across sides
PIXEL_M = 10.0
GOAL_VS_COG = 1.15  # tilefleet on 1 worker at most this many times GDAL's COG driver alone
GOAL_VS_CRANK = 0.85  # ... and at most this many times the crank's whole job (COG + JPEG)
GOAL_SPEEDUP = 1.8  # 2 workers at least this many times faster than 1
# The real rasters of the shared test data (relative to --data), by their key below the
# benchmark's input root.
REAL_RASTERS = {
    "dem/glo30.tif": "copernicus_dem/Copernicus_DSM_COG_10_N00_00_E006_00_DEM.tif",
    "dem/glo90_polar.tif": "copernicus_dem/Copernicus_DSM_COG_30_S90_00_W164_00_DEM.tif",
    "landsat/L7_ETMs.tif": "non_cog_multiband/L7_ETMs.tif",
    "landsat/RGB.byte.tif": "non_cog_multiband/RGB.byte.tif",
    **{
        f"s2/{b}.tif": f"s2_l2a_29RKH_20200219/{b}.tif" for b in ("B02", "B03", "B04", "B08", "B11")
    },
}


# --------------------------------------------------------------------------- inputs


def synthetic_scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """A (bands, size, size) uint16 scene that looks like surface reflectance × 10000.

    Large smooth landforms, parcels (piecewise-constant blocks, like fields), a band-wise
    response to both and sensor noise: deflate has real work to do, as on real imagery.
    """
    terrain = smooth_field(rng, size, 12) + 0.35 * smooth_field(rng, size, 96)
    parcel = max(8, size // 48)
    parcels_n = -(-size // parcel)
    labels = rng.standard_normal((parcels_n, parcels_n))
    parcels = np.repeat(np.repeat(labels, parcel, axis=0), parcel, axis=1)[:size, :size]
    scene = np.empty((BANDS, size, size), dtype=np.uint16)
    for band in range(BANDS):
        base = 900 + 700 * band
        values = (
            base
            + (300 + 120 * band) * terrain
            + (150 - 40 * band) * parcels
            + rng.normal(0.0, 25.0 + 5 * band, (size, size))
        )
        scene[band] = np.clip(np.rint(values), 1, 10000).astype(np.uint16)
    return scene


def ensure_inputs(work: Path, files: int, size: int) -> tuple[Path, Path, list[Path]]:
    """Striped, uncompressed GeoTIFFs and their headerless manifest, reused when unchanged."""
    inputs = work / "inputs"
    stamp = inputs / "params.json"
    params = {
        "files": files,
        "size": size,
        "bands": BANDS,
        "dtype": DTYPE,
        "seed": SEED,
        "version": GENERATOR_VERSION,
    }
    names = [f"scene_{index:03d}.tif" for index in range(files)]
    paths = [inputs / "scenes" / name for name in names]
    manifest = inputs / "manifest.csv"
    if (
        stamp.exists()
        and json.loads(stamp.read_text()) == params
        and manifest.exists()
        and all(path.exists() for path in paths)
    ):
        print(f"inputs: reusing {files} files in {inputs}")
        return manifest, inputs, paths
    shutil.rmtree(inputs, ignore_errors=True)
    (inputs / "scenes").mkdir(parents=True)
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    crs = CRS.from_epsg(32633)
    for index, path in enumerate(paths):
        transform = from_origin(400000 + index * size * PIXEL_M, 5600000, PIXEL_M, PIXEL_M)
        profile = {
            "driver": "GTiff",
            "width": size,
            "height": size,
            "count": BANDS,
            "dtype": DTYPE,
            "crs": crs,
            "transform": transform,
            "tiled": False,
            "compress": "none",
            "interleave": "pixel",
        }
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(synthetic_scene(rng, size))
    manifest.write_text("".join(f"scenes/{name},{BANDS}\n" for name in names))
    stamp.write_text(json.dumps(params))
    print(f"inputs: generated {files} files in {time.perf_counter() - started:.1f} s")
    return manifest, inputs, paths


def real_inputs(work: Path, data: Path, copies: int) -> tuple[Path, Path, list[Path]]:
    """(manifest, input root, paths) of links to (or copies of) the real rasters, each
    ``copies`` times under its own name (``0-glo30.tif``, ``1-glo30.tif``, …): a batch,
    as a manifest of the crank is, over which tilefleet's start-up is spread."""
    root = work / "real"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    paths = []
    for copy in range(copies):
        for key, source in REAL_RASTERS.items():
            target = root / f"{copy}-{Path(key).name}"
            try:
                os.link(data / source, target)
            except OSError:
                shutil.copyfile(data / source, target)
            paths.append(target)
    manifest = work / "real-manifest.csv"
    manifest.write_text("".join(f"{path.name},\n" for path in paths))
    return manifest, root, paths


def warm_page_cache(paths: list[Path]) -> None:
    """Read every input once so that no side pays for the first read from disk."""
    for path in paths:
        with path.open("rb") as handle:
            while handle.read(16 << 20):
                pass


# --------------------------------------------------------------------------- sides


def run_gdal_cog_driver(paths: list[Path], dest: Path, options: dict[str, str]) -> None:
    for path in paths:
        rasterio.shutil.copy(str(path), str(dest / path.name), driver="COG", **options)


def run_gdal_cog_and_jpeg(paths: list[Path], dest: Path, options: dict[str, str]) -> None:
    """The crank's whole job per file: the COG driver, then a full-size JPEG of bands 1-3
    scaled to 8 bits over each band's min..max (``gdal_translate -scale -ot Byte -of JPEG``)."""
    for path in paths:
        cog = dest / path.name
        rasterio.shutil.copy(str(path), str(cog), driver="COG", **options)
        with rasterio.open(cog) as src:
            data = src.read(list(range(1, min(src.count, 3) + 1))).astype(np.float32)
        low = data.min(axis=(1, 2), keepdims=True)
        high = data.max(axis=(1, 2), keepdims=True)
        scaled = np.rint((data - low) * (255.0 / np.maximum(high - low, 1))).astype(np.uint8)
        with rasterio.open(
            cog.with_suffix(".jpg"),
            "w",
            driver="JPEG",
            width=scaled.shape[2],
            height=scaled.shape[1],
            count=scaled.shape[0],
            dtype="uint8",
            QUALITY="75",
        ) as jpg:
            jpg.write(scaled)


def _gdal_cog_one(job: tuple[str, str, dict[str, str]]) -> None:
    src, dst, options = job
    rasterio.shutil.copy(src, dst, driver="COG", **options)


def run_gdal_two_processes(paths: list[Path], dest: Path, options: dict[str, str]) -> None:
    """The COG driver on two spawned processes: what this machine allows for 2 workers."""
    jobs = [(str(path), str(dest / path.name), options) for path in paths]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_gdal_cog_one, jobs))


def rio_cogeo_profile(options: dict[str, str]) -> dict:
    """rio-cogeo's ``deflate`` profile with the block size, BigTIFF choice and predictor of
    ``options`` (horizontal differencing, what ``PREDICTOR=YES`` picks for the integer
    scenes; rio-cogeo's own profile has none, and makes bigger files in less time)."""
    profile = dict(cog_profiles.get("deflate"))
    blocksize = int(options["BLOCKSIZE"])
    profile.update(blockxsize=blocksize, blockysize=blocksize, BIGTIFF=options["BIGTIFF"])
    if options.get("PREDICTOR") == "YES":
        profile["predictor"] = 2
    return profile


def run_rio_cogeo(paths: list[Path], dest: Path, profile: dict, resampling: str) -> None:
    for path in paths:
        cog_translate(
            str(path),
            str(dest / path.name),
            profile,
            overview_resampling=resampling,
            quiet=True,
            config={"GDAL_NUM_THREADS": "1"},
        )


def run_tilefleet(
    manifest: Path, input_root: Path, dest: Path, run_dir: Path, workers: int, expected: int
) -> None:
    run_tilefleet_quietly(
        {
            "recipe": "cogify",
            "manifest": str(manifest),
            "input_root": str(input_root),
            "dest": str(dest),
            "run_dir": str(run_dir),
            "workers": workers,
            "retries": 0,
            "profile": "deflate",
            "blocksize": 512,
            "overview_resampling": "nearest",
        },
        expected,
    )


def run_tilefleet_tasks(manifest: Path, input_root: Path, dest: Path) -> None:
    """cogify's tasks one after another in this process: tilefleet's work per file (COG,
    preview, STAC item) without the engine's fixed costs (worker start-up, ledger,
    reports), which a batch of a few seconds cannot spread."""
    from tilefleet.recipes.cogify import CogifyRecipe

    recipe = CogifyRecipe()
    params = recipe.Params(manifest=str(manifest), input_root=str(input_root), dest=str(dest))
    for task in recipe.plan(params):
        recipe.run(task)


# --------------------------------------------------------------------------- checks


def _read_all_levels(path: Path) -> list[np.ndarray]:
    with rasterio.open(path) as ds:
        levels = [ds.read()]
        overviews = len(ds.overviews(1))
    for level in range(overviews):
        with rasterio.open(path, overview_level=level) as ds:
            levels.append(ds.read())
    return levels


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _require(condition: bool, message: str) -> None:
    if not condition:  # not an assert: the check must also run under python -O
        raise AssertionError(message)


REBUILT = " (the input has overviews: GDAL copies them, tilefleet rebuilds them)"


def check_outputs(check: Path, sources: list[Path], sides: list[str]) -> list[str]:
    """Assert identical full-resolution pixels (and as many overviews) across sides;
    return notes on the overviews for the output."""
    notes = []
    for source in sources:
        name = source.name
        gdal = _read_all_levels(check / "gdal" / name)
        with rasterio.open(source) as ds:
            original, had_overviews = ds.read(), bool(ds.overviews(1))
        _require(np.array_equal(gdal[0], original), f"GDAL COG of {name} is not lossless")
        same_levels = True
        for side in sides:
            ours = _read_all_levels(check / side / name)
            _require(len(ours) == len(gdal), f"{side} {name}: {len(ours)} levels, GDAL {len(gdal)}")
            _require(np.array_equal(ours[0], original), f"{side} {name}: pixels differ")
            same_levels &= all(
                a.shape == b.shape and np.array_equal(a, b) for a, b in zip(ours, gdal, strict=True)
            )
        if not had_overviews:  # GDAL builds them as tilefleet does: they must be the same
            _require(same_levels, f"{name}: overviews differ from GDAL's")
        same_bytes = _digest(check / "gdal" / name) == _digest(check / sides[0] / name)
        notes.append(
            f"{name}: {len(gdal) - 1} overviews, full resolution equal to the input on every "
            f"side; overviews identical to GDAL's: {'yes' if same_levels else 'no'}"
            f"{'' if same_levels or not had_overviews else REBUILT}"
            f"; tilefleet file byte-identical to GDAL's: {'yes' if same_bytes else 'no'}"
        )
    return notes


# --------------------------------------------------------------------------- timing


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (tilefleet's workers included)."""
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.02)  # reaps workers that were told to stop, so their time is counted
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def steal_seconds() -> float:
    """CPU seconds the hypervisor has given other guests since boot, all CPUs together (the
    steal field of ``/proc/stat``); 0 where the system does not say."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def time_side(
    run: Callable[[Path], None], out: Path, name: str, keep: dict[str, str] | None
) -> tuple[float, float, float]:
    """(wall, CPU, steal) seconds of one side run into a fresh ``out/name``; then the outputs go,
    except the files ``keep`` names (path below the side's folder -> file name), which move
    to ``out/../check/name``."""
    dest = out / name
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    cpu, steal = cpu_seconds(), steal_seconds()
    started = time.perf_counter()
    run(dest)
    wall = time.perf_counter() - started
    cpu, steal = cpu_seconds() - cpu, steal_seconds() - steal
    for produced, file_name in (keep or {}).items():
        kept = out.parent / "check" / name
        kept.mkdir(parents=True, exist_ok=True)
        shutil.move(dest / produced, kept / file_name)
    shutil.rmtree(dest)
    return wall, cpu, steal


@dataclass
class Timings:
    """Wall, CPU and steal seconds of each side, one of each per repetition, in order."""

    walls: dict[str, list[float]]
    cpus: dict[str, list[float]]
    steals: dict[str, list[float]]

    def best(self, side: str) -> float:
        return min(self.walls[side])

    def cpu(self, side: str) -> float:
        return min(self.cpus[side])

    def paired(self, ours: str, peer: str) -> float:
        """The median over the repetitions of ``ours`` / ``peer``, each from one repetition."""
        pairs = zip(self.walls[ours], self.walls[peer], strict=True)
        return statistics.median(a / b for a, b in pairs)

    def stolen(self, ours: str, peer: str) -> str:
        """How many of the pairs had steal (over 1 % of their wall time), and how much."""
        pairs = list(zip(self.walls[ours], self.walls[peer], strict=True))
        steals = [a + b for a, b in zip(self.steals[ours], self.steals[peer], strict=True)]
        hit = sum(steal > 0.01 * (a + b) for (a, b), steal in zip(pairs, steals, strict=True))
        share = 100 * sum(steals) / sum(a + b for a, b in pairs)
        return f"steal in {hit} of {len(pairs)} pairs, {share:.1f} % of their time"


def run_sides(
    sides: dict[str, Callable[[Path, int], None]],
    repeat: int,
    work: Path,
    keep: Callable[[str], dict[str, str] | None],
) -> Timings:
    """Wall, CPU and steal seconds of each side, the sides interleaved in each repetition so
    that drift in the machine hits them all; ``keep(side)`` names the files kept in the
    first repetition for the checks."""
    out = work / "out"

    def per_side() -> dict[str, list[float]]:
        return {name: [] for name in sides}

    timings = Timings(walls=per_side(), cpus=per_side(), steals=per_side())
    for rep in range(repeat):
        for name, run in sides.items():
            wall, cpu, steal = time_side(
                lambda dest, run=run, rep=rep: run(dest, rep),
                out,
                name,
                keep(name) if rep == 0 else None,
            )
            timings.walls[name].append(wall)
            timings.cpus[name].append(cpu)
            timings.steals[name].append(steal)
            print(
                f"  repetition {rep + 1}: {name:<12} {wall:7.2f} s wall, {cpu:7.2f} s CPU, "
                f"steal {steal:5.2f} s, load {_load()}",
                flush=True,
            )
    for name in sides:
        print(f"best: {name:<12} {timings.best(name):7.2f} s wall, {timings.cpu(name):7.2f} s CPU")
    return timings


def print_goals(label: str, timings: Timings, one: str = "tilefleet-1") -> None:
    for peer, what, goal in (
        ("gdal", "GDAL COG driver", GOAL_VS_COG),
        ("gdal+jpeg", "GDAL COG + JPEG preview (the crank's whole job)", GOAL_VS_CRANK),
        ("rio-cogeo", "rio-cogeo (for reference)", GOAL_VS_COG),
    ):
        if peer in timings.walls:
            print(comparison(f"{label}, 1 worker vs {what}", timings, one, peer, goal))


def comparison(
    name: str, timings: Timings, ours: str, peer: str, goal: float, speedup: bool = False
) -> str:
    """One result line: the paired ratio (see the module's docstring) with its verdict,
    and beside it the ratio of the best wall times and that of the CPU seconds. With
    ``speedup``, ``peer``'s time over ``ours`` (at least ``goal``), else ``ours`` over
    ``peer``'s (at most ``goal``)."""
    n = len(timings.walls[ours])
    if speedup:
        ratio = timings.paired(peer, ours)
        verdict = "met" if ratio >= goal else "NOT met"
        return (
            f"{name}: speed-up {ratio:.2f}, paired median of {n} (goal >= {goal}: {verdict}); "
            f"best {timings.best(ours):.2f} s vs {timings.best(peer):.2f} s wall, speed-up "
            f"{timings.best(peer) / timings.best(ours):.2f}; CPU {timings.cpu(ours):.1f} s vs "
            f"{timings.cpu(peer):.1f} s; {timings.stolen(ours, peer)}"
        )
    ratio = timings.paired(ours, peer)
    verdict = "met" if ratio <= goal else "NOT met"
    return (
        f"{name}: ratio {ratio:.2f}, paired median of {n} (goal <= {goal}: {verdict}); "
        f"best {timings.best(ours):.2f} s vs {timings.best(peer):.2f} s wall, ratio "
        f"{timings.best(ours) / timings.best(peer):.2f}; CPU {timings.cpu(ours):.2f} s vs "
        f"{timings.cpu(peer):.2f} s, ratio {timings.cpu(ours) / timings.cpu(peer):.2f}; "
        f"{timings.stolen(ours, peer)}"
    )


def worker_start_cpu(repeat: int = 3) -> float:
    """CPU seconds of a fresh Python that imports what a local worker imports before its
    first cogify task, in a worker's environment (best of ``repeat``): what a tilefleet
    worker costs to start."""
    code = (  # as worker_main does: boto3 deferred, then the task modules
        "from tilefleet.engine.worker_process import defer_imports; defer_imports(); "
        "import tilefleet.engine.worker, tilefleet.recipes.cogify"
    )
    from tilefleet.engine.executors.worker_env import local_worker_environment

    costs = []
    for _ in range(repeat):
        before = cpu_seconds()
        subprocess.run([sys.executable, "-c", code], check=True, env=local_worker_environment())
        costs.append(cpu_seconds() - before)
    return min(costs)


def _load() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=4, help="number of synthetic GeoTIFFs")
    parser.add_argument("--size", type=int, default=2048, help="pixels per side of each input")
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of every side")
    parser.add_argument(
        "--full",
        action="store_true",
        help="the full run: 8 synthetic files of 3072², 3 repetitions of every side "
        "and 7 of the real set (overrides --files, --size, --repeat and --real-repeat)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(
            os.environ.get("TILEFLEET_TEST_DATA", Path(__file__).parents[2] / "shared/data")
        ),
        help="the shared test data, for the real rasters (skipped when absent)",
    )
    parser.add_argument("--real-repeat", type=int, default=3, help="repetitions on the real set")
    parser.add_argument(
        "--real-copies", type=int, default=4, help="times each real raster is in its batch"
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(__file__).resolve().parent / "_work",
        help="work folder for inputs and outputs (default benchmarks/_work)",
    )
    args = parser.parse_args(argv)
    if args.full:
        args.files, args.size, args.repeat, args.real_repeat = 8, 3072, 3, 7
    if args.files < CHECK_FILES or args.size < 64 or min(args.repeat, args.real_repeat) < 1:
        parser.error(f"need --files >= {CHECK_FILES}, --size >= 64, repeats >= 1")

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ["TILEFLEET_HISTORY"] = str(work / "history.sqlite")  # not the user's history
    logging.getLogger("tilefleet").setLevel(logging.WARNING)

    manifest, input_root, paths = ensure_inputs(work, args.files, args.size)
    megabytes = sum(path.stat().st_size for path in paths) / 1e6
    options = cog_options("deflate")
    profile = rio_cogeo_profile(options)
    resampling = options["OVERVIEW_RESAMPLING"].lower()
    print(
        f"machine: {os.cpu_count()} CPUs, load {_load()}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"GDAL {rasterio.__gdal_version__}, rasterio {rasterio.__version__}, "
        f"rio-cogeo {rio_cogeo.__version__}"
    )
    if os.getloadavg()[0] > 0.5:
        print(
            "warning: the machine is busy before the start; wall times and the 2-worker "
            "speed-up suffer from it, CPU seconds much less"
        )
    print(
        f"synthetic inputs: {args.files} striped uncompressed GeoTIFFs, {BANDS}×{DTYPE} "
        f"{args.size}×{args.size}, {megabytes / args.files:.0f} MB each, {megabytes:.0f} MB "
        f"in all; {args.repeat} repetitions"
    )
    print(f"COG options (all sides): {' '.join(f'{k}={v}' for k, v in options.items())}")
    print(
        "note: tilefleet's time also covers, per file, a full-size JPEG preview, a STAC item "
        "and COG validation, plus its run record (ledger, reports) and worker start-up: "
        "part of its job"
    )

    check, runs = work / "check", work / "runs"
    for folder in (work / "out", check, runs):
        shutil.rmtree(folder, ignore_errors=True)
    warm_page_cache(paths)
    checked = paths[:CHECK_FILES]

    def keep_synthetic(side: str) -> dict[str, str] | None:
        if side in ("gdal-2proc", "gdal+jpeg"):
            return None
        below = "scenes/" if side.startswith("tilefleet") else ""
        return {f"{below}{path.name}": path.name for path in checked}

    sides: dict[str, Callable[[Path, int], None]] = {
        "gdal": lambda dest, rep: run_gdal_cog_driver(paths, dest, options),
        "rio-cogeo": lambda dest, rep: run_rio_cogeo(paths, dest, profile, resampling),
        "gdal+jpeg": lambda dest, rep: run_gdal_cog_and_jpeg(paths, dest, options),
        "tilefleet-1": lambda dest, rep: run_tilefleet(
            manifest, input_root, dest, runs / f"w1-{rep}", 1, len(paths)
        ),
        "tilefleet-2": lambda dest, rep: run_tilefleet(
            manifest, input_root, dest, runs / f"w2-{rep}", 2, len(paths)
        ),
        "gdal-2proc": lambda dest, rep: run_gdal_two_processes(paths, dest, options),
    }
    timings = run_sides(sides, args.repeat, work, keep_synthetic)
    cog_mb = sum((check / "gdal" / path.name).stat().st_size for path in checked) / 1e6
    print(
        f"outputs: COG {cog_mb / len(checked):.0f} MB per file (full resolution and "
        f"overviews, DEFLATE with the predictor of the data type)"
    )
    for note in check_outputs(check, checked, ["tilefleet-1", "tilefleet-2", "rio-cogeo"]):
        print(f"check: {note}")
    print_goals("synthetic", timings)
    print(
        comparison("synthetic, 2 workers vs 1 worker", timings, "tilefleet-2", "tilefleet-1",
                   GOAL_SPEEDUP, speedup=True)
    )  # fmt: skip
    print(
        f"machine ceiling for 2 workers (GDAL COG driver, 2 spawned processes vs 1 loop): "
        f"speed-up {timings.paired('gdal', 'gdal-2proc'):.2f}, paired median"
    )
    for folder in (work / "out", check, runs):
        shutil.rmtree(folder, ignore_errors=True)

    if not all((args.data / source).exists() for source in REAL_RASTERS.values()):
        print(f"real rasters: skipped, not found in {args.data}")
        return
    real_manifest, real_root, real_paths = real_inputs(work, args.data, args.real_copies)
    warm_page_cache(real_paths)
    print(
        f"real inputs: {len(REAL_RASTERS)} rasters of the shared data, {args.real_copies} "
        f"times each ({sum(p.stat().st_size for p in real_paths) / 1e6:.0f} MB in all): "
        f"{', '.join(REAL_RASTERS)}; {args.real_repeat} repetitions"
    )
    first_copy = real_paths[: len(REAL_RASTERS)]

    def keep_real(side: str) -> dict[str, str] | None:
        return None if side == "gdal+jpeg" else {path.name: path.name for path in first_copy}

    real_sides: dict[str, Callable[[Path, int], None]] = {
        "gdal": lambda dest, rep: run_gdal_cog_driver(real_paths, dest, options),
        "gdal+jpeg": lambda dest, rep: run_gdal_cog_and_jpeg(real_paths, dest, options),
        "tilefleet-1": lambda dest, rep: run_tilefleet(
            real_manifest, real_root, dest, runs / f"real-{rep}", 1, len(real_paths)
        ),
        "tasks-only": lambda dest, rep: run_tilefleet_tasks(real_manifest, real_root, dest),
    }
    timings = run_sides(real_sides, args.real_repeat, work, keep_real)
    for note in check_outputs(check, first_copy, ["tilefleet-1", "tasks-only"]):
        print(f"check: {note}")
    print_goals("real rasters", timings)
    per_file = "real rasters, per file (the tasks in this process, no engine)"
    print_goals(per_file, timings, "tasks-only")
    start = worker_start_cpu()
    print(
        f"a fresh worker's start (Python and the imports of cogify's modules): {start:.2f} s "
        f"CPU, {100 * start / timings.cpu('gdal'):.0f} % of GDAL's CPU time on the real set; the "
        "engine pays it once per worker, the GDAL side (in this process) not at all"
    )
    for folder in (work / "out", check, runs):
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
