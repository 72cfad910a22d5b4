"""The TTC grid: 1/18-degree tiles whose centres come from a tile database parquet.

The database (columns ``X``, ``Y`` = tile-centre lon/lat, ``X_tile``, ``Y_tile``) is the
authority: centres drift from any formula by up to 0.2 tile, so they are never recomputed.
A tile is its centre +- 1/36 degree and is named ``{X_tile}X{Y_tile}Y``. Selections stay
columnar (numpy arrays over database rows); ``Tile`` objects are made only on request.

A selection that holds the same tile in several years (a request JSON over two years)
names each ``Tile`` ``{year}/{X_tile}X{Y_tile}Y``, so that one task per tile and year never
shares its id with another. A tiles CSV may carry a ``product`` column (as the ``failed.csv``
of a ``ttc-ard`` run does): it is kept per row, for recipes that make several products of
a tile to plan only those.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import shapely
from pydantic import Field
from shapely.geometry.base import BaseGeometry

from tilefleet.fields import Cli
from tilefleet.tiles.aoi import normalize_longitudes, parse_bbox, read_aoi
from tilefleet.tiles.grid import Grid
from tilefleet.tiles.io import read_csv_columns
from tilefleet.tiles.tile import Tile, TileInputError

TILE_SIZE = 1 / 18
TILE_HALF_SIZE = 1 / 36
TILE_ID_PATTERN = re.compile(r"^\s*(-?\d+)X(-?\d+)Y\s*$")
TILES_CSV_COLUMNS = ("Year", "X", "Y", "Y_tile", "X_tile")
PRODUCT_COLUMN = "product"
# Products of one row: "dem", "dem;s2" (what tiles CSVs written here hold), "dem,s2" quoted.
_PRODUCT_SEPARATORS = re.compile(r"[;,\s]+")
DATABASE_COLUMNS = ("X", "Y", "X_tile", "Y_tile")

# A tiles CSV whose X/Y differ from the database by more than this (degrees) is suspect.
_CENTRE_MISMATCH = 1e-3
# Warnings that list ids show at most this many examples.
_EXAMPLES = 5
# Tiles are made from this many rows at a time.
_TILE_BLOCK = 10_000
# Area selection: the finest blocks tested as a whole before single tiles are 2**2 tiles wide.
_FINEST_BLOCK_LEVEL = 2


def format_tile_id(x_tile: int, y_tile: int) -> str:
    """``{X_tile}X{Y_tile}Y``, e.g. ``1035X727Y``."""
    return f"{x_tile}X{y_tile}Y"


def parse_tile_id(text: str) -> tuple[int, int]:
    """``(X_tile, Y_tile)`` of an id such as ``" 1035X727Y"``; ``TileInputError`` if malformed."""
    match = TILE_ID_PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise TileInputError(f"not a TTC tile id: {text!r}")
    return int(match.group(1)), int(match.group(2))


def _examples(items: Sequence[Any]) -> str:
    shown = ", ".join(str(i) for i in items[:_EXAMPLES])
    return shown + (", ..." if len(items) > _EXAMPLES else "")


class TileDatabase:
    """The tile database, read once per file (only the four needed columns) and kept."""

    _cache: dict[tuple[str, int, int], TileDatabase] = {}

    def __init__(
        self, x: np.ndarray, y: np.ndarray, x_tile: np.ndarray, y_tile: np.ndarray, source: str = ""
    ):
        self.x, self.y = x, y
        self.x_tile, self.y_tile = x_tile, y_tile
        self.source = source
        self._sorted_keys: tuple[np.ndarray, np.ndarray] | None = None
        self._bands: tuple[np.ndarray, ...] | bool | None = None

    @classmethod
    def open(cls, path: str | Path) -> TileDatabase:
        """The database in ``path``; a second call for an unchanged file reuses the first read."""
        path = Path(path)
        try:
            stat = path.stat()
        except OSError as exc:
            raise TileInputError(f"tile database not found: {path}") from exc
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key not in cls._cache:
            cls._cache.clear()  # one database per process is the normal case; keep memory flat
            cls._cache[key] = cls.read(path)
        return cls._cache[key]

    @classmethod
    def read(cls, path: str | Path) -> TileDatabase:
        """Read the database in ``path`` (only the four columns it needs), bypassing the cache."""
        import pyarrow.parquet as pq  # ParquetFile avoids pyarrow.dataset's ~1 s import

        path = Path(path)
        if not path.is_file():
            raise TileInputError(f"tile database not found: {path}")
        try:
            table = pq.ParquetFile(path).read(columns=list(DATABASE_COLUMNS))
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise TileInputError(f"cannot read tile database {path}: {exc}") from exc
        missing = [c for c in DATABASE_COLUMNS if c not in table.column_names]
        if missing:
            raise TileInputError(f"tile database {path} lacks column(s) {', '.join(missing)}")
        if any(table.column(c).null_count for c in table.column_names):
            raise TileInputError(f"tile database {path} has empty X/Y/X_tile/Y_tile values")
        return cls(
            _numpy_column(table, "X", pa.float64()),
            _numpy_column(table, "Y", pa.float64()),
            _numpy_column(table, "X_tile", pa.int64()),
            _numpy_column(table, "Y_tile", pa.int64()),
            source=str(path),
        )

    def __len__(self) -> int:
        return len(self.x)

    def rows_in_bbox(self, bbox: Sequence[float] | str) -> np.ndarray:
        """Rows whose tile square intersects a lon/lat bbox (``west > east`` crosses 180)."""
        west, south, east, north = parse_bbox(bbox)
        if west < east:
            return self._rows_near(west, south, east, north)
        return np.union1d(
            self._rows_near(west, south, 180.0, north), self._rows_near(-180.0, south, east, north)
        )

    def _rows_near(self, minx: float, miny: float, maxx: float, maxy: float) -> np.ndarray:
        """Rows whose tile square meets the box ``minx..maxx, miny..maxy``, in database order."""
        h = TILE_HALF_SIZE
        start, stop = self._latitude_rows(miny - h, maxy + h)
        x, y = self.x[start:stop], self.y[start:stop]
        near = (x + h >= minx) & (x - h <= maxx) & (y + h >= miny) & (y - h <= maxy)
        return start + np.flatnonzero(near)

    def _latitude_rows(self, south: float, north: float) -> tuple[int, int]:
        """A row range holding every tile centred between ``south`` and ``north``.

        The database is stored row by row of tiles (``Y_tile`` ascending), so a latitude band
        is a contiguous slice: scanning it instead of all 2.9M rows is most of the speed of
        small selections. Any other order falls back to the whole table.
        """
        if self._bands is None:
            self._bands = _latitude_bands(self.y_tile, self.y)
        if self._bands is False:
            return 0, len(self.y)
        starts, stops, lowest, highest = self._bands
        overlapping = np.flatnonzero((highest >= south) & (lowest <= north))
        if overlapping.size == 0:
            return 0, 0
        return int(starts[overlapping[0]]), int(stops[overlapping[-1]])

    def rows_in_area(self, area: BaseGeometry) -> np.ndarray:
        """Rows whose tile square intersects ``area`` (lon/lat), in database order.

        Tiles are grouped in square blocks, coarse to fine: a block (grown by half a tile) that
        misses the area drops its tiles, one inside the area's interior takes them all, and
        only tiles in blocks along the area's edge get an exact square-vs-area test.
        """
        if area.is_empty:
            raise TileInputError("the AOI is empty")
        area = normalize_longitudes(area)
        minx, miny, maxx, maxy = area.bounds
        h = TILE_HALF_SIZE
        undecided = self._rows_near(minx, miny, maxx, maxy)
        shapely.prepare(area)
        accepted = [np.empty(0, dtype=np.int64)]
        extent_tiles = max(maxx - minx, maxy - miny) / TILE_SIZE
        level = max(int(math.log2(max(extent_tiles, 1) / 4)), _FINEST_BLOCK_LEVEL)
        while level >= _FINEST_BLOCK_LEVEL and undecided.size:
            inside, undecided = self._classify_blocks(area, undecided, (minx, miny), 2**level)
            accepted.append(inside)
            level -= 1
        # Along the edge: a tile whose centre is inside intersects; the rest need their square.
        centre_inside = shapely.contains_xy(area, self.x[undecided], self.y[undecided])
        accepted.append(undecided[centre_inside])
        undecided = undecided[~centre_inside]
        x, y = self.x[undecided], self.y[undecided]
        squares = shapely.box(x - h, y - h, x + h, y + h)
        accepted.append(undecided[shapely.intersects(area, squares)])
        return np.sort(np.concatenate(accepted))

    def _classify_blocks(
        self, area: BaseGeometry, rows: np.ndarray, origin: tuple[float, float], block_tiles: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows whose block lies inside ``area``, rows whose block straddles its edge)."""
        block = block_tiles * TILE_SIZE
        bx = np.floor((self.x[rows] - origin[0]) / block).astype(np.int64)
        by = np.floor((self.y[rows] - origin[1]) / block).astype(np.int64)
        bx0, by0 = bx.min(), by.min()
        height = by.max() - by0 + 1
        keys = (bx - bx0) * height + (by - by0)
        blocks = np.flatnonzero(np.bincount(keys))  # the occupied blocks, without a sort
        x0 = origin[0] + (blocks // height + bx0) * block
        y0 = origin[1] + (blocks % height + by0) * block
        # A tile belongs to the block holding its centre, so its square reaches half a tile out.
        pad = TILE_HALF_SIZE + 1e-9
        boxes = shapely.box(x0 - pad, y0 - pad, x0 + block + pad, y0 + block + pad)
        touches = shapely.intersects(area, boxes)
        inside = np.zeros(len(blocks), dtype=bool)
        inside[touches] = shapely.contains_properly(area, boxes[touches])
        verdict = np.zeros(blocks[-1] + 1, dtype=np.int8)  # 0 outside, 1 inside, 2 edge
        verdict[blocks[inside]] = 1
        verdict[blocks[touches & ~inside]] = 2
        of_row = verdict[keys]
        return rows[of_row == 1], rows[of_row == 2]

    def rows_of(self, x_tile: np.ndarray, y_tile: np.ndarray) -> np.ndarray:
        """Database rows of (X_tile, Y_tile) pairs; -1 where the database has no such tile."""
        if self._sorted_keys is None:
            keys = _pair_keys(self.x_tile, self.y_tile)
            order = np.argsort(keys, kind="stable")
            self._sorted_keys = (keys[order], order)
        sorted_keys, order = self._sorted_keys
        wanted = _pair_keys(np.asarray(x_tile, np.int64), np.asarray(y_tile, np.int64))
        pos = np.clip(np.searchsorted(sorted_keys, wanted), 0, len(sorted_keys) - 1)
        found = sorted_keys[pos] == wanted
        return np.where(found, order[pos], -1)

    def take(
        self,
        rows: np.ndarray,
        years: np.ndarray | None = None,
        warnings: Sequence[str] = (),
        products: np.ndarray | None = None,
    ) -> TtcTileSet:
        """The tiles at ``rows`` (with a year and products per row, if given) as a tile set."""
        return TtcTileSet(
            x=self.x[rows],
            y=self.y[rows],
            x_tile=self.x_tile[rows],
            y_tile=self.y_tile[rows],
            years=years,
            warnings=tuple(warnings),
            products=products,
        )


def _latitude_bands(y_tile: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...] | bool:
    """(first row, end row, lowest y, highest y) of each run of equal ``Y_tile``; False
    when the rows are not ordered by ``Y_tile``."""
    if len(y_tile) == 0 or np.any(y_tile[1:] < y_tile[:-1]):
        return False
    starts = np.concatenate([[0], np.flatnonzero(y_tile[1:] != y_tile[:-1]) + 1])
    stops = np.append(starts[1:], len(y_tile))
    return starts, stops, np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)


