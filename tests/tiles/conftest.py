"""Fixtures for the tile grid tests: real AOIs and the TTC tile database from the shared data,
and an independent reading of that database (pyarrow straight to numpy, no tilefleet code)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


def _shared_file(data_dir: Path, relative: str) -> Path:
    path = data_dir / relative
    if not path.is_file():
        pytest.skip(f"{relative} not found in the test data at {data_dir}")
    return path


@pytest.fixture(scope="session")
def tiledb_path(data_dir) -> Path:
    return _shared_file(data_dir, "ttc_tiledb/tiledb.parquet")


@pytest.fixture(scope="session")
def svn_path(data_dir) -> Path:
    """Slovenia's border, a MultiPolygon in EPSG:32633 (UTM 33N), not WGS84."""
    return _shared_file(data_dir, "aoi/svn_border.geojson")


@pytest.fixture(scope="session")
def grandmesa_path(data_dir) -> Path:
    """Grand Mesa, Colorado: a CRS84 box from -108.5 to -107.0, across UTM zones 12 and 13."""
    return _shared_file(data_dir, "aoi/grandmesa.geojson")


@dataclass(frozen=True)
class ReferenceDatabase:
    x: np.ndarray
    y: np.ndarray
    x_tile: np.ndarray
    y_tile: np.ndarray

    def ids(self, rows) -> set[str]:
        return {f"{a}X{b}Y" for a, b in zip(self.x_tile[rows], self.y_tile[rows], strict=True)}

    def row_of(self, tile_id: str) -> int:
        x_tile, y_tile = (int(v) for v in tile_id.rstrip("Y").split("X"))
        (rows,) = np.nonzero((self.x_tile == x_tile) & (self.y_tile == y_tile))
        assert len(rows) == 1
        return int(rows[0])


@pytest.fixture(scope="session")
def reference_db(tiledb_path) -> ReferenceDatabase:
    """The tile database read directly with pyarrow, for independent expectations."""
    import pyarrow.parquet as pq

    table = pq.read_table(tiledb_path)
    return ReferenceDatabase(
        *(np.asarray(table.column(c).to_numpy()) for c in ("X", "Y", "X_tile", "Y_tile"))
    )


@pytest.fixture(scope="session")
def svn_wgs84(svn_path):
    """Slovenia in lon/lat, reprojected here with pyproj on the raw coordinates."""
    import shapely
    from pyproj import Transformer
    from shapely.geometry import shape

    document = json.loads(svn_path.read_text())
    assert "32633" in document["crs"]["properties"]["name"]
    utm = shapely.union_all([shape(f["geometry"]) for f in document["features"]])
    to_lonlat = Transformer.from_crs(32633, 4326, always_xy=True)
    return shapely.transform(utm, lambda x, y: to_lonlat.transform(x, y), interleaved=False)


@pytest.fixture
def write_aoi(tmp_path):
    """Writes a geometry as a one-feature GeoJSON FeatureCollection; returns the path."""
    import shapely

    def write(geometry, name: str = "aoi.geojson", crs: str | None = None) -> Path:
        feature = {"type": "Feature", "properties": {}, "geometry": None}
        if geometry is not None:
            feature["geometry"] = json.loads(shapely.to_geojson(geometry))
        document = {"type": "FeatureCollection", "features": [feature]}
        if crs:
            document["crs"] = {"type": "name", "properties": {"name": crs}}
        path = tmp_path / name
        path.write_text(json.dumps(document))
        return path

    return write
