"""The plan of a run, streamed once into a temporary SQLite file instead of held in memory.

A plan of millions of tasks is read from the recipe once: each task is encoded as the
ledger stores it and appended, in batches, to a spool file outside the run directory (so
that a job declined at the cost prompt leaves nothing there). The ledger then takes the
whole plan in one ``INSERT … SELECT`` (no Python per task), and the scheduler takes the
tasks to run page by page (:class:`TaskFeed`), so the driver's memory stays flat whatever
the plan's size.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tilefleet.engine.ledger import decode_task, encode_task
from tilefleet.errors import JobError
from tilefleet.task import Task

#: Tasks appended per insert, and read per page by the feed.
BATCH = 10_000


class PlanSpool:
    """The planned tasks in plan order, each with whether this session may run it."""

    def __init__(self) -> None:
        self.path: Path | None = None  # in TMPDIR, once made
        try:
            self._create()
        except JobError:
            self.close()
            raise
        self._rows: list[tuple[str, str, int]] = []

    def _create(self) -> None:
        with self._trouble():
            handle, name = tempfile.mkstemp(prefix="tilefleet-plan-", suffix=".sqlite")
            os.close(handle)
            self.path = Path(name)
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=OFF")  # a scratch file: never recovered
            self.db.execute("PRAGMA synchronous=OFF")
            self.db.execute(
                "CREATE TABLE plan (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, "
                "task TEXT NOT NULL, selected INTEGER NOT NULL)"
            )

    @contextmanager
    def _trouble(self) -> Iterator[None]:
        """A spool that cannot be written (a full disk, no temporary folder) stops the
        run in one line, before anything is written in the run dir."""
        try:
            yield
        except (OSError, sqlite3.Error) as exc:
            where = self.path or "in the temporary folder"
            raise JobError(f"cannot write the plan's spool file {where} (TMPDIR): {exc}") from None

    def add(self, task: Task, selected: bool) -> None:
        self._rows.append((task.id, encode_task(task), int(selected)))
        if len(self._rows) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            with self._trouble():
                self.db.execute("BEGIN")
                self.db.executemany(
                    "INSERT INTO plan (id, task, selected) VALUES (?, ?, ?)", self._rows
                )
                self.db.execute("COMMIT")
            self._rows = []

    def selected_pages(self) -> Iterator[list[tuple[str, str]]]:
        """(id, encoded task) of the selected tasks, in plan order, a page at a time."""
        self.flush()
        last = 0
        query = "SELECT seq, id, task FROM plan WHERE selected = 1 AND seq > ? ORDER BY seq LIMIT ?"
        while True:
            rows = self.db.execute(query, (last, BATCH)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [(task_id, text) for _, task_id, text in rows]

    def close(self) -> None:
        if hasattr(self, "db"):
            self.db.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class TaskFeed:
    """The tasks a session runs, as the scheduler's queue: fresh tasks come from the spool
    page by page (those of ``skip`` left out, the first ``count`` of them), tasks put back
    for a retry (``append``) after them, as a deque of every task would have them."""

    def __init__(self, spool: PlanSpool, count: int, skip: set[str]):
        self._pages = spool.selected_pages()
        self._page: deque[str] = deque()
        self._fresh = count  # the first ``count`` selected tasks not in ``skip``: see feed_count
        self._skip = skip
        self._retries: deque[Task] = deque()

    def __len__(self) -> int:
        return self._fresh + len(self._retries)

    def __bool__(self) -> bool:
        return len(self) > 0

    def append(self, task: Task) -> None:
        self._retries.append(task)

    def popleft(self) -> Task:
        if self._fresh:
            self._fresh -= 1
            return decode_task(self._next_text())
        return self._retries.popleft()

    def _next_text(self) -> str:
        while not self._page:
            page = next(self._pages)
            self._page.extend(text for task_id, text in page if task_id not in self._skip)
        return self._page.popleft()

    def drain(self) -> list[Task]:
        """Every task still to come, as a list (for executors that take a whole plan)."""
        return [self.popleft() for _ in range(len(self))]


def feed_count(candidates: Sequence[str], skip: set[str], limit: int | None) -> int:
    """How many of ``candidates`` (ids, in plan order) a :class:`TaskFeed` yields."""
    count = sum(1 for task_id in candidates if task_id not in skip)
    return min(count, limit) if limit else count
