"""The SQLite ledger in a run directory: the exact record of one run.

It holds the job, every planned task with its status, every attempt (worker, start, end,
outcome) and one row per session (an invocation that worked on the run). The scheduler
writes attempts and outcomes as they come and commits them at most a tenth of a second
later (``COMMIT_EVERY_S`` in :mod:`tilefleet.engine.scheduler`; WAL journal), so a run
killed at any moment, even by SIGKILL, leaves a consistent ledger from which a rerun
continues and reports are rebuilt. Such a kill loses at most that last tenth of a second
of records: those tasks run again, or are found done by their markers and skipped.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

from tilefleet.engine.json_text import decode, encode_record
from tilefleet.errors import RunDirError
from tilefleet.task import (
    DONE_STATES,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    Outcome,
    Task,
)
from tilefleet.tiles.manifest import spreadsheet_safe_sql

LEDGER_NAME = "ledger.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    task TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    duration_s REAL,
    worker TEXT,
    error TEXT,
    error_kind TEXT
);
CREATE TABLE IF NOT EXISTS attempts (
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    session INTEGER NOT NULL,
    worker TEXT,
    started REAL,
    finished REAL,
    ok INTEGER,
    error TEXT,
    metrics TEXT,
    PRIMARY KEY (task_id, attempt)
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    finished REAL,
    executor TEXT NOT NULL,
    settings TEXT NOT NULL,
    estimate TEXT,
    interrupted INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class TaskRecord:
    task: Task
    status: str
    attempts: int
    duration_s: float | None
    worker: str | None
    error: str | None


class ReportTask(NamedTuple):
    """What the reports read of a task (``id``, ``params``, ``source``, as on :class:`Task`)."""

    id: str
    params: dict[str, Any]
    source: dict[str, Any]


class ReportRecord(NamedTuple):
    """A task's row for the reports: a :class:`TaskRecord` whose task is a :class:`ReportTask`
    (plain tuples: a million of them are made in well under a second)."""

    task: ReportTask
    status: str
    attempts: int
    duration_s: float | None
    worker: str | None
    error: str | None


class Ledger:
    """One run's record. Only the driver process writes it; workers report outcomes."""

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        with _run_dir_trouble(self.path):
            connection = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
        self.db = _Connection(connection, self.path)
        if not readonly:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Bring a ledger written by an earlier version up to the schema (resumable runs)."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(attempts)")}
        if "metrics" not in columns:
            self.db.execute("ALTER TABLE attempts ADD COLUMN metrics TEXT")

    @classmethod
    def in_run_dir(cls, run_dir: Path, *, readonly: bool = False) -> Ledger:
        if not readonly:
            run_dir.mkdir(parents=True, exist_ok=True)
        return cls(run_dir / LEDGER_NAME, readonly=readonly)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic, durable unit of writes. Nested blocks join the outer one, so the
        engine can commit a whole batch of outcomes at once instead of one by one."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def begin(self) -> None:
        """Open a transaction (unless one is open) that the writes join until
        :meth:`commit`: the scheduler commits a run's records at most every
        ``COMMIT_EVERY_S``, not once per batch of outcomes."""
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """Make the writes of the open transaction, if any, durable."""
        if self.db.in_transaction:
            self.db.execute("COMMIT")

    def rollback(self) -> None:
        """Undo the writes of the open transaction, if any."""
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    @contextmanager
    def step(self) -> Iterator[None]:
        """Writes inside the open transaction that stand or fall together: cut short (an
        error, Ctrl-C), they are undone and the transaction's earlier writes kept."""
        self.db.execute("SAVEPOINT step")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK TO step")
            self.db.execute("RELEASE step")
            raise
        self.db.execute("RELEASE step")

    # -- run metadata -------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, **values: Any) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [(key, json.dumps(value)) for key, value in values.items()],
        )

    # -- tasks --------------------------------------------------------------------------
    def add_tasks(self, tasks: Iterable[Task]) -> None:
        """Record planned tasks; tasks already known keep their status and history."""
        start = self.db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM tasks").fetchone()[0]
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO tasks (id, seq, task) VALUES (?, ?, ?)",
                ((t.id, start + i, encode_task(t)) for i, t in enumerate(tasks)),
            )

    def add_spooled_tasks(self, spool: Path) -> None:
        """Record the planned tasks of a spool file (:mod:`tilefleet.engine.spool`) in plan
        order, in one statement; tasks already known keep their status and history. Those
        the spool found done (its skip listing) are skipped, a known one too (its error
        cleared)."""
        start = self.db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM tasks").fetchone()[0]
        # A new ledger takes its plan through a rollback journal: in WAL mode every page of
        # the one large write goes to the log and then again into the file (a million
        # tasks: 3.4 s against 1.7 s). WAL is back before anything else is written.
        rolled = not start and self._journal_mode("delete") == "delete"
        self.db.execute("ATTACH DATABASE ? AS spool", (str(spool),))
        try:
            with self.transaction():
                # Skipped as they are written: marking them after would write their rows
                # (and the pages around them) a second time.
                self.db.execute(
                    "INSERT OR IGNORE INTO tasks (id, seq, task, status) "
                    "SELECT p.id, ? + p.seq, p.task, "
                    "CASE WHEN d.seq IS NULL THEN 'pending' ELSE ? END "
                    "FROM spool.plan p LEFT JOIN spool.done d ON d.seq = p.seq ORDER BY p.seq",
                    (start, SKIPPED),
                )
                if start:  # a resumed run: tasks known before may be done now
                    self.db.execute(
                        "UPDATE tasks SET status = ?1, error = NULL WHERE id IN "
                        "(SELECT p.id FROM spool.done d JOIN spool.plan p ON p.seq = d.seq) "
                        "AND (status IS NOT ?1 OR error IS NOT NULL)",
                        (SKIPPED,),
                    )
        finally:
            self.db.execute("DETACH DATABASE spool")
            if rolled:
                self._journal_mode("wal")

    def _journal_mode(self, mode: str) -> str:
        """The ledger's journal mode once set to ``mode``; the mode it keeps when another
        connection (a monitor's read) holds it open meanwhile."""
        try:
            return self.db.execute(f"PRAGMA main.journal_mode={mode}").fetchone()[0]
        except RunDirError:  # locked by a reader: the mode stays
            return self.db.execute("PRAGMA main.journal_mode").fetchone()[0]

    def records(
        self, ids: Iterable[str] | None = None, *, status: str | tuple[str, ...] | None = None
    ) -> Iterator[TaskRecord]:
        """The tasks in plan order (those of ``ids``, or in ``status`` (one or several),
        when given)."""
        states = (status,) if isinstance(status, str) else status
        where, args = [], []
        if states is not None:
            where.append(f"status IN ({', '.join('?' * len(states))})")
            args += states
        if ids is not None:  # by the primary key: no other task is read, let alone decoded
            where.append("id IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(list(ids)))
        query = (
            "SELECT task, status, attempts, duration_s, worker, error FROM tasks "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY seq"
        )
        for task, state, attempts, duration, worker, error in self.db.execute(query, args):
            yield TaskRecord(decode_task(task), state, attempts, duration, worker, error)

    def done_tasks(self, metric: str) -> Iterator[tuple[Task, Any]]:
        """The done tasks in plan order, each with the ``metric`` (decoded; None when it has
        none, or its metrics are no JSON that SQLite reads: a NaN) of its latest successful
        attempt, for a task that succeeded in this ledger: one found done by its marker has
        none, whatever an earlier attempt returned."""
        rows = self.db.execute(
            "SELECT t.task, CASE WHEN t.status = ? THEN (SELECT CASE WHEN json_valid(a.metrics) "
            "THEN json_quote(json_extract(a.metrics, ?)) END FROM attempts a WHERE a.task_id = "
            "t.id AND a.ok AND a.metrics IS NOT NULL ORDER BY a.started DESC, a.attempt DESC "
            "LIMIT 1) END FROM tasks t "
            f"WHERE t.status IN ({', '.join('?' * len(DONE_STATES))}) ORDER BY t.seq",
            (SUCCEEDED, f"$.{json.dumps(metric)}", *DONE_STATES),
        )
        for task, value in rows:
            yield decode_task(task), json.loads(value) if value is not None else None

    def report_records(
        self, params: Collection[str], *, every: int = 1, failed: int = 1
    ) -> Iterator[ReportRecord]:
        """The tasks in plan order for the reports, each with only its id, its source row
        and those of ``params`` it has (a :class:`ReportRecord`, read like a
        :class:`TaskRecord`): a run of millions of tasks is reported without making every
        task whole again. ``every`` > 1 reads a sample spread over the plan: about 1 in
        ``every`` tasks, and about 1 in ``failed`` of the failed ones besides (picked by a
        hash of their place in the plan, so that a map of them shows no stripes)."""
        where, args = "", ()
        if every > 1:
            # Multiplicative hashes, their high bits: a spread without lattice patterns.
            spread = "((((seq + 1) * {}) % 4294967296) >> 12) % ? = 0"
            where = (
                f"WHERE {spread.format(2654435761)} "
                f"OR (status = ? AND {spread.format(2246822519)}) "
            )
            args = (every, FAILED, max(1, failed))  # in the order of the placeholders
        query = (
            # json_extract, not ``->``: SQLite before 3.38 (older distributions) has only it
            "SELECT id, json_extract(task, '$.source'), json_extract(task, '$.params'), "
            "status, attempts, duration_s, "
            f"worker, error FROM tasks {where}ORDER BY seq"
        )
        shared: dict[str, dict[str, Any]] = {"{}": _NO_PARAMS}  # empty ones: one dict
        for task_id, source, values, state, attempts, duration, worker, error in self.db.execute(
            query, args
        ):
            row = shared[source] if source in shared else decode(source)
            kept = _NO_PARAMS
            if values != "{}":
                kept = {k: v for k, v in decode(values).items() if k in params} or _NO_PARAMS
            yield ReportRecord(
                ReportTask(task_id, kept, row), state, attempts, duration, worker, error
            )

    def statuses(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT id, status FROM tasks"))

    def counts(self) -> dict[str, int]:
        counts = {PENDING: 0, RUNNING: 0, SUCCEEDED: 0, SKIPPED: 0, FAILED: 0}
        counts.update(self.db.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status"))
        return counts

    def mark(
        self, task_id: str, status: str, error: str | None = None, error_kind: str | None = None
    ) -> None:
        self.db.execute(
            "UPDATE tasks SET status = ?, error = ?, error_kind = ? WHERE id = ?",
            (status, error, error_kind, task_id),
        )

    def reset_interrupted(self) -> int:
        """Tasks left 'running' by a killed session go back to pending."""
        return self.db.execute(
            "UPDATE tasks SET status = 'pending' WHERE status = 'running'"
        ).rowcount

    # -- attempts -----------------------------------------------------------------------
    def start_attempt(self, task_id: str, session: int, started: float) -> int:
        """Count a new attempt of a task and return its number (1-based, across sessions)."""
        return self.start_attempts([task_id], session, started)[0]

    def start_attempts(self, task_ids: Sequence[str], session: int, started: float) -> list[int]:
        """Count a new attempt of each task (distinct ids), in one transaction; their
        numbers, in the order given."""
        # The ids as one JSON array, and each statement for the whole batch: no variable
        # per id (batches may exceed SQLite's limit on them), no Python per row but the
        # numbers read back (the driver's work per attempt is what bounds its rate).
        ids = json.dumps(list(task_ids))
        with self.transaction():
            self.db.execute(
                "UPDATE tasks SET attempts = attempts + 1, status = 'running' "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
            self.db.execute(
                "INSERT OR REPLACE INTO attempts (task_id, attempt, session, started) "
                "SELECT t.id, t.attempts, ?, ? FROM json_each(?) AS j "
                "JOIN tasks AS t ON t.id = j.value",
                (session, started, ids),
            )
            attempts = [
                number
                for (number,) in self.db.execute(
                    "SELECT t.attempts FROM json_each(?) AS j JOIN tasks AS t ON t.id = j.value "
                    "ORDER BY j.key",
                    (ids,),
                )
            ]
        if len(attempts) != len(task_ids):  # an id the ledger does not know: a bug, said so
            raise KeyError(f"{len(task_ids) - len(attempts)} of the attempts' tasks are unknown")
        return attempts

    def finish_attempt(self, outcome: Outcome, status: str) -> None:
        """Record an attempt's outcome and the task status it leads to, in one transaction."""
        self.finish_attempts([(outcome, status)])

    def finish_attempts(self, finished: Sequence[tuple[Outcome, str]]) -> None:
        """Record attempts' outcomes and the task statuses they lead to, in one transaction."""
        dumps = json.dumps
        attempts = [
            (o.worker, o.started, o.finished, o.ok, o.error,
             dumps(o.metrics) if o.metrics else None, o.task_id, o.attempt)
            for o, _ in finished
        ]  # fmt: skip
        tasks = [
            (status, o.finished - o.started, o.worker, o.error, o.error_kind, o.task_id)
            for o, status in finished
        ]
        with self.transaction():
            self.db.executemany(
                "UPDATE attempts SET worker = ?, started = ?, finished = ?, ok = ?, error = ?, "
                "metrics = ? WHERE task_id = ? AND attempt = ?",
                attempts,
            )
            self.db.executemany(
                "UPDATE tasks SET status = ?, duration_s = ?, worker = ?, error = ?, "
                "error_kind = ? WHERE id = ?",
                tasks,
            )

    def attempts(self, *, metrics: bool = True) -> list[dict[str, Any]]:
        """Every attempt in order of start; without ``metrics``, each with empty ones (as
        :meth:`sampled_attempts`), none decoded: what the timelines draw."""
        column = "metrics" if metrics else "NULL"
        rows = self.db.execute(
            "SELECT task_id, attempt, session, worker, started, finished, ok, error, "
            f"{column} FROM attempts ORDER BY started"
        )
        workers: dict[str, str] = {}  # a run has few workers: one string each, not one per row
        return [
            {
                "task_id": task_id,
                "attempt": attempt,
                "session": session,
                "worker": workers.setdefault(worker, worker) if worker is not None else None,
                "started": started,
                "finished": finished,
                "ok": ok,
                "error": error,
                "metrics": decode(metrics) if metrics else {},
            }
            for task_id, attempt, session, worker, started, finished, ok, error, metrics in rows
        ]

    # -- streamed reads: the reports of a run of millions, never read whole -------------
    def task_count(self, *, retried: bool = False) -> int:
        """How many tasks the run has (``retried``: of those, how many had more than one
        attempt)."""
        where = " WHERE attempts > 1" if retried else ""
        return self.db.execute(f"SELECT COUNT(*) FROM tasks{where}").fetchone()[0]

    def attempt_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]

    def task_report_rows(self, *, sources: bool = True) -> Iterator[tuple[Any, ...]]:
        """Per task in plan order, for ``tasks.csv``: id, status, attempts, duration,
        worker, error (the texts spreadsheet-safe, as the CSV writes them), the metrics
        (JSON, or None) of its latest successful attempt (looked for only where the task
        made any: most of a large plan has not run, or was found done) and its source row
        (JSON; None without ``sources``: reading it parses every task)."""
        source = "json_extract(t.task, '$.source')" if sources else "NULL"
        task_id, worker, error = (spreadsheet_safe_sql(c) for c in ("t.id", "t.worker", "t.error"))
        return self.db.execute(
            f"SELECT {task_id}, t.status, t.attempts, t.duration_s, {worker}, {error}, "
            "CASE WHEN t.attempts > 0 THEN (SELECT a.metrics FROM attempts a "
            "WHERE a.task_id = t.id AND a.ok AND a.metrics IS NOT NULL "
            f"ORDER BY a.started DESC, a.attempt DESC LIMIT 1) END, {source} "
            "FROM tasks t ORDER BY t.seq"
        )

    def source_rows(self, states: Sequence[str]) -> Iterator[tuple[str, str | None, str]]:
        """(source row as JSON, error, status) of the tasks in ``states``, in plan order."""
        marks = ", ".join("?" * len(states))
        return self.db.execute(
            f"SELECT json_extract(task, '$.source'), error, status FROM tasks "
            f"WHERE status IN ({marks}) ORDER BY seq",
            tuple(states),
        )

    def source_keys(self, states: Sequence[str]) -> list[str]:
        """The columns of the source rows of the tasks in ``states``, sorted."""
        marks = ", ".join("?" * len(states))
        rows = self.db.execute(
            f"SELECT DISTINCT j.key FROM tasks, json_each(tasks.task, '$.source') AS j "
            f"WHERE tasks.status IN ({marks})",
            tuple(states),
        )
        return sorted(key for (key,) in rows)

    def first_failures(self, limit: int) -> list[tuple[str, int, str | None]]:
        """(id, attempts, error) of the first ``limit`` failed tasks, in plan order."""
        return self.db.execute(
            "SELECT id, attempts, error FROM tasks WHERE status = ? ORDER BY seq LIMIT ?",
            (FAILED, limit),
        ).fetchall()

    def attempt_spans(self) -> Iterator[tuple[str, int, float]]:
        """(task id, session, seconds) of every finished attempt, in order of start."""
        return self.db.execute(
            "SELECT task_id, session, finished - started FROM attempts "
            "WHERE finished IS NOT NULL ORDER BY started"
        )

    def warning_metrics(self) -> Iterator[tuple[str, str]]:
        """(task id, metrics JSON) of the successful attempts whose metrics may hold a
        warning, in order of start."""
        return self.db.execute(
            "SELECT task_id, metrics FROM attempts WHERE ok AND metrics LIKE '%\"warning\"%' "
            "ORDER BY started"
        )

    def result_metrics(self) -> Iterator[tuple[str]]:
        """The metrics (JSON) of each task's latest successful attempt that has some."""
        return self.db.execute(
            "SELECT metrics, MAX(started) FROM attempts WHERE ok AND metrics IS NOT NULL "
            "GROUP BY task_id"
        )

    def duration_summary(self) -> tuple[int, float | None, float | None, float | None]:
        """(count, min, median, max) of the durations of the succeeded tasks (those that
        took any time), the median taken by SQLite's sort, not from a list of them."""
        where = _TIMED_SUCCESS
        count, low, high = self.db.execute(
            f"SELECT COUNT(*), MIN(duration_s), MAX(duration_s) FROM tasks WHERE {where}"
        ).fetchone()
        if not count:
            return 0, None, None, None
        middle = [
            value
            for (value,) in self.db.execute(
                f"SELECT duration_s FROM tasks WHERE {where} ORDER BY duration_s LIMIT ? OFFSET ?",
                (2 - count % 2, (count - 1) // 2),
            )
        ]
        return count, low, sum(middle) / len(middle), high

    def load_kinds(self, kinds: Iterable[tuple[str, str]]) -> None:
        """Each task's kind ``(id, kind)`` into a temporary table (this connection's own,
        never in the ledger file), for :meth:`grouped_counts` and friends by ``KIND``."""
        self.db.execute("DROP TABLE IF EXISTS temp.report_kinds")
        self.db.execute("CREATE TEMP TABLE report_kinds (id TEXT PRIMARY KEY, kind TEXT)")
        self.db.executemany("INSERT OR REPLACE INTO temp.report_kinds VALUES (?, ?)", kinds)

    def grouped_counts(self, group: str) -> Iterator[tuple[Any, str | None, str, int]]:
        """(value, JSON type, status, tasks) per value of ``group`` (``KIND``, or a task
        parameter's name) and status; tasks without a value are left out."""
        source, value, kind, args = _group_of(group)
        return self.db.execute(
            f"SELECT {value} AS v, {kind}, status, COUNT(*) FROM {source} "
            "WHERE v IS NOT NULL GROUP BY 1, 2, 3",
            args + args,
        )

    def grouped_durations(self, group: str) -> Iterator[tuple[Any, float, float, float]]:
        """(value, min, median, max) of the durations of the succeeded tasks (that took
        any time) per value of ``group``, the medians picked by SQLite's window functions
        (the middle one or two of each value's sorted durations)."""
        source, value, _, args = _group_of(group)
        return self.db.execute(
            "SELECT v, MIN(lo), AVG(d), MIN(hi) FROM ("
            "SELECT v, d, ROW_NUMBER() OVER (PARTITION BY v ORDER BY d) AS i, "
            "COUNT(*) OVER (PARTITION BY v) AS n, MIN(d) OVER (PARTITION BY v) AS lo, "
            "MAX(d) OVER (PARTITION BY v) AS hi FROM ("
            f"SELECT {value} AS v, duration_s AS d FROM {source} WHERE {_TIMED_SUCCESS})"
            " WHERE v IS NOT NULL) WHERE i IN ((n + 1) / 2, (n + 2) / 2) GROUP BY v",
            args,
        )

    def sampled_durations(self, every: int) -> list[float]:
        """The durations of every ``every``-th succeeded task (in plan order)."""
        rows = self.db.execute(
            f"SELECT duration_s FROM tasks WHERE {_TIMED_SUCCESS} AND seq % ? = 0",
            (every,),
        )
        return [duration for (duration,) in rows]

    def kind_spans(self) -> Iterator[tuple[str, int, float]]:
        """(kind, session, seconds) of every finished attempt of a task with a kind (see
        :meth:`load_kinds`), in order of start."""
        return self.db.execute(
            "SELECT k.kind, a.session, a.finished - a.started FROM attempts a "
            "JOIN temp.report_kinds k ON k.id = a.task_id WHERE a.finished IS NOT NULL "
            "ORDER BY a.started"
        )

    def sampled_attempts(self, every: int) -> list[dict[str, Any]]:
        """Every ``every``-th attempt (as :meth:`attempts` has them, without metrics),
        each with ``final``: the last finished attempt number of its task."""
        rows = self.db.execute(
            "SELECT a.task_id, a.attempt, a.session, a.worker, a.started, a.finished, a.ok, "
            "a.error, (SELECT MAX(b.attempt) FROM attempts b WHERE b.task_id = a.task_id "
            "AND b.finished IS NOT NULL) FROM attempts a WHERE a.rowid % ? = 0 "
            "ORDER BY a.started",
            (every,),
        )
        workers: dict[str, str] = {}
        keys = ("task_id", "attempt", "session", "worker", "started", "finished", "ok", "error")
        sample = []
        for *values, final in rows:
            attempt = dict(zip(keys, values, strict=True))
            if attempt["worker"] is not None:
                attempt["worker"] = workers.setdefault(attempt["worker"], attempt["worker"])
            attempt["metrics"], attempt["final"] = {}, final
            sample.append(attempt)
        return sample

    def workers(self) -> list[str]:
        """The distinct workers of the finished attempts (``lost`` for none), sorted."""
        rows = self.db.execute(
            "SELECT DISTINCT COALESCE(worker, 'lost') FROM attempts WHERE finished IS NOT NULL"
        )
        return sorted(worker for (worker,) in rows)

    # -- sessions -----------------------------------------------------------------------
    def start_session(self, started: float, executor: str, settings: dict, estimate: dict) -> int:
        cursor = self.db.execute(
            "INSERT INTO sessions (started, executor, settings, estimate) VALUES (?, ?, ?, ?)",
            (started, executor, json.dumps(settings), json.dumps(estimate)),
        )
        return int(cursor.lastrowid)

    def finish_session(self, session: int, finished: float, interrupted: bool) -> None:
        self.db.execute(
            "UPDATE sessions SET finished = ?, interrupted = ? WHERE id = ?",
            (finished, int(interrupted), session),
        )

    def sessions(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, started, finished, executor, settings, estimate, interrupted "
            "FROM sessions ORDER BY id"
        )
        return [
            {
                "id": sid,
                "started": started,
                "finished": finished,
                "executor": executor,
                "settings": json.loads(settings),
                "estimate": json.loads(estimate or "null"),
                "interrupted": bool(interrupted),
            }
            for sid, started, finished, executor, settings, estimate, interrupted in rows
        ]


#: The tasks whose durations the reports summarise: succeeded, having taken any time.
_TIMED_SUCCESS = "status = 'succeeded' AND duration_s IS NOT NULL AND duration_s != 0"

#: :meth:`Ledger.grouped_counts` by the tasks' kinds (see :meth:`Ledger.load_kinds`).
KIND = "\x00kind"


def _group_of(group: str) -> tuple[str, str, str, tuple[Any, ...]]:
    """The rows, value and JSON type expressions (and their arguments) of a grouping: the
    kinds table, or a task parameter picked out of the stored JSON."""
    if group == KIND:
        return "tasks JOIN temp.report_kinds k ON k.id = tasks.id", "k.kind", "NULL", ()
    path = f"$.params.{json.dumps(group)}"
    return "tasks", "json_extract(tasks.task, ?)", "json_type(tasks.task, ?)", (path,)


#: The parameters of a report's task that has none of those asked for (never changed).
_NO_PARAMS: dict[str, Any] = {}


def encode_task(task: Task) -> str:
    """A task as the ledger stores it (JSON, without the secrets of an attempt's copy); a
    NaN or infinity in it is null (see :mod:`tilefleet.engine.json_text`: a million tasks
    encode in 0.3 s where the standard library takes 4 s)."""
    return encode_record(
        {
            "id": task.id,
            "recipe": task.recipe,
            "params": task.params,
            "dest": task.dest,
            "marker": task.marker,
            "source": task.source,
            "rejected": task.rejected,
        }
    )


def decode_task(text: str) -> Task:
    values = decode(text)
    if values.keys() == _ENCODED_FIELDS:  # as encode_task wrote it: no __init__ to run
        task = object.__new__(Task)
        values["secrets"] = None
        task.__dict__.update(values)  # frozen: set once, here, as dataclasses do
        return task
    return Task(**values)


#: The fields :func:`encode_task` writes (all of :class:`Task`'s but ``secrets``).
_ENCODED_FIELDS = {field.name for field in fields(Task)} - {"secrets"}


@contextmanager
def _run_dir_trouble(path: Path) -> Iterator[None]:
    """SQLite's operational errors (a full disk, a read-only folder, a lock held too long)
    as one line naming the ledger: the run cannot go on, and says so."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise RunDirError(
            f"cannot write the ledger {path}: {exc}; once that is fixed, the same command "
            "with the same run dir resumes the run"
        ) from None


class _Connection:
    """A SQLite connection whose every statement reports trouble as :class:`RunDirError`."""

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self._connection, self._path = connection, path

    def execute(self, *args: Any) -> sqlite3.Cursor:
        with _run_dir_trouble(self._path):
            return self._connection.execute(*args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        with _run_dir_trouble(self._path):
            return self._connection.executemany(*args)

    def executescript(self, script: str) -> sqlite3.Cursor:
        with _run_dir_trouble(self._path):
            return self._connection.executescript(script)

    def __getattr__(self, name: str) -> Any:  # in_transaction, close, …
        return getattr(self._connection, name)
