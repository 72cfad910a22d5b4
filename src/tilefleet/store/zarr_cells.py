"""A Zarr v3 store of statistics per HEALPix cell, written one parent cell (one chunk) per task.

Layout (group named by the child order, e.g. ``12``)::

    {store}/zarr.json                   root group, consolidated metadata
    {store}/12/cell_ids                 uint64 nested ids at the child order (xdggs attributes)
    {store}/12/morton                   uint64 morton words of the same cells (mortie >= 1.0)
    {store}/12/crs                      CF grid mapping (``grid_mapping_name: healpix``)
    {store}/12/count, h_min, …          one 1-D array per statistic, dimension ``cells``
    {store}/.tilefleet/done/{parent}.json   a task's done marker, written after its chunk

The store covers a fixed, sorted list of parent cells (the parents of the job's catalog,
recorded in the group's ``tilefleet`` attribute). Every array has ``len(parents) × 4^(child −
parent)`` cells, chunked ``4^(child − parent)``: chunk *i* holds the children of the *i*-th
parent in nested order, so a parent's chunk index is its position in the sorted list and
each task writes whole chunks that no other task touches (no locks, no read-modify-write).
A compact array rather than the whole sphere (201 M cells at order 12) keeps ``cell_ids``
small enough for xdggs to index; positions are not cell ids, so always read ``cell_ids``.

The template (metadata and ``cell_ids``, which only depend on the parents) is written once
before the tasks and its metadata consolidated at once: tasks write chunk data only, never
metadata, so the consolidated metadata stays true and no step after the run is needed.
Statistic chunks that no task wrote read as the fill value: count 0, NaN elsewhere.

Metadata, so that each tool finds what it looks for: CF attributes (``units``,
``long_name``, ``standard_name`` where CF has one, ``cell_methods``) on every variable;
global attributes (title, source, history, Conventions, and the source granules) on the
group; the grid described three ways: the xdggs-0.6 keys on ``cell_ids`` (its only
attributes, as xdggs 0.6 passes each one to the grid as an option) and the Zarr DGGS
convention (``zarr_conventions`` + ``dggs``) on the group, both decoded by xdggs, and a CF
``healpix`` grid mapping variable ``crs`` that the statistics name in ``grid_mapping``
(xdggs's CF decoder would also want ``standard_name: healpix_index`` on ``cell_ids``, which
the xdggs-0.6 keys leave out). Cells are computed from geodetic latitude used as a
spherical one (see :mod:`tilefleet.tiles.healpix`), so no ellipsoid is declared.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilefleet.ops.cell_stats import check_statistics, statistic_dtype, statistic_fill
from tilefleet.store.location import Location
from tilefleet.store.objects import open_store
from tilefleet.tiles import healpix

DONE_PREFIX = ".tilefleet/done"
ZSTD_LEVEL = 3
CF_CONVENTIONS = "CF-1.12"
DGGS_CONVENTION = {  # the Zarr DGGS convention v1, as xdggs declares and finds it
    "uuid": "7b255807-140c-42ca-97f6-7a1cfecdbc38",
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/dggs/refs/tags/v1/schema.json",
    "spec_url": "https://github.com/zarr-conventions/dggs/blob/v1/README.md",
    "name": "dggs",
    "description": "Discrete Global Grid Systems convention for zarr",
}
_HEIGHT = "height_above_reference_ellipsoid"
_HEIGHT_NAME = "ATL06 land ice height (h_li) above the WGS 84 ellipsoid"
# CF attributes of each statistic: units, long_name, standard_name (with CF's modifiers
# where one applies), cell_methods over the points of a cell.
STATISTIC_ATTRIBUTES: dict[str, dict[str, str]] = {
    "count": {
        "units": "1",
        "long_name": "number of quality-0 ATL06 land ice segments in the cell",
        "standard_name": f"{_HEIGHT} number_of_observations",
    },
    "h_min": {"long_name": f"minimum {_HEIGHT_NAME}", "cell_methods": "cells: minimum"},
    "h_max": {"long_name": f"maximum {_HEIGHT_NAME}", "cell_methods": "cells: maximum"},
    "h_mean": {
        "long_name": f"mean {_HEIGHT_NAME}, weighted by 1/h_li_sigma^2",
        "cell_methods": "cells: mean (weighted by inverse variance)",
    },
    "h_sigma": {
        "long_name": "standard error of h_mean: 1/sqrt(sum(1/h_li_sigma^2))",
        "standard_name": f"{_HEIGHT} standard_error",
    },
    "h_variance": {
        "units": "m2",
        "long_name": f"population variance of the {_HEIGHT_NAME} (unweighted)",
        "cell_methods": "cells: variance",
    },
    "h_q25": {"long_name": f"25th percentile of the {_HEIGHT_NAME}"},
    "h_q50": {"long_name": f"median {_HEIGHT_NAME}", "cell_methods": "cells: median"},
    "h_q75": {"long_name": f"75th percentile of the {_HEIGHT_NAME}"},
}
for _name, _attrs in STATISTIC_ATTRIBUTES.items():
    if _name != "count":
        _attrs.setdefault("units", "m")
        if _name != "h_variance":
            _attrs.setdefault("standard_name", _HEIGHT)


@dataclass(frozen=True)
class CellsLayout:
    """What a cells store holds: orders, the sorted parents it covers, the statistics."""

    parent_order: int
    child_order: int
    parents: tuple[int, ...]
    statistics: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.parent_order <= self.child_order <= healpix.MAX_ORDER:
            raise ValueError(
                f"need 0 <= parent order ({self.parent_order}) <= child order "
                f"({self.child_order}) <= {healpix.MAX_ORDER}"
            )
        if list(self.parents) != sorted(set(self.parents)):
            raise ValueError("parents must be sorted and unique")
        check_statistics(self.statistics)

    @property
    def group(self) -> str:
        return str(self.child_order)

    @property
    def chunk_cells(self) -> int:
        """Children per parent: the length of one chunk."""
        return 4 ** (self.child_order - self.parent_order)

    def chunk_index(self, parent: int) -> int:
        """Position of ``parent``'s chunk in every array."""
        index = int(np.searchsorted(self.parents, parent))
        if index >= len(self.parents) or self.parents[index] != parent:
            raise KeyError(f"cell {self.parent_order}/{parent} is not covered by this store")
        return index

    def attrs(self) -> dict[str, Any]:
        return {
            "parent_order": self.parent_order,
            "child_order": self.child_order,
            "parents": list(self.parents),
            "statistics": list(self.statistics),
        }


