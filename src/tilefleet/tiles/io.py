"""Tile lists on disk: write any grid's tiles as CSV, GeoJSON or GeoParquet; read CSV columns."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import shapely

from tilefleet.tiles.tile import TileCollection, TileInputError

OUTPUT_SUFFIXES = (".csv", ".geojson", ".parquet")


def output_format(path: str | Path) -> str:
    """The format (``csv``, ``geojson``, ``parquet``) named by ``path``'s extension.

    Check it before computing tiles, so that a typo fails at once.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise TileInputError(
            f"unknown output extension {suffix or '(none)'!r} for {path}; "
            f"use one of {', '.join(OUTPUT_SUFFIXES)}"
        )
    return suffix[1:]


def write_tiles(tiles: TileCollection, path: str | Path) -> Path:
    """Write ``tiles`` to ``path`` in the format its extension names; returns the path.

    CSV and parquet hold the grid's own columns (for TTC the tiles CSV ``Year,X,Y,Y_tile,X_tile``);
    GeoJSON and parquet add each tile's WGS84 footprint. The file appears whole or not at all.
    """
    path = Path(path)
    writer = _WRITERS[output_format(path)]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        writer(tiles, Path(temporary))
        # mkstemp makes the file private (0600); a tile list is shared like any file made
        # with open(): the mode the umask allows.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _table(tiles: TileCollection) -> pa.Table:
    return pa.table({name: _arrow_array(values) for name, values in tiles.columns().items()})


def _arrow_array(values: np.ndarray) -> pa.Array:
    """A numpy column (numeric, masked numeric, or str/bytes objects) as an Arrow array.

    Built from buffers because ``pa.array`` imports pandas, which costs more than the whole
    tile selection when the process is cold.
    """
    values = np.asarray(values) if not np.ma.isMaskedArray(values) else values
    if values.dtype.kind in "iuf":
        validity = None
        if np.ma.isMaskedArray(values):
            validity = pa.py_buffer(np.packbits(~np.ma.getmaskarray(values), bitorder="little"))
            values = values.filled(0)
        data = np.ascontiguousarray(values)
        arrow_type = pa.from_numpy_dtype(data.dtype)
        return pa.Array.from_buffers(arrow_type, len(data), [validity, pa.py_buffer(data)])
    items = values.tolist()
    is_bytes = bool(items) and isinstance(items[0], bytes)
    encoded = items if is_bytes else [str(item).encode() for item in items]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(item) for item in encoded], out=offsets[1:])
    arrow_type = pa.large_binary() if is_bytes else pa.large_string()
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(arrow_type, len(encoded), buffers)


def _write_csv(tiles: TileCollection, path: Path) -> None:
    import pyarrow.csv as pa_csv

    table = _table(tiles)
    with path.open("wb") as out:
        out.write((",".join(table.column_names) + "\n").encode())
        options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
        pa_csv.write_csv(table, out, options)


def _json_texts(values: np.ndarray) -> list[str]:
    """Each value of a column as JSON text (masked values as null)."""
    if np.ma.isMaskedArray(values) or values.dtype.kind not in "iuf":
        return [json.dumps(v) for v in values.tolist()]
    return [repr(v) if values.dtype.kind == "f" else str(v) for v in values.tolist()]


def _write_geojson(tiles: TileCollection, path: Path) -> None:
    """A FeatureCollection: one feature per tile, id = tile id, properties = the columns."""
    columns = tiles.columns()
    keys = [json.dumps(name) for name in columns]
    texts = [_json_texts(values) for values in columns.values()]
    geometries = shapely.to_geojson(shapely.orient_polygons(tiles.footprints()))
    with path.open("w", encoding="utf-8") as out:
        out.write('{"type":"FeatureCollection","features":[')
        rows = zip(tiles.ids(), geometries, *texts, strict=True)
        for i, (tile_id, geometry, *row) in enumerate(rows):
            properties = ",".join(f"{k}:{v}" for k, v in zip(keys, row, strict=True))
            out.write(
                f'{"," if i else ""}\n{{"type":"Feature","id":{json.dumps(tile_id)},'
                f'"properties":{{{properties}}},"geometry":{geometry}}}'
            )
        out.write("\n]}\n")


def _write_parquet(tiles: TileCollection, path: Path) -> None:
    """GeoParquet 1.1: the tile ``id``, the grid's columns and a WKB ``geometry`` column in
    OGC:CRS84."""
    import pyarrow.parquet as pq

    footprints = tiles.footprints()
    table = _table(tiles).append_column("geometry", _arrow_array(shapely.to_wkb(footprints)))
    if "id" not in table.column_names:  # the tile id, as GeoJSON's feature id
        ids = np.array(list(tiles.ids()), dtype=object)
        table = table.add_column(0, "id", _arrow_array(ids))
    bbox = list(shapely.total_bounds(footprints)) if len(footprints) else []
    kinds = sorted({g.geom_type for g in footprints})
    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "geometry_types": kinds, "bbox": bbox}},
    }
    table = table.replace_schema_metadata({"geo": json.dumps(geo)})
    pq.write_table(table, path)


_WRITERS: dict[str, Callable[[TileCollection, Path], None]] = {
    "csv": _write_csv,
    "geojson": _write_geojson,
    "parquet": _write_parquet,
}


def read_csv_columns(
    path: str | Path, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, list[str]]:
    """The named columns of a CSV file as lists of stripped strings, matched by header name.

    Matching by name (not position) matters: hand-made tile lists swap columns. Missing
    required columns, a missing file or an empty file raise ``TileInputError``.
    """
    path = Path(path)
    if not path.is_file():
        raise TileInputError(f"CSV file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TileInputError(f"cannot read CSV file {path}: {exc}") from exc
    if not rows:
        raise TileInputError(f"CSV file {path} is empty")
    header = [name.strip() for name in rows[0]]
    missing = [name for name in required if name not in header]
    if missing:
        raise TileInputError(
            f"CSV file {path} lacks column(s) {', '.join(missing)} (has: {', '.join(header)})"
        )
    body = [row for row in rows[1:] if any(cell.strip() for cell in row)]
    columns: dict[str, list[str]] = {}
    for name in (*required, *optional):
        if name in header:
            index = header.index(name)
            columns[name] = [row[index].strip() if index < len(row) else "" for row in body]
    return columns
