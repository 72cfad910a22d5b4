"""One planned task run outside the engine's loop, and the merge of what such runs report.

Detached executors (an HTCondor DAG) do not keep a driver waiting on futures: each node of
the DAG runs ``tilefleet task run RUN_DIR TASK_ID`` on some machine of the pool, which
reads the task from the run's ledger, runs it with the same worker function every executor
uses, and reports the outcome as a small JSON file, ``RUN_DIR/outcomes/<task>.<n>.json``.
Many hosts writing one SQLite file over a shared file system is how ledgers get corrupted,
so nodes never write the ledger: the FINAL node (``tilefleet task finish RUN_DIR``) or any
``tilefleet report RUN_DIR`` merges the outcome files into it.

A node whose task's done marker already exists reports ``skipped`` and exits 0 at once, so
a rescue DAG (which reruns the nodes that failed) and tilefleet's own skipping agree: work
that is done is never done twice, whichever of the two decides what runs.

On a pool without a shared file system a node cannot read the run directory at all: it
gets its task as a small JSON file (:func:`write_task_file`, moved by HTCondor's file
transfer) and runs ``tilefleet task run-file TASK_JSON``, which writes the outcome into
its scratch folder for HTCondor to bring back under ``RUN_DIR/outcomes/``.

With a task timeout (``TILEFLEET_TASK_TIMEOUT``, seconds, which the DAG's submit file sets)
a node reports an attempt still running past it as failed, retryable, "timed out after N
s", and exits at once with status 1 (a read blocked in C cannot be interrupted otherwise),
so DAGMan's RETRY runs it again and the merge counts it like any retryable failure.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from urllib.parse import quote, unquote

from tilefleet.engine.ledger import Ledger
from tilefleet.engine.worker import execute
from tilefleet.errors import PERMANENT, RETRYABLE, JobError, classify, one_line
from tilefleet.store.objects import open_store
from tilefleet.task import FAILED, PENDING, SKIPPED, SUCCEEDED, Outcome, Task, now
from tilefleet.task import worker_name as this_worker

OUTCOMES_DIR = "outcomes"
MERGED_DIR = "merged"
#: Where ``tilefleet task run-file`` writes its outcome unless told otherwise (the node's
#: scratch folder, from which HTCondor's file transfer takes it home).
OUTCOME_FILE = "outcome.json"
#: Exit status of ``tilefleet task run``: done (or already done), worth a retry, hopeless.
EXIT_DONE, EXIT_RETRYABLE, EXIT_PERMANENT = 0, 1, 2
#: The ledger key holding the session a detached launch opened.
DETACHED_SESSION = "detached_session"
#: Seconds a node's attempt may run (set by the DAG's submit file; unset: no limit).
TASK_TIMEOUT_VARIABLE = "TILEFLEET_TASK_TIMEOUT"


def load_task(run_dir: Path, task_id: str) -> Task:
    """The planned task ``task_id`` of a run, read from its ledger without writing to it."""
    if not (run_dir / "ledger.sqlite").is_file():
        raise JobError(f"{run_dir} is not a tilefleet run directory (no ledger.sqlite)")
    ledger = Ledger.in_run_dir(run_dir, readonly=True)
    try:
        for record in ledger.records([task_id]):
            return record.task
    finally:
        ledger.close()
    raise JobError(f"run {run_dir} has no task {task_id!r}")


def run_planned_task(run_dir: Path, task_id: str) -> Outcome:
    """Run one task of a run (unless its marker shows it done) and report the outcome as
    a JSON file under ``RUN_DIR/outcomes``."""
    task = load_task(run_dir, task_id)
    attempt = _claim_attempt(run_dir, task_id)
    return _run_reported(task, attempt, lambda outcome: write_outcome(run_dir, outcome))


def run_task_file(
    task_file: Path, *, attempt: int = 0, outcome_file: Path = Path(OUTCOME_FILE)
) -> Outcome:
    """Run the task of a task file (unless its marker shows it done) and write the outcome
    to ``outcome_file``: a node that sees no run directory, only its scratch folder.
    ``attempt`` tells the attempts of one task apart (the DAG passes DAGMan's retry count)."""
    task = read_task_file(task_file)
    return _run_reported(
        task, attempt, lambda outcome: _write_json(Path(outcome_file), asdict(outcome))
    )


def run_once(task: Task, attempt: int) -> Outcome:
    """One attempt of a task outside the engine's loop: recorded as failed if the plan
    rejected it, as skipped if its done marker exists, else run by the shared worker."""
    stamp = now()
    if task.rejected is not None:
        return Outcome(
            task.id, attempt, False, this_worker(), stamp, stamp, task.rejected, PERMANENT
        )
    try:
        done = _marker_exists(task)
    except Exception as exc:  # an unreachable store is the attempt's failure, not a crash
        return Outcome(
            task.id, attempt, False, this_worker(), stamp, now(), one_line(exc), classify(exc)
        )
    if done:
        return Outcome(
            task.id, attempt, True, this_worker(), stamp, stamp, metrics={"skipped": True}
        )
    return execute(task, attempt)


def _run_reported(task: Task, attempt: int, report: Callable[[Outcome], object]) -> Outcome:
    """:func:`run_once`, its outcome handed to ``report``. Past the node's task timeout
    the attempt is reported timed out instead, and the process exits with
    :data:`EXIT_RETRYABLE` at once; exactly one of the two outcomes is reported."""
    timeout = float(os.environ.get(TASK_TIMEOUT_VARIABLE) or 0) or None
    if timeout is None:
        outcome = run_once(task, attempt)
        report(outcome)
        return outcome
    started, reported = now(), threading.Lock()

    def report_timed_out() -> None:
        if not reported.acquire(blocking=False):
            return  # the attempt ended first and is being reported
        reason = f"timed out after {timeout:g} s"
        report(Outcome(task.id, attempt, False, this_worker(), started, now(), reason, RETRYABLE))
        print(f"{task.id} attempt {attempt}: failed ({RETRYABLE}): {reason}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(EXIT_RETRYABLE)

    watchdog = threading.Timer(timeout, report_timed_out)
    watchdog.daemon = True
    watchdog.start()
    try:
        outcome = run_once(task, attempt)
    finally:
        watchdog.cancel()
    if not reported.acquire(blocking=False):  # timed out as it ended: the exit is under way
        watchdog.join()
    report(outcome)
    return outcome


def write_task_file(task: Task, path: Path) -> Path:
    """Write a task as a small JSON file (no secrets: a task holds none), for a node that
    cannot read the ledger."""
    return _write_json(Path(path), asdict(task))


def read_task_file(path: Path) -> Task:
    """The task of a file written by :func:`write_task_file`."""
    try:
        return Task(**json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise JobError(f"{path} is not a tilefleet task file ({one_line(exc)})") from None


def exit_status(outcome: Outcome) -> int:
    """0 done, 1 retryable failure (the DAG's RETRY reruns it), 2 permanent failure."""
    if outcome.ok:
        return EXIT_DONE
    return EXIT_RETRYABLE if outcome.error_kind == RETRYABLE else EXIT_PERMANENT


def write_outcome(run_dir: Path, outcome: Outcome) -> Path:
    """Write an outcome file atomically (a reader never sees half of one)."""
    name = f"{outcome_file_stem(outcome.task_id)}.{outcome.attempt}.json"
    return _write_json(run_dir / OUTCOMES_DIR / name, asdict(outcome))


def _write_json(target: Path, record: dict) -> Path:
    """Write ``record`` as JSON to ``target`` atomically (a reader never sees half of it)."""
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    partial.write_text(json.dumps(record))
    os.replace(partial, target)
    return target


def merge_outcomes(ledger: Ledger, run_dir: Path, *, final: bool = False) -> int:
    """Move the outcome files reported by detached nodes into the ledger; return how many.

    Each file is first claimed by renaming it into ``outcomes/merged/`` (atomic, so two
    mergers never record it twice). A retryable failure leaves its task pending while the
    DAG may still retry it; with ``final`` (the FINAL node, after every retry) it is a
    failure. The launch's session is closed by the final merge.
    """
    folder = run_dir / OUTCOMES_DIR
    if not folder.is_dir():
        return 0
    merged = folder / MERGED_DIR
    merged.mkdir(exist_ok=True)
    session = ledger.get_meta(DETACHED_SESSION)
    if session is None:  # outcomes without a launch (a node run by hand): record them anyway
        session = ledger.start_session(now(), "task", {"name": "task"}, {})
        ledger.set_meta(**{DETACHED_SESSION: session})
    count = 0
    for path in sorted(folder.glob("*.json"), key=_attempt_order):
        claimed = merged / path.name
        try:
            os.replace(path, claimed)
        except FileNotFoundError:  # another merger took it
            continue
        outcome = Outcome(**json.loads(claimed.read_text()))
        number = ledger.start_attempt(outcome.task_id, session, outcome.started)
        ledger.finish_attempt(replace(outcome, attempt=number), _status(outcome, final))
        count += 1
    if final:
        ledger.finish_session(session, now(), interrupted=False)
    return count


def _status(outcome: Outcome, final: bool) -> str:
    if outcome.ok:
        return SKIPPED if outcome.metrics.get("skipped") else SUCCEEDED
    if outcome.error_kind == RETRYABLE and not final:
        return PENDING
    return FAILED


def _marker_exists(task: Task) -> bool:
    return bool(task.marker) and open_store(task.dest).exists(task.marker)


def _claim_attempt(run_dir: Path, task_id: str) -> int:
    """The next attempt number of a task on this run's nodes, claimed with an exclusive
    create so that two runs of one node never report under the same name."""
    folder = run_dir / OUTCOMES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stem = outcome_file_stem(task_id)
    for number in range(1, 100_000):
        try:
            fd = os.open(folder / f"{stem}.{number}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.close(fd)
        return number
    raise RuntimeError(f"too many attempts of {task_id}")


def outcome_file_stem(task_id: str) -> str:
    """The start of a task's outcome file names, ``<stem>.<attempt>.json``: a file name for
    any task id (ids may hold slashes: they are manifest paths)."""
    return quote(task_id, safe="")


def _attempt_order(path: Path) -> tuple[str, int]:
    stem, _, number = path.stem.rpartition(".")
    return unquote(stem), int(number) if number.isdigit() else 0
