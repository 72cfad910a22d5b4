"""Fixtures of the ttc-ard tests: catalogs of real inputs, static and behind a loopback
STAC API (our own server per catalog, started once per session)."""

from __future__ import annotations

import pytest

from stac_server import StacApiServer
from ttc_ard.catalogs import S2_TILE, TILEDB, dem_items, s1_items, s2_items, write_catalog


@pytest.fixture(scope="session")
def tiledb(data_dir):
    return data_dir / TILEDB


@pytest.fixture(scope="session")
def dem_catalog(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ttc-dem") / "catalog"
    return write_catalog(root, {"cop-dem-glo-30": dem_items(data_dir, root)})


@pytest.fixture(scope="session")
def dem_api(dem_catalog):
    server = StacApiServer(dem_catalog).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s2_api(data_dir, tmp_path_factory):
    """The 29RKH series (six listings of the real scene, see catalogs.s2_items, one of them
    cloudy over the test tile only) behind a loopback STAC API."""
    from tilefleet.tiles.ttc import TILE_HALF_SIZE, TileDatabase

    database = TileDatabase.open(data_dir / TILEDB)
    (row,) = database.rows_of([S2_TILE[0]], [S2_TILE[1]])
    x, y, h = database.x[row], database.y[row], TILE_HALF_SIZE
    root = tmp_path_factory.mktemp("ttc-s2") / "catalog"
    items = s2_items(data_dir, root, (x - h, y - h, x + h, y + h))
    server = StacApiServer(write_catalog(root, {"sentinel-2-l2a": items}))
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def s1_catalog(data_dir, tmp_path_factory):
    """The real GRD rasters as sentinel-1-rtc items on five days (see catalogs.s1_items)."""
    root = tmp_path_factory.mktemp("ttc-s1") / "catalog"
    return write_catalog(root, {"sentinel-1-rtc": s1_items(data_dir, root)})
