"""The engine with real worker processes: retries, lost workers, exit status, ledger,
reports and the cost prompt."""

from __future__ import annotations

import json
import sqlite3
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from helpers import flaky_job, read_csv
from tilefleet import plugins
from tilefleet.engine.executors.base import Billing
from tilefleet.engine.executors.local import LocalExecutor
from tilefleet.engine.run import run_job
from tilefleet.errors import JobError


def test_retryable_failures_are_retried_with_backoff_until_success(tmp_path):
    result = run_job(flaky_job(tmp_path, count=5, fail_times=2, retries=3))
    assert result.exit_code == 0
    assert (result.report["succeeded"], result.report["retried"]) == (5, 5)
    assert result.report["attempts"] == 15
    tasks = read_csv(tmp_path / "run/tasks.csv")
    assert {row["attempts"] for row in tasks} == {"3"}
    assert all((tmp_path / f"dest/out/t{i:03d}.txt").exists() for i in range(5))


def test_retries_exhausted_fail_the_task_with_its_reason(tmp_path):
    result = run_job(flaky_job(tmp_path, count=3, fail_times=5, retries=1, fail_ids=["t001"]))
    assert result.exit_code == 1
    failed = read_csv(tmp_path / "run/failed.csv")
    assert failed == [{"tile": "t001", "reason": "throttled on attempt 2 (HTTP 503)"}]
    assert read_csv(tmp_path / "run/tasks.csv")[1]["attempts"] == "2"


def test_permanent_failures_are_not_retried(tmp_path):
    result = run_job(flaky_job(tmp_path, count=2, mode="permanent", retries=3))
    assert result.exit_code == 2
    assert result.report["attempts"] == 2 and result.report["failed"] == 2


def test_a_dying_worker_loses_only_an_attempt(tmp_path):
    result = run_job(
        flaky_job(tmp_path, count=6, mode="crash", fail_ids=["t002"], fail_times=1, retries=2)
    )
    assert result.exit_code == 0
    assert result.report["succeeded"] == 6
    tasks = {row["id"]: row for row in read_csv(tmp_path / "run/tasks.csv")}
    assert int(tasks["t002"]["attempts"]) >= 2
    # Every task's output exists exactly once; half-written files of dead workers are gone.
    assert sorted(p.name for p in (tmp_path / "dest/out").iterdir()) == [
        f"t{i:03d}.txt" for i in range(6)
    ]
    db = sqlite3.connect(tmp_path / "run/ledger.sqlite")
    lost = db.execute("SELECT COUNT(*) FROM attempts WHERE worker = 'lost'").fetchone()[0]
    assert lost >= 1
    # The temporary file the dead worker held went with the executor's scratch folder.
    (left,) = (tmp_path / "st").glob("t002.*.tmp")
    scratch = Path(left.read_text())
    assert "tilefleet-local-" in str(scratch) and not scratch.parent.exists()