def _numpy_column(table: pa.Table, name: str, arrow_type: pa.DataType) -> np.ndarray:
    """A null-free numeric column as numpy, read off its Arrow buffer.

    ``to_numpy`` would do, but it imports pandas (over a second when uncached).
    """
    try:
        column = table.column(name).combine_chunks().cast(arrow_type)
    except pa.ArrowInvalid as exc:
        raise TileInputError(f"tile database column {name} is not {arrow_type}: {exc}") from exc
    dtype = np.dtype(arrow_type.to_pandas_dtype())
    return np.frombuffer(
        column.buffers()[1], dtype=dtype, count=len(column), offset=column.offset * dtype.itemsize
    )


def _pair_keys(x_tile: np.ndarray, y_tile: np.ndarray) -> np.ndarray:
    # Tile indices are small non-negative ids; 2**31 keeps negatives from colliding too.
    return (x_tile.astype(np.int64) << 32) + (y_tile.astype(np.int64) + (1 << 31))


@dataclass(frozen=True)
class TtcTileSet:
    """TTC tiles as columns; one row per (tile, year) when years are known.

    ``products``, when a tiles CSV named them, holds per row the products wanted of that
    tile and year, separated by ``;`` (empty: all of them).
    """

    x: np.ndarray
    y: np.ndarray
    x_tile: np.ndarray
    y_tile: np.ndarray
    years: np.ndarray | None = None
    warnings: tuple[str, ...] = field(default=())
    products: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def ids(self) -> list[str]:
        return [
            format_tile_id(x, y)
            for x, y in zip(self.x_tile.tolist(), self.y_tile.tolist(), strict=True)
        ]

    def bounds(self) -> np.ndarray:
        """(n, 4) lon/lat bounds: centre +- 1/36 degree."""
        h = TILE_HALF_SIZE
        return np.column_stack([self.x - h, self.y - h, self.x + h, self.y + h])

    def columns(self) -> dict[str, np.ndarray]:
        """The tiles CSV columns ``Year,X,Y,Y_tile,X_tile`` (Year empty when unknown), with
        ``product`` first when the tiles name products."""
        years = self.years if self.years is not None else np.ma.masked_all(len(self), np.int64)
        values = (years, self.x, self.y, self.y_tile, self.x_tile)
        columns = dict(zip(TILES_CSV_COLUMNS, values, strict=True))
        if self.products is None:
            return columns
        return {PRODUCT_COLUMN: self.products, **columns}

    def spans_years(self) -> bool:
        """Whether the set holds more than one year (its tiles' ids then name the year)."""
        return self.years is not None and len(np.unique(self.years)) > 1

    def footprints(self) -> np.ndarray:
        return shapely.box(*self.bounds().T)

    def tiles(self) -> Iterator[Tile]:
        # A block of rows at a time: the whole database is millions of tiles, and its
        # columns as Python objects would be gigabytes.
        with_year = self.spans_years()
        for start in range(0, len(self), _TILE_BLOCK):
            block = slice(start, start + _TILE_BLOCK)
            yield from self._block_tiles(block, with_year)

    def _block_tiles(self, block: slice, with_year: bool) -> Iterator[Tile]:
        part = TtcTileSet(self.x[block], self.y[block], self.x_tile[block], self.y_tile[block])
        size = len(part)
        years = self.years[block].tolist() if self.years is not None else [None] * size
        products = self.products[block].tolist() if self.products is not None else [None] * size
        rows = zip(
            part.ids(),
            part.bounds().tolist(),
            part.x_tile.tolist(),
            part.y_tile.tolist(),
            part.x.tolist(),
            part.y.tolist(),
            years,
            products,
            strict=True,
        )
        for tile_id, bounds, x_tile, y_tile, x, y, year, product in rows:
            attrs = {"X_tile": x_tile, "Y_tile": y_tile, "X": x, "Y": y}
            if year is not None:
                attrs["year"] = year
            if product:
                attrs[PRODUCT_COLUMN] = product
            name = f"{year}/{tile_id}" if with_year else tile_id
            yield Tile(name, tuple(bounds), attrs=attrs)

    def with_year(self, year: int | None) -> TtcTileSet:
        """All rows given ``year`` (area selections have none of their own)."""
        if year is None:
            return self
        years = np.full(len(self), year, dtype=np.int64)
        return TtcTileSet(
            self.x, self.y, self.x_tile, self.y_tile, years, self.warnings, self.products
        )


