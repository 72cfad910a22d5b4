"""The sample workload of ``tilefleet demo``: synthetic striped GeoTIFFs and their manifest.

The rasters imitate what users feed the COG crank (RGB imagery, multispectral reflectance,
a DEM with nodata, radar amplitudes) in several data types, stored as plain striped TIFFs
so cogify has real work to do. Everything is made locally: no network, no credentials.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

MARKER = ".tilefleet-demo"


@dataclass(frozen=True)
class SampleRaster:
    key: str
    dtype: str
    bands: int
    nodata: float | None
    crs: str
    size: int = 768


SAMPLES = (
    SampleRaster("imagery/rgb_uint8.tif", "uint8", 3, 0, "EPSG:32631"),
    SampleRaster("imagery/multispectral_uint16.tif", "uint16", 4, 0, "EPSG:32631"),
    SampleRaster("radar/amplitude_vv_vh_int16.tif", "int16", 2, -32768, "EPSG:32632"),
    SampleRaster("terrain/dem_float32.tif", "float32", 1, -9999.0, "EPSG:4326"),
    SampleRaster("terrain/slope_float64.tif", "float64", 1, None, "EPSG:4326", 512),
    SampleRaster("landcover/classes_uint8.tif", "uint8", 1, 255, "EPSG:3035"),
)


def sample_pixels(sample: SampleRaster, seed: int) -> np.ndarray:
    """Smooth terrain-like fields with noise, scaled to the sample's type, nodata in a corner."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : sample.size, 0 : sample.size] / sample.size
    bands = []
    for band in range(sample.bands):
        phase = rng.uniform(0, 2 * np.pi, 3)
        field = (
            np.sin(6 * x + phase[0]) * np.cos(5 * y + phase[1])
            + 0.5 * np.sin(17 * (x + y) + phase[2])
            + 0.15 * rng.standard_normal(x.shape)
        )
        bands.append((field - field.min()) / np.ptp(field) * (0.6 + 0.1 * band))
    unit = np.stack(bands)
    info = np.iinfo(sample.dtype) if np.dtype(sample.dtype).kind in "iu" else None
    if sample.key.startswith("landcover"):
        data = np.floor(unit * 10).astype(sample.dtype)
    elif info is not None:
        low = 0 if info.min == 0 else -4000
        high = 254 if info.bits == 8 else 10000
        data = (low + unit * (high - low)).astype(sample.dtype)
    else:
        data = (unit * 2500.0).astype(sample.dtype)
    if sample.nodata is not None:
        corner = sample.size // 5
        data[:, :corner, :corner] = sample.nodata
    return data


def write_sample(path: Path, sample: SampleRaster, seed: int) -> None:
    resolution = 0.0005 if sample.crs == "EPSG:4326" else 30.0
    origin = (5.0, 51.5) if sample.crs == "EPSG:4326" else (600000.0, 5700000.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=sample.size,
        height=sample.size,
        count=sample.bands,
        dtype=sample.dtype,
        crs=sample.crs,
        nodata=sample.nodata,
        transform=Affine.translation(*origin) @ Affine.scale(resolution, -resolution),
        tiled=False,
        compress="NONE",
        interleave="pixel",  # a plain striped TIFF: not a COG
    ) as dst:
        dst.write(sample_pixels(sample, seed))


def prepare_demo(out: Path) -> dict[str, str]:
    """Create (or recreate) the demo folder and return the cogify job's values."""
    out = out.resolve()
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise FileExistsError(
            f"{out} exists and is not a tilefleet demo folder; choose another --out"
        )
    if out.exists():
        shutil.rmtree(out)
    inputs = out / "input"
    for seed, sample in enumerate(SAMPLES):
        write_sample(inputs / sample.key, sample, seed)
    manifest = out / "manifest.csv"
    manifest.write_text("".join(f"{s.key},{s.bands}\n" for s in SAMPLES))
    (out / MARKER).write_text("made by `tilefleet demo`; safe to delete\n")
    return {
        "recipe": "cogify",
        "manifest": str(manifest),
        "input_root": str(inputs),
        "dest": str(out / "output"),
        "run_dir": str(out / "run"),
    }
