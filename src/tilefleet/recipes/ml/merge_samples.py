"""``merge-samples``: every patch's sample table into train and validation tables,
streamed: one patch table at a time, read batch by batch and written out in row groups of
``row_group_rows``, so memory stays bounded whatever the number of patches.

The work is cut into ``parts`` tasks (each takes the patch tables whose name hashes to
it; one listing of the samples folder each), so large runs merge on many workers and
none holds everything. Outputs: ``train/part-NNNNN.parquet`` and
``validation/part-NNNNN.parquet`` (a Parquet dataset each: read the folder), then the
part's marker ``parts/part-NNNNN.json``. The split is seeded per patch: by pixel (each
row drawn on its own) or by patch (whole patches held out, against spatial leakage).
"""

from __future__ import annotations

import zlib
from typing import Any, Literal

from pydantic import Field

from tilefleet.recipes.base import Recipe
from tilefleet.recipes.params import RecipeParams
from tilefleet.store.location import StoreURL
from tilefleet.task import Task

TABLES = ("train", "validation")
SAMPLE_SUFFIX = ".parquet"


class MergeSamplesParams(RecipeParams):
    path_fields = ("input", "dest")

    input: StoreURL = Field(description="Folder of the per-patch sample tables")
    dest: StoreURL = Field(description="Folder of the train and validation tables")
    validation_fraction: float = Field(
        0.2, ge=0, lt=1, description="Share of the samples held out for validation"
    )
    split_by: Literal["pixel", "patch"] = Field(
        "pixel", description="Hold out single pixels, or whole patches"
    )
    seed: int = Field(42, description="Seed of the split (with each patch id)")
    parts: int = Field(1, ge=1, le=100_000, description="Tasks to share the merge between")
    row_group_rows: int = Field(
        65_536, ge=1, description="Rows buffered per output row group (bounds memory)"
    )


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def part_of(key: str, parts: int) -> int:
    """The part a patch table (by its file name) belongs to."""
    return zlib.crc32(key.rsplit("/", 1)[-1].encode()) % parts


class MergeSamplesRecipe(Recipe):
    name = "merge-samples"
    summary = "All patch samples into train and validation Parquet tables, streamed."
    Params = MergeSamplesParams
    default_task_s = 5.0
    source_columns = ("part",)

    def plan(self, params: MergeSamplesParams) -> list[Task]:
        payload = params.model_dump(mode="json", exclude={"dest"})
        return [
            Task(
                part_name(i),
                self.name,
                {**payload, "index": i},
                str(params.dest),
                f"parts/{part_name(i)}.json",
                source={"part": part_name(i)},
            )
            for i in range(params.parts)
        ]

    def run(self, task: Task) -> dict[str, Any]:
        return merge_part(task)


def merge_part(task: Task) -> dict[str, Any]:
    """Stream this part's patch tables into its train and validation files."""
    import json
    import tempfile
    from pathlib import Path

    from tilefleet.errors import PermanentError
    from tilefleet.store.objects import open_store

    p = task.params
    source = open_store(p["input"])
    keys = sorted(
        info.key
        for info in source.list_dir("")
        if info.key.endswith(SAMPLE_SUFFIX) and part_of(info.key, p["parts"]) == p["index"]
    )
    if not keys and p["parts"] == 1:
        raise PermanentError(f"no sample table (*{SAMPLE_SUFFIX}) in {p['input']}")
    dest = open_store(task.dest)
    name = part_name(p["index"])
    with tempfile.TemporaryDirectory(prefix="tilefleet-") as tmp:
        sinks = {
            table: _RowGroupSink(Path(tmp) / f"{table}.parquet", p["row_group_rows"])
            for table in TABLES
        }
        try:
            for key in keys:
                _split_table(source, key, p, sinks)
        finally:
            for sink in sinks.values():
                sink.close()
        counts = {table: sink.rows for table, sink in sinks.items()}
        for table, sink in sinks.items():
            if sink.path.exists():
                dest.put_file(sink.path, f"{table}/{name}.parquet", move=True)
    record = {"part": name, "patches": len(keys), **counts}
    dest.put_bytes(json.dumps(record, indent=1).encode(), task.marker)
    return {
        "patches": len(keys),
        "train_rows": counts["train"],
        "validation_rows": counts["validation"],
    }


def _split_table(source, key: str, p: dict, sinks: dict) -> None:
    """Send the rows of one patch table, batch by batch, to the train or validation sink."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tilefleet.errors import PermanentError
    from tilefleet.ops.sampling import patch_rng

    tile_id = key.rsplit("/", 1)[-1].removesuffix(SAMPLE_SUFFIX)
    rng = patch_rng(p["seed"], tile_id)
    whole_patch_held_out = p["split_by"] == "patch" and rng.random() < p["validation_fraction"]
    path = source.gdal_path(key) if source.location.is_local else None
    try:
        reader = pq.ParquetFile(path if path else pa.BufferReader(source.get_bytes(key)))
        for batch in reader.iter_batches(batch_size=p["row_group_rows"]):
            if p["split_by"] == "patch":
                held_out = np.full(batch.num_rows, whole_patch_held_out)
            else:
                held_out = rng.random(batch.num_rows) < p["validation_fraction"]
            table = pa.Table.from_batches([batch])
            sinks["validation"].add(table.filter(pa.array(held_out)), key)
            sinks["train"].add(table.filter(pa.array(~held_out)), key)
    except (pa.ArrowInvalid, OSError) as exc:
        raise PermanentError(f"sample table {key}: unreadable: {exc}") from None


class _RowGroupSink:
    """A Parquet file written in row groups of ``rows_per_group``: at most that many rows
    are held before they are written."""

    def __init__(self, path, rows_per_group: int):
        self.path, self.rows_per_group = path, rows_per_group
        self.pending: list = []
        self.pending_rows = 0
        self.rows = 0
        self.writer = None
        self.schema = None

    def add(self, table, key: str) -> None:
        import pyarrow as pa

        from tilefleet.errors import PermanentError

        if self.schema is None:
            self.schema = table.schema
        elif table.schema != self.schema:
            try:
                table = table.select(self.schema.names).cast(self.schema)
            except (KeyError, ValueError, pa.ArrowInvalid) as exc:
                raise PermanentError(
                    f"sample table {key}: its columns differ from the first table's "
                    f"({', '.join(table.schema.names)} vs {', '.join(self.schema.names)}): {exc}"
                ) from None
        if table.num_rows:
            self.pending.append(table)
            self.pending_rows += table.num_rows
            if self.pending_rows >= self.rows_per_group:
                self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        self.writer.write_table(table, row_group_size=self.rows_per_group)
        self.rows += table.num_rows
        self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        if self.writer is not None:
            self.writer.close()
