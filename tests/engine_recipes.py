"""Recipes used to exercise the engine's retry and failure handling with real worker
processes. They do real (tiny) work: each writes its output and done marker to a real
destination; they fail on purpose a set number of times, counted with files so that the
count survives across worker processes."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tilefleet.errors import PermanentError, RetryableError
from tilefleet.recipes.base import Recipe
from tilefleet.recipes.params import RecipeParams
from tilefleet.store.objects import PARTIAL_MARK, open_store
from tilefleet.task import Task
from tilefleet.tiles.tile import Tile


class FlakyParams(RecipeParams):
    dest: str
    state_dir: str
    count: int = 4
    fail_times: int = 1
    mode: str = "retryable"  # retryable | permanent | crash | ok
    fail_ids: list[str] | None = None
    sleep_s: float = 0.0
    #: Give each task a tile record (1/10 degree boxes in rows of 10), as tiled recipes do.
    tile_records: bool = False


class FlakyRecipe(Recipe):
    name = "flaky"
    Params = FlakyParams
    default_task_s = 0.1
    source_columns = ("tile",)

    def plan(self, params: FlakyParams) -> list[Task]:
        shared = params.model_dump(exclude={"dest"})
        return [
            Task(
                f"t{i:03d}",
                "engine_recipes:FlakyRecipe",
                {**shared, "index": i, **(_tile_record(i) if params.tile_records else {})},
                params.dest,
                f"done/t{i:03d}.json",
                source={"tile": f"t{i:03d}"},
            )
            for i in range(params.count)
        ]

    def run(self, task: Task) -> dict[str, Any]:
        p = task.params
        state = Path(p["state_dir"])
        state.mkdir(parents=True, exist_ok=True)
        attempt = _count_attempt(state, task.id)
        time.sleep(p["sleep_s"])
        targeted = p["fail_ids"] is None or task.id in p["fail_ids"]
        if targeted and attempt <= p["fail_times"]:
            if p["mode"] == "retryable":
                raise RetryableError(f"throttled on attempt {attempt} (HTTP 503)")
            if p["mode"] == "permanent":
                raise PermanentError(f"bad input in {task.id}")
            if p["mode"] == "crash":
                # Dies without reporting, holding a temporary file as a converter would,
                # halfway through writing its output as a local store write does.
                handle, scratch = tempfile.mkstemp(prefix="flaky-")
                (state / f"{task.id}.{attempt}.tmp").write_text(scratch)
                out = Path(task.dest, "out")
                out.mkdir(parents=True, exist_ok=True)
                (out / f"{task.id}.txt{PARTIAL_MARK}{os.getpid()}-0dead000").write_bytes(b"hal")
                os._exit(17)
        store = open_store(task.dest)
        store.put_bytes(f"{task.id} value {p['index'] * 2}".encode(), f"out/{task.id}.txt")
        store.put_bytes(b"{}", task.marker)
        return {"attempt": attempt}


def _tile_record(index: int) -> dict[str, Any]:
    col, row = index % 10, index // 10
    west, south = 10 + col / 10, 45 + row / 10
    return {"tile": Tile(f"t{index:03d}", (west, south, west + 0.1, south + 0.1)).as_record()}


def _count_attempt(state: Path, task_id: str) -> int:
    for n in range(1, 1000):
        try:
            fd = os.open(state / f"{task_id}.{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.close(fd)
        return n
    raise RuntimeError("too many attempts")