def done_marker(parent: int) -> str:
    """Key (below the store root) of the done marker of ``parent``'s task."""
    return f"{DONE_PREFIX}/{parent}.json"


def zarr_store(url: str, *, read_only: bool = False):
    """A zarr store object for a local path or an object-store URL (obstore underneath,
    credentials and endpoint from the environment)."""
    import zarr.storage

    location = Location.parse(url)
    if location.is_local:
        return zarr.storage.LocalStore(location.prefix, read_only=read_only)
    import os

    from obstore.store import from_url

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    options = {"allow_http": True} if endpoint.startswith("http://") else {}
    return zarr.storage.ObjectStore(
        from_url(location.url, client_options=options), read_only=read_only
    )


def ensure_template(url: str, layout: CellsLayout, granules: Sequence[str] = ()) -> bool:
    """Create the store's template unless an identical one exists; True if it was written.

    ``granules`` are the source granules, recorded as provenance. A store made for another
    layout (other parents, orders or statistics) is refused with a ValueError rather than
    overwritten: its chunks would land at the wrong positions.
    """
    import zarr

    store = zarr_store(url)
    existing = _existing_attrs(store, layout.group)
    if existing is not None:
        if existing != layout.attrs():
            raise ValueError(
                f"store {url} was made for another layout (parents, orders or statistics); "
                "write to a new store"
            )
        return False
    description = _global_attributes(granules)
    root = zarr.open_group(store, mode="w", zarr_format=3, attributes=description)
    group = root.create_group(
        layout.group,
        attributes={
            "tilefleet": layout.attrs(),
            **description,
            "source_granules": sorted(granules),
            "zarr_conventions": [DGGS_CONVENTION],
            "dggs": {
                "name": "healpix",
                "refinement_level": layout.child_order,
                "indexing_scheme": "nested",
                "spatial_dimension": "cells",
                "coordinate": "cell_ids",
                "compression": "none",
            },
        },
    )
    n_cells = len(layout.parents) * layout.chunk_cells
    common = {
        "shape": (n_cells,),
        "chunks": (max(layout.chunk_cells, 1),),
        "dimension_names": ("cells",),
        "compressors": zarr.codecs.ZstdCodec(level=ZSTD_LEVEL),
    }
    cell_ids = group.create_array(
        "cell_ids",
        dtype="uint64",
        fill_value=0,
        attributes={
            "grid_name": "healpix",
            "level": layout.child_order,
            "indexing_scheme": "nested",  # only these: xdggs 0.6 takes every key as a grid option
        },
        **common,
    )
    morton = group.create_array(
        "morton",
        dtype="uint64",
        fill_value=0,
        attributes={
            "long_name": f"morton index of the cell (mortie >= 1.0 packed word), order "
            f"{layout.child_order}",
            "units": "1",
        },
        **common,
    )
    group.create_array(  # CF grid mapping: a scalar whose attributes describe the grid
        "crs",
        shape=(),
        dtype="int8",
        fill_value=0,
        dimension_names=(),
        attributes={
            "grid_mapping_name": "healpix",
            "refinement_level": layout.child_order,
            "indexing_scheme": "nested",
        },
    )
    for name in layout.statistics:
        group.create_array(
            name,
            dtype=statistic_dtype(name),
            fill_value=statistic_fill(name),
            attributes={
                **STATISTIC_ATTRIBUTES[name],
                "coordinates": "cell_ids morton",
                "grid_mapping": "crs",
            },
            **common,
        )
    if layout.parents:
        parents = np.asarray(layout.parents, dtype=np.int64)
        ids = healpix.children(parents, layout.parent_order, layout.child_order)
        cell_ids[:] = ids.astype(np.uint64)
        morton[:] = healpix.nested_to_morton(ids, layout.child_order)
    with warnings.catch_warnings():  # "not yet part of the v3 spec": zarr-python reads it
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(store)  # last: a template without it is redone by next plan
    return True


