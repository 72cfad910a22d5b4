"""A cogify worker's start: what its modules import, and that what it no longer imports
(pystac, rio-stac) gave the same items."""

from __future__ import annotations

import subprocess
import sys

import pystac
import pytest
import rasterio
from rio_stac.stac import get_dataset_geom

from tilefleet.store.stac_item import COG_MEDIA_TYPE, STAC_VERSION, footprint

REAL = [
    "copernicus_dem/Copernicus_DSM_COG_10_N00_00_E006_00_DEM.tif",
    "copernicus_dem/Copernicus_DSM_COG_30_S90_00_W164_00_DEM.tif",
    "non_cog_multiband/L7_ETMs.tif",
    "non_cog_multiband/RGB.byte.tif",
    "s2_l2a_29RKH_20200219/B02.tif",
    "s2_l2a_29RKH_20200219/B11.tif",
]


def test_worker_modules_do_not_import_pystac_or_rio_stac():
    code = (
        "import sys; from tilefleet.engine.worker_process import worker_main; "
        "import tilefleet.engine.worker, tilefleet.recipes.cogify; "
        "print(sorted(m for m in ('pystac', 'rio_stac') if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_written_out_constants_are_pystacs():
    assert pystac.get_stac_version() == STAC_VERSION
    assert str(pystac.MediaType.COG) == COG_MEDIA_TYPE


@pytest.mark.parametrize("name", REAL)
def test_footprint_is_rio_stacs(data_dir, name):
    with rasterio.open(data_dir / name) as ds:
        expected = get_dataset_geom(ds, densify_pts=0, precision=-1)
        geometry, bbox = footprint(ds)
    assert geometry == expected["footprint"]
    assert bbox == expected["bbox"]
