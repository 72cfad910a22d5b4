"""The plan of a run, streamed once into a temporary SQLite file instead of held in memory.

A plan of millions of tasks is read from the recipe once: each task is encoded as the
ledger stores it and appended, in batches, to a spool file outside the run directory (so
that a job declined at the cost prompt leaves nothing there). The ledger then takes the
whole plan in one ``INSERT … SELECT`` (no Python per task), and the scheduler takes the
tasks to run page by page (:class:`TaskFeed`), so the driver's memory stays flat whatever
the plan's size.

The spool also holds what the plan's pass would otherwise keep per task: the done markers,
each with the task that writes it, for the one-writer check (:meth:`PlanSpool.claim`, a
batch at a time: one ``INSERT OR IGNORE``, and a look-up only when a marker was taken) and
for the skip listing (:meth:`PlanSpool.find_done`), then the tasks that listing found done
(the ledger writes them skipped as it takes the plan). A dry run, which runs nothing,
keeps its markers in memory instead (:class:`PlanMarkers`).
"""

from __future__ import annotations

import os
import posixpath
import sqlite3
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tilefleet.engine.ledger import decode_task, encode_task
from tilefleet.engine.skip import find_done_markers, listed_markers
from tilefleet.errors import JobError
from tilefleet.task import Task

#: Tasks appended per insert, and read per page by the feed.
BATCH = 10_000

#: The first writer of each done marker: destination -> marker -> task id.
Writers = dict[str, dict[str, str]]


