"""Cloud-Optimized GeoTIFF writing with named profiles.

Profiles carry rio-cogeo's names (``deflate``, ``zstd``, ``lzw``, ``webp``, ``jpeg``, …)
and are plain data: GDAL COG driver creation options. GDAL's COG driver writes tiles,
overviews and the ghost header in one pass, which is the fastest correct way to make a
COG; nodata and per-dataset masks are carried over by GDAL itself.
"""

from __future__ import annotations

from pathlib import Path

import rasterio
import rasterio.shutil
from rio_cogeo.cogeo import cog_validate

from tilefleet.errors import PermanentError

# Lossless profiles keep every pixel value; lossy ones are only for 8-bit imagery. With
# PREDICTOR=YES GDAL picks the horizontal-differencing predictor by data type (2 for
# integers, 3 for floats), which shrinks DEMs and reflectances by 5-17 %.
COG_PROFILES: dict[str, dict[str, str]] = {
    "raw": {"COMPRESS": "NONE"},
    "deflate": {"COMPRESS": "DEFLATE", "PREDICTOR": "YES"},
    "zstd": {"COMPRESS": "ZSTD", "PREDICTOR": "YES"},
    "lzw": {"COMPRESS": "LZW", "PREDICTOR": "YES"},
    "lzma": {"COMPRESS": "LZMA"},
    "packbits": {"COMPRESS": "PACKBITS"},
    "lerc": {"COMPRESS": "LERC"},
    "lerc_deflate": {"COMPRESS": "LERC_DEFLATE"},
    "lerc_zstd": {"COMPRESS": "LERC_ZSTD"},
    "jpeg": {"COMPRESS": "JPEG", "QUALITY": "85"},
    "webp": {"COMPRESS": "WEBP", "QUALITY": "85"},
}
LOSSY_PROFILES = {"jpeg", "webp"}
DEFAULT_PROFILE = "deflate"
OVERVIEW_RESAMPLING = ("nearest", "average", "bilinear", "cubic", "mode", "lanczos", "rms")


def cog_options(
    profile: str,
    *,
    blocksize: int = 512,
    overview_resampling: str = "nearest",
    quality: int | None = None,
) -> dict[str, str]:
    """GDAL COG driver creation options for a named profile."""
    if profile not in COG_PROFILES:
        raise ValueError(f"unknown COG profile {profile!r}; choose from {', '.join(COG_PROFILES)}")
    options = {
        **COG_PROFILES[profile],
        "BLOCKSIZE": str(blocksize),
        "OVERVIEWS": "AUTO",
        "OVERVIEW_RESAMPLING": overview_resampling.upper(),
        "BIGTIFF": "IF_SAFER",
        # Parallelism comes from running tiles side by side, not threads inside one.
        "NUM_THREADS": "1",
    }
    if quality is not None and profile in LOSSY_PROFILES:
        options["QUALITY"] = str(quality)
    return options


def check_profile_fits(profile: str, dtype: str, count: int) -> None:
    """Lossy codecs only take 8-bit data with 1, 3 (or 4 for WEBP) bands: fail early and clearly."""
    if profile not in LOSSY_PROFILES:
        return
    bands_ok = count in (1, 3) if profile == "jpeg" else count in (3, 4)
    if dtype != "uint8" or not bands_ok:
        need = "1 or 3" if profile == "jpeg" else "3 or 4"
        raise PermanentError(
            f"profile {profile!r} needs uint8 data with {need} bands; input is {dtype} with "
            f"{count} band(s) (use a lossless profile such as 'deflate')"
        )


def write_cog(src: str, dst: Path, options: dict[str, str]) -> None:
    """Translate ``src`` (any GDAL-readable name) into a COG at local path ``dst`` and check it."""
    rasterio.shutil.copy(src, str(dst), driver="COG", **options)
    valid, errors, _warnings = cog_validate(str(dst), quiet=True)
    if not valid:
        raise PermanentError(f"GDAL wrote an invalid COG: {'; '.join(errors)}")
