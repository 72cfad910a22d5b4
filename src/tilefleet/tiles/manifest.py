"""CSV manifests of rasters to process: ``path,num_bands`` rows, as the COG crank's.

Accepted forms: no header (exactly two columns, as the crank writes them) or a header row
naming ``path`` and optionally ``num_bands`` (extra columns are ignored, so a failed.csv
with its ``reason`` column is itself a valid manifest). A UTF-8 BOM and blank lines are
tolerated; ``num_bands`` may be empty. A bad row becomes a row with an ``error``; only an
unreadable file is an error of the whole job.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from tilefleet.errors import JobError

MANIFEST_COLUMNS = ("path", "num_bands")


@dataclass(frozen=True)
class ManifestRow:
    """One data row: its 1-based line number, the original fields, and what they mean."""

    line: int
    path: str
    num_bands_text: str
    num_bands: int | None = None
    error: str | None = None

    @property
    def fields(self) -> dict[str, str]:
        """The row as the manifest gave it, for reports that must be manifests again."""
        return {"path": self.path, "num_bands": self.num_bands_text}


def parse_manifest(data: bytes, name: str = "manifest") -> list[ManifestRow]:
    """Parse manifest bytes into rows; raise :class:`JobError` if the file is unusable."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JobError(f"{name}: not a UTF-8 CSV file ({exc.reason} at byte {exc.start})") from exc
    records = [
        (number, fields) for number, fields in _records(text) if any(f.strip() for f in fields)
    ]
    if not records:
        raise JobError(f"{name}: manifest has no rows")
    first = [field.strip().lower() for field in records[0][1]]
    if "path" in first:
        return _rows_with_header(first, records[1:], name)
    return [_headerless_row(number, fields) for number, fields in records]


#: Longest path a row may hold; a longer one fails its row (not the whole manifest, as the
#: csv module's own field limit would).
MAX_PATH_CHARS = 4096
#: First characters that make a spreadsheet run a cell as a formula.
FORMULA_START = ("=", "+", "@")


def _records(text: str):
    # The csv module refuses a field past 128 KiB and stops reading: lift that, so one
    # absurd row fails alone (see MAX_PATH_CHARS).
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    # strict: a quote opened and never closed is an error, not the rest of the file read
    # silently as one field (every row after it lost).
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for fields in reader:
            yield reader.line_num, fields
    except csv.Error as exc:
        raise JobError(f"manifest is not valid CSV at line {reader.line_num}: {exc}") from exc


def _headerless_row(number: int, fields: list[str]) -> ManifestRow:
    if len(fields) != 2:
        raw = ",".join(fields)
        return ManifestRow(
            number,
            fields[0].strip() if fields else "",
            ",".join(fields[1:]),
            error=f"line {number}: expected 2 columns (path,num_bands), got {len(fields)}: {raw!r}",
        )
    return _row(number, fields[0], fields[1])


def _rows_with_header(header: list[str], records, name: str) -> list[ManifestRow]:
    path_at = header.index("path")
    bands_at = header.index("num_bands") if "num_bands" in header else None
    rows = []
    for number, fields in records:
        if len(fields) != len(header):
            rows.append(
                ManifestRow(
                    number,
                    fields[path_at].strip() if len(fields) > path_at else "",
                    fields[bands_at] if bands_at is not None and len(fields) > bands_at else "",
                    error=f"line {number}: expected {len(header)} columns as in the header, "
                    f"got {len(fields)}",
                )
            )
            continue
        rows.append(_row(number, fields[path_at], fields[bands_at] if bands_at is not None else ""))
    if not rows:
        raise JobError(f"{name}: manifest has a header but no rows")
    return rows


def _row(number: int, path: str, num_bands: str) -> ManifestRow:
    path, num_bands = path.strip(), num_bands.strip()
    if not path:
        return ManifestRow(number, path, num_bands, error=f"line {number}: empty path")
    if len(path) > MAX_PATH_CHARS:
        reason = f"line {number}: path of {len(path)} characters (at most {MAX_PATH_CHARS})"
        return ManifestRow(number, path[:MAX_PATH_CHARS], num_bands, error=reason)
    if path.startswith(FORMULA_START):
        reason = f"line {number}: path starts with {path[0]!r}, as a spreadsheet formula does"
        return ManifestRow(number, path, num_bands, error=reason)
    if not num_bands:
        return ManifestRow(number, path, num_bands)
    try:
        count = int(num_bands)
    except ValueError:
        count = 0
    if count < 1:
        return ManifestRow(
            number,
            path,
            num_bands,
            error=f"line {number}: num_bands {num_bands!r} is not a positive integer",
        )
    return ManifestRow(number, path, num_bands, num_bands=count)


def format_manifest(rows: list[dict[str, str]], extra: tuple[str, ...] = ()) -> str:
    """Rows (with ``path`` and ``num_bands``, plus any ``extra`` columns) as manifest CSV text."""
    return format_rows(rows, (*MANIFEST_COLUMNS, *extra), header=True)


def format_rows(rows: list[dict[str, str]], columns: tuple[str, ...], header: bool = False) -> str:
    """Rows as CSV text: as the crank writes manifests (no header, ``path,num_bands`` for
    cogify), or with a header naming the columns (a failed CSV, a valid manifest for a
    retry). No cell runs as a spreadsheet formula (:func:`spreadsheet_safe`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(columns)
    writer.writerows([spreadsheet_safe(row.get(column, "")) for column in columns] for row in rows)
    return out.getvalue()


#: How a cell starts that a spreadsheet would run as a formula.
FORMULA_STARTS = ("=", "+", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A cell as text a spreadsheet shows and never runs: one starting like a formula
    (``=``, ``+``, ``@``, a tab or a carriage return) gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def spreadsheet_safe_sql(column: str) -> str:
    """:func:`spreadsheet_safe` of a text ``column`` (or NULL) in SQLite's SQL, for cells
    that a report takes from SQL as they are."""
    starts = ", ".join(f"char({ord(c)})" for c in FORMULA_STARTS)
    quote = "''''"  # SQL's string of one quote
    return (
        f"CASE WHEN substr({column}, 1, 1) IN ({starts}) THEN {quote} || {column} ELSE {column} END"
    )