def _global_attributes(granules: Sequence[str]) -> dict[str, str]:
    """CF global attributes of a store (title, source, history, Conventions)."""
    from datetime import UTC, datetime
    from importlib.metadata import PackageNotFoundError, version

    try:
        program = f"tilefleet {version('tilefleet')}"
    except PackageNotFoundError:  # a source tree that was never installed
        program = "tilefleet"
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "title": "ICESat-2 ATL06 land ice height statistics per HEALPix cell",
        "source": f"ICESat-2 ATL06 land ice height granules ({len(granules)}), quality 0",
        "history": f"{stamp}: template written by {program} (atl06-cells)",
        "Conventions": CF_CONVENTIONS,
    }


def _existing_attrs(store, group: str) -> dict[str, Any] | None:
    """The layout attributes of a complete template in ``store``, or None if there is none."""
    import zarr

    try:
        root = zarr.open_group(store, mode="r", use_consolidated=True)
    except (FileNotFoundError, ValueError, KeyError, zarr.errors.GroupNotFoundError):
        return None
    except Exception as exc:  # obstore's NotFoundError and zarr's metadata errors
        if "NotFound" in type(exc).__name__ or "Metadata" in type(exc).__name__:
            return None
        raise
    try:
        return dict(root[group].attrs["tilefleet"])
    except KeyError:
        return None


def write_parent(url: str, child_order: int, index: int, values: Mapping[str, np.ndarray]) -> int:
    """Write one parent's statistics (one array of its children per statistic) into chunk
    ``index`` of the group ``child_order``; returns the bytes of data written (uncompressed)."""
    import zarr

    group = zarr.open_group(zarr_store(url), path=str(child_order), mode="r+")
    written = 0
    for name, value in values.items():
        target = group[name]
        array = np.asarray(value, dtype=statistic_dtype(name))
        if array.shape != target.chunks:
            raise ValueError(f"{name}: expected {target.chunks[0]} values, got {array.shape}")
        target.set_block_selection((index,), array)
        written += array.nbytes
    return written


def write_done_marker(url: str, parent: int, record: Mapping[str, Any]) -> None:
    """Mark ``parent``'s task done (after its chunk is written): a small JSON."""
    body = json.dumps(dict(record), indent=1, sort_keys=True).encode()
    open_store(url).put_bytes(body, done_marker(parent))


def read_layout(url: str, group: str | int) -> CellsLayout:
    """The layout recorded in an existing store."""
    import zarr

    root = zarr.open_group(zarr_store(url, read_only=True), mode="r")
    attrs = root[str(group)].attrs["tilefleet"]
    return CellsLayout(
        attrs["parent_order"],
        attrs["child_order"],
        tuple(attrs["parents"]),
        tuple(attrs["statistics"]),
    )


def parents_tuple(parents: Sequence[int]) -> tuple[int, ...]:
    """Parents as the sorted, unique tuple a layout wants."""
    return tuple(sorted({int(p) for p in parents}))
