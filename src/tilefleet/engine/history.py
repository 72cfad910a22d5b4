"""Durations of earlier runs, per recipe, to estimate the next one: seconds per task, and
seconds per unit of work where the recipe says how big its tasks are (input bytes,
pixels), so that small files never predict big ones.

Kept in a small SQLite file shared by all runs of a user (``$TILEFLEET_HISTORY``, default
``~/.local/state/tilefleet/history.sqlite``); only the most recent durations are kept.
A recipe whose tasks come in kinds (``Recipe.task_kind``: the products of ``ttc-ard``)
keeps them per kind, under ``{recipe}:{kind}``, so that a DEM tile never predicts a
Sentinel-2 one.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from collections.abc import Iterable
from pathlib import Path

KEEP_PER_RECIPE = 2000


def history_path() -> Path:
    if env := os.environ.get("TILEFLEET_HISTORY"):
        return Path(env)
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "tilefleet" / "history.sqlite"


def history_key(recipe: str, kind: str | None = None) -> str:
    """Where durations of ``recipe`` (of one ``kind`` of its tasks, if given) are kept."""
    return f"{recipe}:{kind}" if kind else recipe


def _connect() -> sqlite3.Connection:
    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10)
    db.execute(
        "CREATE TABLE IF NOT EXISTS durations "
        "(recipe TEXT NOT NULL, seconds REAL NOT NULL, recorded REAL NOT NULL, size REAL)"
    )
    columns = {row[1] for row in db.execute("PRAGMA table_info(durations)")}
    if "size" not in columns:  # a history file of an earlier version
        db.execute("ALTER TABLE durations ADD COLUMN size REAL")
    return db


def record_durations(
    recipe: str, timings: Iterable[tuple[float, float | None, str | None]]
) -> None:
    """Remember successful task durations of a recipe: ``(seconds, size, kind)``, the size
    when the recipe gives one, the kind when its tasks have kinds (best effort: never
    fails a run)."""
    now = time.time()
    values = [
        (history_key(recipe, kind), float(seconds), now, size) for seconds, size, kind in timings
    ]
    if not values:
        return
    try:
        with _connect() as db:
            db.executemany(
                "INSERT INTO durations (recipe, seconds, recorded, size) VALUES (?, ?, ?, ?)",
                values,
            )
            for key in {v[0] for v in values}:
                db.execute(
                    "DELETE FROM durations WHERE recipe = ? AND rowid NOT IN (SELECT rowid "
                    "FROM durations WHERE recipe = ? ORDER BY recorded DESC LIMIT ?)",
                    (key, key, KEEP_PER_RECIPE),
                )
    except sqlite3.Error:
        pass


def median_duration(recipe: str, kind: str | None = None) -> float | None:
    """Median seconds per task over the remembered runs of ``recipe`` (its tasks of
    ``kind``), if any."""
    try:
        with _connect() as db:
            rows = [
                r[0]
                for r in db.execute(
                    "SELECT seconds FROM durations WHERE recipe = ?", (history_key(recipe, kind),)
                )
            ]
    except sqlite3.Error:
        return None
    return statistics.median(rows) if rows else None


def median_rate(recipe: str) -> float | None:
    """Median seconds per unit of task size over the remembered sized runs of ``recipe``."""
    try:
        with _connect() as db:
            rows = [
                r[0]
                for r in db.execute(
                    "SELECT seconds / size FROM durations WHERE recipe = ? AND size > 0", (recipe,)
                )
            ]
    except sqlite3.Error:
        return None
    return statistics.median(rows) if rows else None
