"""Fault injection on real engines: a worker process that dies midway (``os._exit`` inside
the task, as an out-of-memory kill or a segfault in a C library would) loses only its
attempt; the engine retries it, and every task ends succeeded with its output written once.
The engine's ``max_in_flight`` bounds what each executor holds at any time."""

from __future__ import annotations

import sqlite3

import pytest

from helpers import flaky_job, read_csv
from tilefleet.engine import run as engine_run
from tilefleet.engine.run import run_job

CRASHING = ["t002", "t004"]
MAX_IN_FLIGHT = 3


def executor_job(tmp_path, executor: str, **values):
    return flaky_job(tmp_path, executor=executor, max_in_flight=MAX_IN_FLIGHT, **values)


@pytest.fixture
def in_flight(monkeypatch) -> dict[str, int]:
    """Counts the attempts each executor holds (submitted, not yet returned by wait)."""
    counts = {"now": 0, "most": 0}
    create = engine_run.create_executor

    def create_and_watch(*args, **kwargs):
        executor = create(*args, **kwargs)
        submit_many, wait = executor.submit_many, executor.wait

        def counted_submit_many(attempts):
            counts["now"] += len(attempts)
            counts["most"] = max(counts["most"], counts["now"])
            submit_many(attempts)

        def counted_wait(timeout):
            done = wait(timeout)
            counts["now"] -= len(done)
            return done

        executor.submit_many, executor.wait = counted_submit_many, counted_wait
        return executor

    monkeypatch.setattr(engine_run, "create_executor", create_and_watch)
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["dask", "ray", "lithops"])
def test_a_dying_worker_loses_only_its_attempt(executor, tmp_path, in_flight, request):
    if executor == "ray":
        request.getfixturevalue("ray_session")
    job = executor_job(
        tmp_path,
        executor,
        count=6,
        mode="crash",
        fail_ids=CRASHING,
        fail_times=1,
        retries=2,
        sleep_s=0.3,
    )
    result = run_job(job)

    assert result.exit_code == 0
    assert (result.report["succeeded"], result.report["failed"]) == (6, 0)
    tasks = {row["id"]: row for row in read_csv(tmp_path / "run/tasks.csv")}
    assert all(int(tasks[task_id]["attempts"]) >= 2 for task_id in CRASHING)
    db = sqlite3.connect(tmp_path / "run/ledger.sqlite")
    lost = db.execute("SELECT task_id FROM attempts WHERE worker = 'lost'").fetchall()
    assert {task_id for (task_id,) in lost} >= set(CRASHING)
    assert all(
        "worker lost" in e
        for (e,) in db.execute("SELECT error FROM attempts WHERE worker = 'lost'")
    )
    # Exactly one successful attempt per task, and each output written once, correctly.
    ok = dict(db.execute("SELECT task_id, COUNT(*) FROM attempts WHERE ok = 1 GROUP BY task_id"))
    assert ok == {f"t{i:03d}": 1 for i in range(6)}
    outputs = sorted((tmp_path / "dest/out").iterdir())
    assert [p.name for p in outputs] == [f"t{i:03d}.txt" for i in range(6)]
    assert [p.read_text() for p in outputs] == [f"t{i:03d} value {2 * i}" for i in range(6)]
    assert 0 < in_flight["most"] <= MAX_IN_FLIGHT
    assert result.report["executor"]["name"] == executor


@pytest.mark.slow
def test_retryable_failures_come_back_as_data_and_are_retried_by_the_engine(tmp_path, in_flight):
    """A Lithops function that raises a throttling error twice: its invocations succeed
    (the error is the task's outcome), the engine retries with backoff, Lithops does not."""
    job = executor_job(tmp_path, "lithops", count=3, fail_times=2, retries=3, fail_ids=["t001"])
    result = run_job(job)
    assert result.exit_code == 0
    tasks = {row["id"]: row for row in read_csv(tmp_path / "run/tasks.csv")}
    assert tasks["t001"]["attempts"] == "3" and tasks["t000"]["attempts"] == "1"
    db = sqlite3.connect(tmp_path / "run/ledger.sqlite")
    errors = [e for (e,) in db.execute("SELECT error FROM attempts WHERE ok = 0")]
    assert errors == ["throttled on attempt 1 (HTTP 503)", "throttled on attempt 2 (HTTP 503)"]
