"""One patch's data cube as a Zarr v3 group: ``data`` (time × band × y × x) and ``valid``
(time × y × x), with the patch's pixel grid, band names and time labels as attributes.

The ML chain's steps pass patches to each other this way (``patch-data`` writes Sentinel-2
bands, ``features`` indices, ``reference`` labels). A cube is one chunk per time and band,
so a reader that needs one band reads only it. A cube is rewritten whole by its task; the
task's done marker, written after it, says it is complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tilefleet.errors import PermanentError
from tilefleet.store.location import Location
from tilefleet.store.zarr_cells import zarr_store

CUBE_SUFFIX = ".zarr"


@dataclass
class PatchCube:
    """A patch's cube in memory: values, valid flags, and what they mean."""

    data: np.ndarray  # (time, band, y, x)
    valid: np.ndarray  # (time, y, x) bool
    bands: list[str]
    times: list[str]
    epsg: int
    transform: tuple[float, ...]  # affine a, b, c, d, e, f of the pixel grid
    attrs: dict[str, Any]

    def __post_init__(self) -> None:
        t, b, y, x = self.data.shape
        if (t, b) != (len(self.times), len(self.bands)) or self.valid.shape != (t, y, x):
            raise ValueError(
                f"cube of shape {self.data.shape} (valid {self.valid.shape}) does not match "
                f"{len(self.times)} time(s) and bands {self.bands}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the pixel grid."""
        return self.data.shape[2], self.data.shape[3]

    def band(self, name: str) -> np.ndarray:
        """(time, y, x) values of one band."""
        return self.data[:, self.bands.index(name)]


def cube_key(tile_id: str) -> str:
    return f"{tile_id}{CUBE_SUFFIX}"


def write_cube(dest: str, tile_id: str, cube: PatchCube) -> int:
    """Write ``cube`` as ``{dest}/{tile_id}.zarr``, replacing any earlier one; bytes of pixels."""
    import zarr

    root = zarr.open_group(zarr_store(Location.parse(dest).join(cube_key(tile_id))), mode="w")
    root.attrs.update(
        {
            "bands": cube.bands,
            "times": cube.times,
            "epsg": cube.epsg,
            "transform": list(cube.transform),
            **cube.attrs,
        }
    )
    t, _b, y, x = cube.data.shape
    data = root.create_array(
        "data",
        shape=cube.data.shape,
        dtype=cube.data.dtype,
        chunks=(1, 1, y, x),
        dimension_names=("time", "band", "y", "x"),
        fill_value=0,
    )
    data[...] = cube.data
    valid = root.create_array(
        "valid",
        shape=cube.valid.shape,
        dtype=bool,
        chunks=(1, y, x),
        dimension_names=("time", "y", "x"),
        fill_value=False,
    )
    valid[...] = cube.valid
    return int(cube.data.nbytes + cube.valid.nbytes)


def read_cube(source: str, tile_id: str, *, what: str = "cube") -> PatchCube:
    """The cube of ``tile_id`` below ``source``; :class:`PermanentError` naming the tile and
    the folder when there is none (the step that writes it has not done that patch)."""
    import zarr
    from zarr.errors import ArrayNotFoundError, GroupNotFoundError, NodeNotFoundError

    url = Location.parse(source).join(cube_key(tile_id))
    try:
        root = zarr.open_group(zarr_store(url, read_only=True), mode="r")
        attrs = dict(root.attrs)
        data, valid = root["data"][...], root["valid"][...]
    except (
        ArrayNotFoundError,
        GroupNotFoundError,
        NodeNotFoundError,
        FileNotFoundError,
        KeyError,
    ) as exc:
        raise PermanentError(
            f"patch {tile_id}: no {what} at {url} ({type(exc).__name__})"
        ) from None
    known = ("bands", "times", "epsg", "transform")
    return PatchCube(
        data,
        valid.astype(bool),
        list(attrs["bands"]),
        list(attrs["times"]),
        int(attrs["epsg"]),
        tuple(attrs["transform"]),
        {k: v for k, v in attrs.items() if k not in known},
    )
