"""Reading ICESat-2 ATL06 land-ice heights from HDF5 granules: local, ``s3://`` or ``https://``.

Local files are read with h5py; remote ones with h5coro, which fetches only the byte
ranges of the datasets (and rows) asked for instead of downloading the granule. h5coro's
S3 driver (boto3) takes its endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``,
as the rest of tilefleet does. An s3 granule is read with the Earthdata S3 credentials the
run shares (the cells recipe's ``s3_credentials``), else with the worker's own; an https
granule with the Earthdata token in ``EARTHDATA_TOKEN`` when it is set.

For one parent cell only the rows that can fall in it are read: ATL06 segments run along
track, so the rows whose latitude lies in the cell's latitude band form one contiguous
range (first to last match), and the other variables are read as that hyperslab. Kept
points: quality flag equal to the wanted value (0: no problem detected), finite height
below the fill value (3.4028235e38), finite positive sigma.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from tilefleet import secrets
from tilefleet.errors import PermanentError
from tilefleet.sources.earthdata import SECRET_NAME as EARTHDATA_S3
from tilefleet.tiles import healpix

BEAMS: tuple[str, ...] = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
#: ATL06's fill value for float32 variables; anything at or above it is "no value".
FILL_THRESHOLD = 3.4e38


@dataclass(frozen=True)
class Atl06Layout:
    """Where the variables live inside a granule (paths relative to a beam group), and the
    quality filter. The defaults are ATL06's land-ice segments."""

    beams: tuple[str, ...] = BEAMS
    latitude: str = "land_ice_segments/latitude"
    longitude: str = "land_ice_segments/longitude"
    height: str = "land_ice_segments/h_li"
    sigma: str = "land_ice_segments/h_li_sigma"
    quality: str | None = "land_ice_segments/atl06_quality_summary"
    quality_value: int = 0

    def row_variables(self) -> list[str]:
        names = [self.longitude, self.height, self.sigma]
        return names + ([self.quality] if self.quality else [])


@dataclass
class BeamPoints:
    """Good points of one granule (all beams concatenated) and what reading them took."""

    lon: np.ndarray
    lat: np.ndarray
    height: np.ndarray
    sigma: np.ndarray
    rows_read: int = 0
    beams_missing: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls) -> BeamPoints:
        nothing = np.empty(0, dtype=np.float64)
        return cls(nothing, nothing, nothing, nothing)

    def __len__(self) -> int:
        return len(self.height)


def read_granule(
    url: str,
    layout: Atl06Layout = Atl06Layout(),
    *,
    parent: int | None = None,
    parent_order: int | None = None,
) -> BeamPoints:
    """The good points of a granule, or of the rows that can fall in ``parent`` (a nested
    cell at ``parent_order``) when it is given; points are not yet clipped to the cell."""
    band = _latitude_band(parent, parent_order) if parent is not None else None
    with open_granule(url) as granule:
        parts: list[BeamPoints] = []
        missing: list[str] = []
        rows = 0
        for beam, lat in granule.latitudes(layout).items():
            if lat is None:
                missing.append(beam)
                continue
            start, stop = _row_range(lat, band)
            if stop <= start:
                continue
            columns = granule.rows(beam, layout.row_variables(), start, stop)
            rows += stop - start
            parts.append(_good_points(lat[start:stop], columns, layout, f"{url} {beam}"))
    points = _concatenate(parts)
    points.rows_read, points.beams_missing = rows, missing
    return points


def granule_parent_cells(url: str, parent_order: int, layout: Atl06Layout = Atl06Layout()):
    """Sorted nested ids of the cells at ``parent_order`` that hold good points of ``url``."""
    points = read_granule(url, layout)
    cells = healpix.lonlat_to_cell(points.lon, points.lat, parent_order)
    return np.unique(cells)


def _latitude_band(parent: int, parent_order: int | None) -> tuple[float, float]:
    if parent_order is None:
        raise ValueError("parent_order is needed with parent")
    _, lat = healpix.cell_boundaries(np.array([parent]), parent_order, step=1)
    pad = 1e-9  # along an edge lat is monotonic between corners, so corners bound the cell
    return float(lat.min()) - pad, float(lat.max()) + pad


def _row_range(lat: np.ndarray, band: tuple[float, float] | None) -> tuple[int, int]:
    """[start, stop) covering every row whose latitude is in ``band`` (all rows if None)."""
    if band is None:
        return 0, len(lat)
    hits = np.flatnonzero((lat >= band[0]) & (lat <= band[1]))
    return (int(hits[0]), int(hits[-1]) + 1) if hits.size else (0, 0)


