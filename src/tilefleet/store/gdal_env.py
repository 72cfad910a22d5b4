"""GDAL configuration for reading and writing through tilefleet's storage URLs.

GDAL does not understand ``AWS_ENDPOINT_URL``; S3-compatible endpoints (MinIO, moto,
Ceph) need ``AWS_S3_ENDPOINT``/``AWS_HTTPS``/``AWS_VIRTUAL_HOSTING``. This module derives
them from the standard variables so one environment drives obstore and GDAL alike. Only
non-secret settings are produced; GDAL reads the keys from the environment itself.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

BASE_CONFIG = {
    # Opening a file must not list its folder: that is one LIST per open on object stores.
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # No .aux.xml side files next to outputs.
    "GDAL_PAM_ENABLED": "NO",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "CPL_VSIL_CURL_USE_HEAD": "NO",
}


def gdal_config(environ: dict[str, str] | None = None) -> dict[str, str]:
    """GDAL config options for the current (or given) environment."""
    env = os.environ if environ is None else environ
    config = dict(BASE_CONFIG)
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
