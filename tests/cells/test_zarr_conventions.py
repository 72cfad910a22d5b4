"""The cells store of a real ATL06 granule as the ecosystem reads it: xarray opens it with
CF attributes on every variable and the group, cell ids and morton words as coordinates;
xdggs decodes the grid both from its own keys and from the Zarr DGGS convention; the
morton coordinate is mortie's."""

from __future__ import annotations

import mortie
import numpy as np
import pytest
import xarray as xr
import xdggs  # noqa: F401  (registers the .dggs accessor)

from tilefleet.engine.run import run_job
from tilefleet.jobs import build_job
from tilefleet.ops.cell_stats import STATISTICS


@pytest.fixture(scope="module")
def cells_dataset(tmp_path_factory, data_dir):
    from cells.granules import REAL_GRANULE

    granule = data_dir / REAL_GRANULE
    if not granule.is_file():
        pytest.skip(f"the real ATL06 granule is missing: {granule}")
    tmp = tmp_path_factory.mktemp("cells")
    store = tmp / "c.zarr"
    job = {"recipe": "cells", "granules": [str(granule)], "store": str(store)}
    result = run_job(build_job({**job, "run_dir": str(tmp / "run"), "workers": 1}))
    assert result.exit_code == 0, result.report
    return xr.open_zarr(str(store), group="12"), granule


def test_every_variable_and_the_group_carry_cf_attributes(cells_dataset):
    ds, granule = cells_dataset
    assert sorted(ds.data_vars) == sorted([*STATISTICS, "crs"])
    assert {"cell_ids", "morton"} <= set(ds.coords)  # coordinates, from the CF attribute
    for name in STATISTICS:
        attrs = ds[name].attrs
        assert attrs["units"] == {"count": "1", "h_variance": "m2"}.get(name, "m"), name
        assert attrs["long_name"] and attrs["grid_mapping"] == "crs", name
    assert ds["h_mean"].attrs["standard_name"] == "height_above_reference_ellipsoid"
    assert ds["h_sigma"].attrs["standard_name"].endswith(" standard_error")
    assert "standard_name" not in ds["h_variance"].attrs  # CF has no variance modifier
    assert ds["morton"].attrs["units"] == "1" and ds["morton"].attrs["long_name"]
    assert ds["crs"].attrs["grid_mapping_name"] == "healpix"
    assert ds["crs"].attrs["refinement_level"] == 12
    assert ds.attrs["Conventions"].startswith("CF-") and "ATL06" in ds.attrs["title"]
    assert ds.attrs["source"] and "tilefleet" in ds.attrs["history"]
    assert ds.attrs["source_granules"] == [str(granule.resolve())]  # provenance, as resolved


def test_xdggs_decodes_its_keys_and_the_zarr_dggs_convention(cells_dataset):
    ds, _ = cells_dataset
    for decoded in (ds.dggs.decode(), ds.dggs.decode(convention="zarr")):
        info = decoded.dggs.grid_info
        assert (info.level, info.indexing_scheme) == (12, "nested")
        assert decoded.dggs.coord.name == "cell_ids"
    centres = ds.dggs.decode().dggs.cell_centers()
    assert centres["latitude"].shape == (ds.sizes["cells"],)


def test_the_morton_coordinate_is_mortie_s(cells_dataset):
    ds, _ = cells_dataset
    cells = ds["cell_ids"].values.astype(np.uint64)
    order = 12
    theirs = mortie.norm2mort(cells & np.uint64(4**order - 1), cells >> np.uint64(2 * order), order)
    np.testing.assert_array_equal(ds["morton"].values, theirs)
    back, back_order = mortie.mort2healpix(ds["morton"].values)
    assert back_order == order
    np.testing.assert_array_equal(np.asarray(back).astype(np.uint64), cells)
