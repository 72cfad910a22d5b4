"""Durations of earlier runs, per recipe, to estimate the next one.

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
        "(recipe TEXT NOT NULL, seconds REAL NOT NULL, recorded REAL NOT NULL)"
    )
    return db


def record_durations(recipe: str, seconds: Iterable[float]) -> None:
    """Remember successful task durations of a recipe (best effort: never fails a run)."""
    values = [(recipe, float(s), time.time()) for s in seconds]
    if not values:
        return
    try:
        with _connect() as db:
            db.executemany("INSERT INTO durations VALUES (?, ?, ?)", values)
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