def _database(tiledb: TileDatabase | str | Path) -> TileDatabase:
    return tiledb if isinstance(tiledb, TileDatabase) else TileDatabase.open(tiledb)


def ttc_tiles_in_bbox(
    tiledb: TileDatabase | str | Path, bbox: Sequence[float] | str, year: int | None = None
) -> TtcTileSet:
    """Tiles whose square intersects a lon/lat bbox ``(W, S, E, N)``."""
    database = _database(tiledb)
    return database.take(database.rows_in_bbox(bbox)).with_year(year)


def ttc_tiles_in_aoi(
    tiledb: TileDatabase | str | Path, aoi: BaseGeometry, year: int | None = None
) -> TtcTileSet:
    """Tiles whose square intersects ``aoi`` (a lon/lat geometry, e.g. from ``read_aoi``)."""
    database = _database(tiledb)
    return database.take(database.rows_in_area(aoi)).with_year(year)


def ttc_tiles_from_request(
    tiledb: TileDatabase | str | Path,
    request: str | Path | Mapping[str, Any],
    year: int | None = None,
) -> TtcTileSet:
    """Tiles named in a request ``{project: {"YYYY": {"missing_tiles": [ids]}}}``.

    (year, tile) pairs are de-duplicated across projects. Year keys that are not integers,
    ids that do not parse and ids missing from the database become warnings; a request left
    with no tile at all is a ``TileInputError``. ``year`` keeps only that year.
    """
    document, name = _load_request(request)
    pairs, warnings = _request_pairs(document, name)
    if year is not None:
        pairs = {p for p in pairs if p[0] == year}
    if not pairs:
        suffix = f" for year {year}" if year is not None else ""
        raise TileInputError(f"request {name} has no valid tile ids{suffix}")
    years, x_tile, y_tile = (np.array(c, dtype=np.int64) for c in zip(*sorted(pairs), strict=True))
    database = _database(tiledb)
    rows = _rows_in_database(database, x_tile, y_tile, warnings, f"request {name}")
    found = rows >= 0
    return database.take(rows[found], years[found], warnings)


