"""Fixtures for a real STAC API on loopback (see stac_server.py); conftest.py imports them.

``stac_api`` is the running server: ``.url`` (the API root), ``.catalog`` (its static
catalog on disk), ``.storm(n, status=429, retry_after="1")`` to turn the next ``n``
requests away, and ``.storm_state()``. Its collections: ``openeo-mol`` (3 openEO chips near
Mol, BE, 2023-06-01/04/06) and ``sentinel-2-l2a`` (Earth Search S2A_29RKH_20200219_0_L2A);
asset hrefs are served by the same server (``{url}/<collection>/assets/<file>.tif``).
"""

from __future__ import annotations

import pytest

from stac_server import StacApiServer, write_test_catalog


@pytest.fixture(scope="session")
def stac_api_server(data_dir, tmp_path_factory):
    """One server for the whole session: starting it takes a second or two."""
    catalog = write_test_catalog(data_dir, tmp_path_factory.mktemp("stac-api") / "catalog")
    server = StacApiServer(catalog).start()
    yield server
    server.stop()


@pytest.fixture
def stac_api(stac_api_server):
    """The session's STAC API server, with no storm left over from the test before."""
    stac_api_server.storm(0)
    yield stac_api_server
    stac_api_server.storm(0)