def _good_points(
    lat: np.ndarray, columns: dict[str, np.ndarray], layout: Atl06Layout, where: str
) -> BeamPoints:
    lon = np.asarray(columns[layout.longitude], dtype=np.float64)
    height = np.asarray(columns[layout.height], dtype=np.float64)
    sigma = np.asarray(columns[layout.sigma], dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    if not len(lon) == len(height) == len(sigma) == len(lat):
        raise PermanentError(f"{where}: variables have different lengths")
    keep = np.isfinite(height) & (height < FILL_THRESHOLD)
    keep &= np.isfinite(sigma) & (sigma > 0) & (sigma < FILL_THRESHOLD)
    keep &= np.isfinite(lat) & (np.abs(lat) <= 90) & np.isfinite(lon)
    if layout.quality:
        keep &= np.asarray(columns[layout.quality]) == layout.quality_value
    return BeamPoints(lon[keep], lat[keep], height[keep], sigma[keep])


def _concatenate(parts: Sequence[BeamPoints]) -> BeamPoints:
    if not parts:
        return BeamPoints.empty()
    return BeamPoints(
        *(
            np.concatenate([getattr(p, name) for p in parts])
            for name in ("lon", "lat", "height", "sigma")
        )
    )


# --- opening granules -------------------------------------------------------------------------


class Granule:
    """An open granule: latitudes of every beam, then hyperslabs of other variables."""

    def __init__(self, url: str):
        self.url = url

    def __enter__(self) -> Granule:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def latitudes(self, layout: Atl06Layout) -> dict[str, np.ndarray | None]:
        """Latitude of every beam in ``layout``; None for a beam the granule lacks."""
        raise NotImplementedError

    def rows(self, beam: str, names: list[str], start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows ``[start, stop)`` of the variables ``names`` of ``beam``."""
        raise NotImplementedError


class LocalGranule(Granule):
    """A granule on a local file system, read with h5py (which reads only the chunks of the
    requested rows)."""

    def __init__(self, url: str):
        super().__init__(url)
        import h5py

        path = Path(url.removeprefix("file://"))
        if not path.is_file():
            raise PermanentError(f"granule {url} not found")
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise PermanentError(f"granule {url} is not a readable HDF5 file: {exc}") from None

    def close(self) -> None:
        self._file.close()

    def latitudes(self, layout: Atl06Layout) -> dict[str, np.ndarray | None]:
        found: dict[str, np.ndarray | None] = {}
        for beam in layout.beams:
            if beam not in self._file:
                found[beam] = None
                continue
            found[beam] = self._dataset(beam, layout.latitude)[:]
        return found

    def rows(self, beam: str, names: list[str], start: int, stop: int) -> dict[str, np.ndarray]:
        return {name: self._dataset(beam, name)[start:stop] for name in names}

    def _dataset(self, beam: str, name: str):
        try:
            return self._file[f"{beam}/{name}"]
        except KeyError:
            raise PermanentError(f"granule {self.url} has no {beam}/{name}") from None


class RemoteGranule(Granule):
    """A granule on S3 or behind https, read with h5coro's ranged reads."""

    def __init__(self, url: str):
        super().__init__(url)
        import h5coro
        from h5coro import s3driver, webdriver

        parsed = urlparse(url)
        if parsed.scheme == "s3":
            # Shared by the run (Earthdata S3 credentials), else the worker's own chain.
            credentials = secrets.get(EARTHDATA_S3) or {}
            _check_s3_object(parsed.netloc, parsed.path.lstrip("/"), url, credentials)
            resource, driver = f"{parsed.netloc}{parsed.path}", s3driver.S3Driver
        else:
            resource, driver = url, webdriver.HTTPDriver
            credentials = os.environ.get("EARTHDATA_TOKEN") or {}
        try:
            self._h5 = h5coro.H5Coro(resource, driver, credentials, errorChecking=True)
        except Exception as exc:
            raise PermanentError(f"granule {url} is not a readable HDF5 file: {exc}") from None

    def close(self) -> None:
        self._h5.close()

    def latitudes(self, layout: Atl06Layout) -> dict[str, np.ndarray | None]:
        paths = {beam: f"{beam}/{layout.latitude}" for beam in layout.beams}
        promise = self._h5.readDatasets(list(paths.values()), block=True)
        # h5coro reports a dataset it cannot find as None: the beam is not in this granule.
        return {beam: _values(promise, path) for beam, path in paths.items()}

    def rows(self, beam: str, names: list[str], start: int, stop: int) -> dict[str, np.ndarray]:
        requests = [{"dataset": f"{beam}/{name}", "hyperslice": [(start, stop)]} for name in names]
        promise = self._h5.readDatasets(requests, block=True)
        found = {name: _values(promise, f"{beam}/{name}") for name in names}
        absent = [name for name, values in found.items() if values is None]
        if absent:
            raise PermanentError(f"granule {self.url} has no {beam}/{absent[0]}")
        return found  # type: ignore[return-value]


def _values(promise, path: str) -> np.ndarray | None:
    dataset = promise.datasets.get(path.strip("/"))
    values = None if dataset is None else dataset.values
    return None if values is None else np.asarray(values)


def _check_s3_object(bucket: str, key: str, url: str, credentials: dict[str, str]) -> None:
    """Tell a missing granule (permanent) from trouble reaching it (retryable): h5coro
    reports both as an unreadable file."""
    import boto3
    from botocore.exceptions import ClientError, NoCredentialsError

    # A session of its own, as h5coro's: the default one caches what it found first.
    client = boto3.session.Session(**credentials).client("s3")
    try:
        client.head_object(Bucket=bucket, Key=key)
    except NoCredentialsError:
        raise PermanentError(
            f"granule {url}: no AWS credentials to read it (s3_credentials: nsidc shares "
            "Earthdata S3 credentials with every worker)"
        ) from None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            raise PermanentError(f"granule {url} not found") from None
        if code in ("403", "AccessDenied"):
            raise PermanentError(f"granule {url}: access denied") from None
        raise


def open_granule(url: str) -> Granule:
    """Open a granule by URL: a local path, ``file://``, ``s3://`` or ``http(s)://``."""
    scheme = urlparse(url).scheme
    if scheme in ("s3", "http", "https"):
        return RemoteGranule(url)
    if scheme in ("", "file") or len(scheme) == 1:  # a Windows drive letter is a local path
        return LocalGranule(url)
    raise PermanentError(f"granule {url}: unsupported URL scheme {scheme!r}")
