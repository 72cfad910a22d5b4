"""Durations of earlier runs, per recipe, to estimate the next one: seconds per task, and
seconds per unit of work where the recipe says how big its tasks are (input bytes,
pixels), so that small files never predict big ones.

Kept in a small SQLite file shared by all runs of a user (``$TILEFLEET_HISTORY``, default
``~/.local/state/tilefleet/history.sqlite``); only the most recent durations are kept.
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


def record_durations(recipe: str, timings: Iterable[tuple[float, float | None]]) -> None:
    """Remember successful task durations of a recipe, each with the task's size when the
    recipe gives one (best effort: never fails a run)."""
    now = time.time()
    values = [(recipe, float(s), now, size) for s, size in timings]
    if not values:
        return
    try:
        with _connect() as db:
            db.executemany(
                "INSERT INTO durations (recipe, seconds, recorded, size) VALUES (?, ?, ?, ?)",
                values,
            )
            db.execute(
                "DELETE FROM durations WHERE recipe = ? AND rowid NOT IN (SELECT rowid FROM "
                "durations WHERE recipe = ? ORDER BY recorded DESC LIMIT ?)",
                (recipe, recipe, KEEP_PER_RECIPE),
            )
    except sqlite3.Error:
        pass


def median_duration(recipe: str) -> float | None:
    """Median seconds per task over the remembered runs of ``recipe``, if any."""
    try:
        with _connect() as db:
            rows = [
                r[0]
                for r in db.execute("SELECT seconds FROM durations WHERE recipe = ?", (recipe,))
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
