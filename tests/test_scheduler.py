"""The scheduler's record: one open ledger transaction, committed at most every
``COMMIT_EVERY_S``, that loses nothing when the run ends, on its own or by Ctrl-C."""

from __future__ import annotations

import signal
import sqlite3
import threading

from helpers import flaky_job
from tilefleet.engine.callbacks import AttemptEnd, RunCallback
from tilefleet.engine.ledger import Ledger
from tilefleet.engine.run import run_job


class Seen(RunCallback):
    def __init__(self):
        self.ends: list[AttemptEnd] = []

    def on_attempt_end(self, attempt: AttemptEnd) -> None:
        self.ends.append(attempt)


def recorded(run_dir) -> dict[tuple[str, int], tuple[int, float | None]]:
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    try:
        rows = db.execute("SELECT task_id, attempt, ok, finished FROM attempts")
        return {(task, attempt): (ok, finished) for task, attempt, ok, finished in rows}
    finally:
        db.close()


def test_every_attempt_that_ended_is_in_the_ledger_after_ctrl_c(tmp_path):
    seen = Seen()
    timer = threading.Timer(1.0, lambda: signal.raise_signal(signal.SIGINT))
    timer.start()
    try:
        result = run_job(flaky_job(tmp_path, count=12, sleep_s=0.3), callbacks=[seen])
    finally:
        timer.cancel()
    assert result.report["interrupted"] is True and result.counts["pending"] > 0
    assert seen.ends  # some ended before the interrupt
    rows = recorded(tmp_path / "run")
    for end in seen.ends:
        ok, finished = rows[(end.outcome.task_id, end.outcome.attempt)]
        assert ok == end.outcome.ok and finished == end.outcome.finished
    # Nothing is left open: another writer gets the ledger at once.
    other = Ledger.in_run_dir(tmp_path / "run")
    with other.transaction():
        other.set_meta(checked=True)
    other.close()


def test_a_retried_task_ends_succeeded_with_each_attempt_recorded_in_order(tmp_path):
    """A retry's start is written after the outcome before it (both in one open
    transaction): the task ends succeeded, not left pending by a late write."""
    result = run_job(flaky_job(tmp_path, count=6, fail_times=2, retries=3))
    assert result.counts["succeeded"] == 6
    rows = recorded(tmp_path / "run")
    for i in range(6):
        oks = [rows[key][0] for key in sorted(key for key in rows if key[0] == f"t{i:03d}")]
        assert oks == [0, 0, 1], (i, oks)