class PlanSpool:
    """The planned tasks in plan order, each with whether this session may run it, and
    the done markers they write: each marker with the first task that claimed it (the
    one-writer check) and, for the skip listing, the folders of the selected tasks'
    markers."""

    keeps_tasks = True  # for the feed (as :class:`PlanMarkers` does not)

    def __init__(self) -> None:
        self.path: Path | None = None  # in TMPDIR, once made
        try:
            self._create()
        except JobError:
            self.close()
            raise
        self._rows: list[tuple[int, str, str, int]] = []
        self._folders: set[tuple[int, str]] = set()  # of the rows, not flushed yet
        self._count = 0  # tasks added
        self._dests: dict[str, int] = {}  # destination -> its number in the spool

    def _create(self) -> None:
        with self._trouble():
            handle, name = tempfile.mkstemp(prefix="tilefleet-plan-", suffix=".sqlite")
            os.close(handle)
            self.path = Path(name)
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=OFF")  # a scratch file: never recovered
            self.db.execute("PRAGMA synchronous=OFF")
            self.db.executescript(
                "CREATE TABLE plan (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, task TEXT NOT NULL, "
                "selected INTEGER NOT NULL);"
                "CREATE TABLE writers (dest INTEGER NOT NULL, marker TEXT NOT NULL, "
                "id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (dest, marker)) "
                "WITHOUT ROWID;"
                "CREATE TABLE folders (dest INTEGER NOT NULL, folder TEXT NOT NULL, "
                "PRIMARY KEY (dest, folder)) WITHOUT ROWID;"
                "CREATE TABLE done (seq INTEGER PRIMARY KEY);"
                "CREATE TEMP TABLE listed (dest INTEGER NOT NULL, marker TEXT NOT NULL);"
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

    def claim(self, tasks: Sequence[Task]) -> Writers:
        """Record ``tasks`` (the next batch of the plan: each is then :meth:`add`-ed, in
        order) as the writers of their markers where no earlier task is, and return
        ``dest -> marker -> id`` of the first writers of their markers when some of them
        were claimed already (by an earlier task or within the batch); empty when none."""
        claims = [
            (self._dest_number(task.dest), task.marker, self._count + place, task.id)
            for place, task in enumerate(tasks, 1)
            if task.rejected is None and task.marker
        ]
        # In the index's order, each marker's claims in plan order (the first one holds):
        # inserted so, a batch walks the index once rather than jumping about in it (a
        # million markers over 1,000 folders: 40 % less CPU).
        claims.sort()
        with self._trouble():
            self.db.execute("BEGIN")
            inserted = self.db.executemany(
                "INSERT OR IGNORE INTO writers (dest, marker, seq, id) VALUES (?, ?, ?, ?)",
                claims,
            ).rowcount
            self.db.execute("COMMIT")
            if inserted == len(claims):  # every marker new: the usual case, nothing to ask
                return {}
            dests = {number: dest for dest, number in self._dests.items()}
            query = "SELECT id FROM writers WHERE dest = ? AND marker = ?"
            writers: Writers = {}
            for dest, marker, _, _ in claims:
                first = self.db.execute(query, (dest, marker)).fetchone()[0]
                writers.setdefault(dests[dest], {})[marker] = first
            return writers

    def add(self, task: Task, selected: bool) -> None:
        self._count += 1
        self._rows.append((self._count, task.id, encode_task(task), int(selected)))
        if selected and task.rejected is None and task.marker:
            self._folders.add((self._dest_number(task.dest), _folder_of(task.marker)))
        if len(self._rows) >= BATCH:
            self.flush()

    def _dest_number(self, dest: str) -> int:
        number = self._dests.get(dest)
        if number is None:
            number = self._dests[dest] = len(self._dests)
        return number

    def flush(self) -> None:
        if self._rows:
            with self._trouble():
                self.db.execute("BEGIN")
                self.db.executemany(
                    "INSERT INTO plan (seq, id, task, selected) VALUES (?, ?, ?, ?)", self._rows
                )
                self.db.executemany(
                    "INSERT OR IGNORE INTO folders (dest, folder) VALUES (?, ?)", self._folders
                )
                self.db.execute("COMMIT")
            self._rows, self._folders = [], set()

    def selected_ids(self) -> Iterator[str]:
        """The ids of the selected tasks, in plan order, streamed."""
        self.flush()
        for (task_id,) in self.db.execute("SELECT id FROM plan WHERE selected = 1 ORDER BY seq"):
            yield task_id

    def marker_folders(self) -> list[tuple[str, str]]:
        """``(dest, folder)`` of every folder holding a selected task's done marker."""
        self.flush()
        dests = {number: dest for dest, number in self._dests.items()}
        return [(dests[d], folder) for d, folder in self.db.execute("SELECT * FROM folders")]

    def find_done(self) -> set[str]:
        """The ids of the selected tasks whose done marker exists: their markers' folders
        listed, the keys found there joined with the markers here."""
        return self.done_among(listed_markers(self.marker_folders()))

    def done_among(self, found: Iterable[tuple[str, list[str]]]) -> set[str]:
        """The ids of the selected tasks whose done marker is among ``found``: ``(dest,
        keys)`` of the objects listed there (non-empty ones, in :meth:`marker_folders`).
        The spool keeps them too: the ledger records them as skipped as it takes the plan."""
        self.flush()
        with self._trouble():
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM listed")
        try:
            for dest, keys in found:  # a listing's own error goes on as it is
                number = self._dests.get(dest)
                with self._trouble():
                    self.db.executemany(
                        "INSERT INTO listed (dest, marker) VALUES (?, ?)",
                        ((number, key) for key in keys if number is not None),
                    )
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        with self._trouble():
            self.db.execute("DELETE FROM done")
            self.db.execute(
                "INSERT OR IGNORE INTO done (seq) SELECT w.seq FROM listed l JOIN writers w "
                "ON w.dest = l.dest AND w.marker = l.marker "
                "JOIN plan p ON p.seq = w.seq WHERE p.selected = 1"
            )
            self.db.execute("COMMIT")
            rows = self.db.execute("SELECT p.id FROM done d JOIN plan p ON p.seq = d.seq")
            return {task_id for (task_id,) in rows}

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


def _folder_of(marker: str) -> str:
    """``posixpath.dirname(marker)``, five times faster for the usual marker (a key with
    no doubled or leading slash), once per planned task."""
    head = marker.rpartition("/")[0]
    return head if head and head[-1] != "/" else posixpath.dirname(marker)


class PlanMarkers:
    """A dry run's pass over the plan, in memory, with :class:`PlanSpool`'s calls but for
    the tasks themselves (a dry run runs none): the first writer of every marker and the
    selected tasks' markers. A dry run writes nothing, and pays for it in memory (1.2 GB
    at peak for the 2.9 M tiles of the TTC database, against 0.65 GB spooled), not in the
    time that spooling every marker would add (38 s against 65 s for those tiles)."""

    keeps_tasks = False

    def __init__(self) -> None:
        self._writers: Writers = {}  # dest -> marker -> its first task
        self._selected: list[tuple[str, str, str]] = []  # (id, dest, marker), in plan order

    def claim(self, tasks: Sequence[Task]) -> Writers:
        """Every first writer so far: the one-writer check adds ``tasks``' to it."""
        return self._writers

    def add(self, task: Task, selected: bool) -> None:
        if selected:
            self._selected.append((task.id, task.dest, task.marker))

    def flush(self) -> None:
        """Nothing to write."""

    def selected_ids(self) -> Iterator[str]:
        return (task_id for task_id, _, _ in self._selected)

    def find_done(self) -> set[str]:
        """The ids of the selected tasks whose done marker exists."""
        return find_done_markers(self._selected)

    def close(self) -> None:
        self._writers, self._selected = {}, []


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
