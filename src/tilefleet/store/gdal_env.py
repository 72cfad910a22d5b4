"""GDAL configuration for reading and writing through tilefleet's storage URLs.

GDAL does not understand ``AWS_ENDPOINT_URL``; S3-compatible endpoints (MinIO, moto,
Ceph) need ``AWS_S3_ENDPOINT``/``AWS_HTTPS``/``AWS_VIRTUAL_HOSTING``. This module derives
them from the standard variables so one environment drives obstore and GDAL alike. Only
non-secret settings are produced; GDAL reads the keys from the environment itself.

Network reads are bounded and retried: GDAL retries HTTP 429/5xx itself
(``GDAL_HTTP_MAX_RETRY``), and a request that stalls or never connects times out. What
still fails in a :func:`gdal_session` reading a network file is made retryable when it is
a damaged read: a body cut mid-way reads like a corrupt file to GDAL ("TIFFReadEncodedTile()
failed"), and GDAL keeps the cut bytes in its cache, so the cache is cleared for the retry.
The same error reading a local file is the file's fault and stays permanent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from tilefleet.errors import PERMANENT, RetryableError, causes, classify, one_line

log = logging.getLogger("tilefleet")

BASE_CONFIG = {
    # Opening a file must not list its folder: that is one LIST per open on object stores.
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # No .aux.xml side files next to outputs.
    "GDAL_PAM_ENABLED": "NO",
    # 429 and 5xx answers retried by GDAL itself, with a growing delay.
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "1",
    # Every network read bounded: connecting, a stalled transfer, and a whole request.
    "GDAL_HTTP_CONNECTTIMEOUT": "15",
    "GDAL_HTTP_LOW_SPEED_TIME": "60",
    "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
    "GDAL_HTTP_TIMEOUT": "600",
    "CPL_VSIL_CURL_USE_HEAD": "NO",
}


def gdal_config(environ: dict[str, str] | None = None) -> dict[str, str]:
    """GDAL config options for the current (or given) environment; a variable the
    environment sets itself (``GDAL_HTTP_TIMEOUT=30``) wins over tilefleet's default."""
    env = os.environ if environ is None else environ
    config = {name: value for name, value in BASE_CONFIG.items() if name not in env}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        config["AWS_S3_ENDPOINT"] = parsed.netloc + parsed.path.rstrip("/")
        config["AWS_HTTPS"] = "NO" if parsed.scheme == "http" else "YES"
        config["AWS_VIRTUAL_HOSTING"] = "FALSE"
    return config


# What GDAL says (local files, /vsis3, /vsicurl) when the file it was asked for is not there.
_MISSING_FILE = ("No such file", "does not exist", "404")


def is_missing_file(exc: BaseException) -> bool:
    """Whether a GDAL/rasterio error says the file is not there: bad input, not trouble."""
    text = str(exc)
    return any(marker in text for marker in _MISSING_FILE)


#: GDAL's virtual file systems that read over the network.
_NETWORK_PREFIXES = (
    "/vsis3/",
    "/vsigs/",
    "/vsiaz/",
    "/vsiadls/",
    "/vsicurl",
    "/vsioss/",
    "/vsiswift/",
    "/vsiwebhdfs/",
    "http://",
    "https://",
)
# What GDAL says when the bytes it read are not what the file holds: a damaged file, or
# (over the network) a response that ended early.
_DAMAGED_READ = (
    "IReadBlock failed",
    "TIFFReadEncodedTile",
    "TIFFReadEncodedStrip",
    "TIFFFillTile",
    "TIFFFillStrip",
    "TIFFReadDirectory",
    "Read error",
    "not recognized as being in a supported file format",
    "not a TIFF",
    "Read failed",
)


def is_network_path(path: str) -> bool:
    """Whether GDAL reads ``path`` over the network (``/vsis3/…``, ``/vsicurl/…``, URLs)."""
    return any(path.startswith(prefix) for prefix in _NETWORK_PREFIXES)


def is_damaged_read(exc: BaseException) -> bool:
    """Whether a GDAL error (or one it was raised from) says the bytes read were wrong."""
    return any(marker in str(link) for link in causes(exc) for marker in _DAMAGED_READ)


@contextmanager
def gdal_session(*reading: str) -> Iterator[None]:
    """A rasterio environment with :func:`gdal_config`, for a task reading ``reading``.

    If one of them is read over the network and the task fails with a damaged read, the
    failure is a :class:`RetryableError` (a cut connection, not a bad file); any failure
    with a network read clears GDAL's network cache, so the next attempt in this process
    reads the file afresh instead of the cut bytes or the error GDAL remembered."""
    import rasterio

    try:
        with rasterio.Env(**gdal_config()):
            yield
    except Exception as exc:
        network = [path for path in reading if is_network_path(path)]
        if not network:
            raise
        clear_network_cache()
        if classify(exc) == PERMANENT and is_damaged_read(exc) and not is_missing_file(exc):
            raise RetryableError(
                f"reading {network[0]} over the network failed (a connection cut short, "
                f"or a damaged file): {one_line(exc)}"
            ) from exc
        raise


def clear_network_cache() -> None:
    """Forget what GDAL cached of network files in this process (blocks, sizes, errors)."""
    clear = _gdal_function("VSICurlClearCache")
    if clear is not None:
        clear()


def abort_pending_uploads(vsi_path: str) -> bool:
    """Abort the multipart uploads left open below ``vsi_path`` (``/vsis3/bucket/key``):
    what a writer killed mid-upload leaves, invisible and billed. GDAL lists them with the
    store's own API (obstore has none); False when that could not be done."""
    abort = _gdal_function("VSIAbortPendingUploads")
    if abort is None:
        return False
    import rasterio

    abort.argtypes, abort.restype = [ctypes.c_char_p], ctypes.c_int
    with rasterio.Env(**gdal_config()):
        return bool(abort(vsi_path.encode()))


@functools.cache
def _gdal_function(name: str):
    """A function of the GDAL library rasterio runs on (rasterio does not wrap it)."""
    import rasterio

    here = os.path.dirname(rasterio.__file__)
    candidates = sorted(glob.glob(os.path.join(here, os.pardir, "rasterio.libs", "libgdal*")))
    candidates += [found for found in [ctypes.util.find_library("gdal")] if found]
    for candidate in candidates:
        try:
            return getattr(ctypes.CDLL(candidate), name)
        except (OSError, AttributeError):
            continue
    log.debug("GDAL's %s not found: network reads are retried with GDAL's cache", name)
    return None