def test_reports_are_complete(tmp_path):
    run_job(flaky_job(tmp_path, count=4, fail_times=1, fail_ids=["t003"], mode="permanent"))
    run_dir = tmp_path / "run"
    report = json.loads((run_dir / "report.json").read_text())
    for key in (
        "run_id",
        "recipe",
        "executor",
        "tasks",
        "succeeded",
        "skipped",
        "failed",
        "retried",
        "wall_s",
        "task_s",
        "estimate",
    ):
        assert key in report
    assert report["executor"]["name"] == "local" and report["executor"]["workers"] == 2
    assert set(report["task_s"]) == {"min", "median", "max"}
    assert (report["tasks"], report["succeeded"], report["failed"]) == (4, 3, 1)
    assert read_csv(run_dir / "succeeded.csv")[0] == {"tile": "t000", "status": "succeeded"}
    text = (run_dir / "report.txt").read_text()
    assert "failed          1  (25.0 %)" in text and "t003: bad input in t003" in text
    png = (run_dir / "timeline.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_resume_in_same_run_dir_runs_only_what_is_missing(tmp_path):
    first = run_job(flaky_job(tmp_path, count=5, mode="permanent", fail_ids=["t004"], fail_times=1))
    assert first.exit_code == 1
    # Same run dir: the failed task is retried (its second attempt succeeds), the rest stay done.
    second = run_job(
        flaky_job(tmp_path, count=5, mode="permanent", fail_ids=["t004"], fail_times=1)
    )
    assert second.exit_code == 0
    assert (second.report["succeeded"], second.report["sessions"]) == (5, 2)
    db = sqlite3.connect(tmp_path / "run/ledger.sqlite")
    per_session = dict(db.execute("SELECT session, COUNT(*) FROM attempts GROUP BY session"))
    assert per_session == {1: 5, 2: 1}


def test_a_run_dir_of_another_job_is_refused(tmp_path):
    run_job(flaky_job(tmp_path, count=2, mode="ok"))
    with pytest.raises(JobError, match="different job"):
        run_job(flaky_job(tmp_path, count=3, mode="ok"))


class BilledLocal(LocalExecutor):
    """Stands in for a serverless platform, which cannot run here: local processes with a
    price per GB-second, so the prompt and cost accounting are exercised for real."""

    name = "billed-local"

    @property
    def billing(self):
        return Billing(memory_gb=2.0, usd_per_gb_s=0.0000166667)


@pytest.fixture
def billed_executor(monkeypatch):
    point = EntryPoint("billed-local", f"{__name__}:BilledLocal", plugins.EXECUTORS)
    monkeypatch.setitem(plugins.registered(plugins.EXECUTORS), "billed-local", point)


def test_billed_run_without_terminal_needs_yes(tmp_path, billed_executor):
    with pytest.raises(JobError, match="--yes"):
        run_job(flaky_job(tmp_path, count=2, mode="ok", executor="billed-local"))
    assert not (tmp_path / "run").exists()


def test_billed_run_asks_and_respects_no(tmp_path, billed_executor):
    questions = []
    result = run_job(
        flaky_job(tmp_path, count=2, mode="ok", executor="billed-local"),
        confirm=lambda q: questions.append(q) or False,
    )
    assert result.declined and result.exit_code == 0
    assert "declined at the cost prompt: nothing was run" in result.summary()
    assert not (tmp_path / "run").exists() and not (tmp_path / "dest").exists()
    # The asker (typer.confirm on a terminal) adds the one [y/N] itself.
    assert questions[0].endswith("Proceed?") and "[y/N]" not in questions[0]
    assert "estimated cost $" in questions[0]


def test_billed_run_reports_estimated_and_measured_cost(tmp_path, billed_executor):
    result = run_job(
        flaky_job(tmp_path, count=3, mode="ok", executor="billed-local", sleep_s=0.2, yes=True)
    )
    cost = result.report["cost_usd"]
    assert cost["estimated"] == pytest.approx(3 * 0.1 * 2.0 * 0.0000166667)
    # Three tasks of at least 0.2 s each at 2 GB.
    assert cost["measured"] >= 3 * 0.2 * 2.0 * 0.0000166667


def test_unknown_executor_and_bad_options_are_job_errors(tmp_path):
    with pytest.raises(JobError, match="unknown executor"):
        run_job(flaky_job(tmp_path, executor="nope"))
    with pytest.raises(JobError, match="workers"):
        flaky_job(tmp_path, workers=0)
    with pytest.raises(JobError, match="unknown key"):
        flaky_job(tmp_path, colour="blue")


def test_a_ledger_from_before_attempt_metrics_is_brought_up_to_date(tmp_path):
    import sqlite3

    from tilefleet.engine.ledger import Ledger

    old = sqlite3.connect(tmp_path / "ledger.sqlite")
    old.execute(
        "CREATE TABLE attempts (task_id TEXT NOT NULL, attempt INTEGER NOT NULL, "
        "session INTEGER NOT NULL, worker TEXT, started REAL, finished REAL, ok INTEGER, "
        "error TEXT, PRIMARY KEY (task_id, attempt))"
    )
    old.execute("INSERT INTO attempts VALUES ('a', 1, 1, 'w', 1.0, 2.0, 1, NULL)")
    old.commit()
    old.close()
    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        (attempt,) = ledger.attempts()
        assert attempt["task_id"] == "a" and attempt["metrics"] == {}
    finally:
        ledger.close()


def test_the_timeline_packs_many_short_lived_workers_into_lanes_of_concurrency(tmp_path):
    from tilefleet.engine.timeline import packed_lanes, plot_timeline

    # 300 invocations of a serverless run, each a fresh process, at most 3 at once.
    attempts = [
        {
            "task_id": f"t{i}",
            "attempt": 1,
            "worker": f"lambda:{1000 + i}",
            "started": float(i // 3),
            "finished": float(i // 3) + 0.9,
            "ok": i % 50 != 7,
        }
        for i in range(300)
    ]
    lanes = packed_lanes(attempts)
    assert sorted(set(lanes)) == [0, 1, 2]
    for second in range(100):  # attempts running together never share a lane
        assert sorted(lanes[3 * second : 3 * second + 3]) == [0, 1, 2]
    plot_timeline(attempts, tmp_path / "timeline.png", "serverless")
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