def _load_request(request: str | Path | Mapping[str, Any]) -> tuple[Any, str]:
    if isinstance(request, Mapping):
        return request, "(in memory)"
    path = Path(request)
    if not path.is_file():
        raise TileInputError(f"request file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig")), str(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TileInputError(f"request file {path} is not readable JSON: {exc}") from exc


def _request_pairs(document: Any, name: str) -> tuple[set[tuple[int, int, int]], list[str]]:
    if not isinstance(document, Mapping):
        raise TileInputError(f"request {name} must be a JSON object of projects")
    pairs: set[tuple[int, int, int]] = set()
    warnings: list[str] = []
    bad_ids: list[str] = []
    for project, years in document.items():
        if not isinstance(years, Mapping):
            warnings.append(f"project {project}: expected an object of years, skipped")
            continue
        for year_key, entry in years.items():
            try:
                year = int(str(year_key).strip())
            except ValueError:
                warnings.append(f"project {project}: year {year_key!r} is not an integer, skipped")
                continue
            ids = entry.get("missing_tiles") if isinstance(entry, Mapping) else None
            if not isinstance(ids, list):
                warnings.append(f"project {project}, year {year}: no 'missing_tiles' list, skipped")
                continue
            for tile_id in ids:
                try:
                    pairs.add((year, *parse_tile_id(tile_id)))
                except TileInputError:
                    bad_ids.append(repr(tile_id))
    if bad_ids:
        warnings.append(f"{len(bad_ids)} tile ids do not parse, skipped: {_examples(bad_ids)}")
    return pairs, warnings


def _rows_in_database(
    database: TileDatabase, x_tile: np.ndarray, y_tile: np.ndarray, warnings: list[str], name: str
) -> np.ndarray:
    """Database rows of the given tiles, -1 for those it lacks (reported in ``warnings``)."""
    rows = database.rows_of(x_tile, y_tile)
    lost = rows < 0
    if lost.any():
        pairs = zip(x_tile[lost].tolist(), y_tile[lost].tolist(), strict=True)
        ids = [format_tile_id(x, y) for x, y in pairs]
        warnings.append(
            f"{len(ids)} tile ids are not in the tile database, skipped: {_examples(ids)}"
        )
    if lost.all():
        raise TileInputError(f"{name}: none of its {len(rows)} tiles is in the tile database")
    return rows


def ttc_tiles_from_csv(
    tiledb: TileDatabase | str | Path, path: str | Path, year: int | None = None
) -> TtcTileSet:
    """Tiles listed in a tiles CSV (``Year,X,Y,Y_tile,X_tile``, columns matched by name).

    ``X_tile`` and ``Y_tile`` are required, ``Year`` and ``product`` are optional, other
    columns (the ``reason`` of a ``failed.csv``) are ignored; repeated rows count once
    (their products joined; a row without a product wants them all).
    Centres come from the database; rows whose X/Y disagree with it are reported, since
    swapped columns are a known pitfall of hand-made files. ``year`` keeps only that year
    (or gives it to every row when the file has no Year column).
    """
    columns = read_csv_columns(
        path, required=("X_tile", "Y_tile"), optional=("Year", "X", "Y", PRODUCT_COLUMN)
    )
    name = f"tiles CSV {path}"
    has_year = "Year" in columns
    year_text = columns["Year"] if has_year else ["0"] * len(columns["X_tile"])
    product_text = columns.get(PRODUCT_COLUMN)
    keys: dict[tuple[int, int, int], int] = {}  # (year, X_tile, Y_tile) -> first line index
    wanted: dict[tuple[int, int, int], set[str] | None] = {}  # None: every product
    bad_lines: list[int] = []
    for i, texts in enumerate(zip(year_text, columns["X_tile"], columns["Y_tile"], strict=True)):
        try:
            key = tuple(int(t) for t in texts)
        except ValueError:
            bad_lines.append(i + 2)  # the header is line 1
            continue
        if year is None or not has_year or key[0] == year:
            keys.setdefault(key, i)
            if product_text is not None:
                _add_products(wanted, key, product_text[i])
    warnings: list[str] = []
    if bad_lines:
        warnings.append(
            f"{len(bad_lines)} rows have no integer Year/X_tile/Y_tile, skipped: "
            f"lines {_examples(bad_lines)}"
        )
    if not keys:
        raise TileInputError(
            f"{name} has no valid rows" + (f" for year {year}" if year is not None else "")
        )
    years, x_tile, y_tile = (np.array(c, dtype=np.int64) for c in zip(*keys, strict=True))
    database = _database(tiledb)
    rows = _rows_in_database(database, x_tile, y_tile, warnings, name)
    found = rows >= 0
    if "X" in columns and "Y" in columns:
        lines = np.array(list(keys.values()))[found]
        _warn_on_centre_mismatch(database, rows[found], columns["X"], columns["Y"], lines, warnings)
    products = None
    if product_text is not None:
        texts = [";".join(sorted(wanted[key])) if wanted[key] else "" for key in keys]
        products = np.array(texts, dtype=object)[found]
    if not has_year:
        return database.take(rows[found], warnings=warnings, products=products).with_year(year)
    return database.take(rows[found], years[found], warnings, products)


def _add_products(
    wanted: dict[tuple[int, int, int], set[str] | None], key: tuple[int, int, int], text: str
) -> None:
    """Join the products of a row into those of its tile and year (empty text: all)."""
    names = set(_PRODUCT_SEPARATORS.split(text.strip())) - {""}
    if key in wanted and wanted[key] is None:
        return
    wanted[key] = None if not names else (wanted.get(key) or set()) | names


def _warn_on_centre_mismatch(
    database: TileDatabase,
    rows: np.ndarray,
    x_text: list[str],
    y_text: list[str],
    lines: np.ndarray,
    warnings: list[str],
) -> None:
    x = np.array([_float_or_nan(x_text[i]) for i in lines])
    y = np.array([_float_or_nan(y_text[i]) for i in lines])
    close = (np.abs(x - database.x[rows]) <= _CENTRE_MISMATCH) & (
        np.abs(y - database.y[rows]) <= _CENTRE_MISMATCH
    )
    if not close.all():
        pairs = zip(database.x_tile[rows[~close]], database.y_tile[rows[~close]], strict=True)
        examples = [format_tile_id(a, b) for a, b in pairs]
        warnings.append(
            f"{len(examples)} rows have X/Y that differ from the tile database (its centres "
            f"are used; are X_tile and Y_tile swapped?): {_examples(examples)}"
        )


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


class TtcGrid(Grid):
    """TTC tiles (1/18 degree, ids like 1035X727Y) for one of bbox, aoi, request, tiles."""

    area_fields: ClassVar[tuple[str, ...]] = ("bbox", "aoi", "request", "tiles")

    grid: Annotated[Literal["ttc"], Cli(hidden=True)] = "ttc"
    tiledb: Path = Field(description="TTC tile database parquet.")
    request: Path | None = Field(
        default=None,
        description='Request JSON {project: {"YYYY": {"missing_tiles": [...]}}}.',
    )
    tiles: Path | None = Field(
        default=None, description="Tiles CSV (Year,X,Y,Y_tile,X_tile; product optional)."
    )
    year: int | None = Field(
        default=None,
        ge=1900,
        le=2200,
        description="Year of area tiles; with request or tiles, keep only that year.",
    )

    def select(self) -> TtcTileSet:
        database = TileDatabase.open(self.tiledb)
        if self.bbox is not None:
            return ttc_tiles_in_bbox(database, self.bbox, self.year)
        if self.aoi is not None:
            return ttc_tiles_in_aoi(database, read_aoi(self.aoi), self.year)
        if self.request is not None:
            return ttc_tiles_from_request(database, self.request, self.year)
        return ttc_tiles_from_csv(database, self.tiles, self.year)
