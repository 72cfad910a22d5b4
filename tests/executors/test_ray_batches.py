"""Short attempts go to Ray in batches (fewer Ray tasks than attempts), each attempt keeping
its own outcome, start and finish; a batch whose worker dies loses only its attempts,
retried alone; a batch-mate past the task timeout is stopped while the attempts that
ended before it keep their outcomes. On a real local Ray."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections import defaultdict

import pytest

from executors.hanging_recipe import HangingParams, HangingRecipe
from helpers import flaky_job, read_csv
from tilefleet.engine import run as engine_run
from tilefleet.engine.executors.ray import BATCHES_HELD, RayExecutor
from tilefleet.engine.run import run_job
from tilefleet.errors import TaskTimeoutError, WorkerLostError

#: Enough short tasks that most go out after the first ones showed them short.
COUNT = 200
BAD = "t150"


@pytest.fixture
def ray_executors(monkeypatch, ray_session) -> list[RayExecutor]:
    """The Ray executors the runs of a test make, to read what they sent."""
    made: list[RayExecutor] = []
    create = engine_run.create_executor

    def create_and_keep(*args, **kwargs):
        executor = create(*args, **kwargs)
        made.append(executor)
        return executor

    monkeypatch.setattr(engine_run, "create_executor", create_and_keep)
    return made


def attempts(run_dir) -> list[dict]:
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM attempts ORDER BY started")]
    finally:
        db.close()


@pytest.mark.slow
def test_short_attempts_go_in_batches_each_recorded_as_if_alone(tmp_path, ray_executors):
    result = run_job(flaky_job(tmp_path, executor="ray", count=COUNT, mode="ok"))

    assert result.exit_code == 0 and result.report["succeeded"] == COUNT
    (executor,) = ray_executors
    assert executor.attempts_sent == COUNT
    assert executor.ray_tasks < COUNT / 2  # most went in batches
    rows = attempts(tmp_path / "run")
    assert sorted(r["task_id"] for r in rows) == [f"t{i:03d}" for i in range(COUNT)]
    assert all(r["ok"] == 1 and r["attempt"] == 1 and r["error"] is None for r in rows)
    assert all(json.loads(r["metrics"]) == {"attempt": 1} for r in rows)
    # Each attempt its own start and finish (not its batch's), in turn on its worker.
    # Distinct starts are asked of each worker only: two workers' clocks may read alike.
    by_worker = defaultdict(list)
    for r in rows:
        assert r["started"] <= r["finished"]
        by_worker[r["worker"]].append(r)
    for worker, runs in by_worker.items():
        assert worker.startswith(f"{socket.gethostname()}:")
        assert len({r["started"] for r in runs}) == len(runs)
        assert all(a["finished"] <= b["started"] for a, b in zip(runs, runs[1:], strict=False))
    outputs = sorted((tmp_path / "dest/out").iterdir())
    assert [p.read_text() for p in outputs] == [f"t{i:03d} value {2 * i}" for i in range(COUNT)]


@pytest.mark.slow
def test_a_batch_whose_worker_dies_loses_only_its_attempts_retried_alone(tmp_path, ray_executors):
    """The bad task kills its worker on its first two attempts, with no retries allowed.
    Its batch-mates are lost once, and that try does not count (nor the bad task's, in
    its batch): their retries go alone and succeed, the bad task's second crash, alone,
    takes none of them down and fails it."""
    job = flaky_job(
        tmp_path,
        executor="ray",
        count=COUNT,
        mode="crash",
        fail_ids=[BAD],
        fail_times=2,
        retries=0,
    )
    result = run_job(job)

    assert result.exit_code == 1
    assert (result.report["succeeded"], result.report["failed"]) == (COUNT - 1, 1)
    (failed,) = read_csv(tmp_path / "run/failed.csv")
    assert failed["tile"] == BAD and failed["reason"].startswith("worker lost")
    (executor,) = ray_executors
    assert executor.ray_tasks < COUNT / 2
    rows = attempts(tmp_path / "run")
    lost = [(r["task_id"], r["attempt"]) for r in rows if r["worker"] == "lost"]
    assert (BAD, 1) in lost and (BAD, 2) in lost
    batch_mates = {task_id for task_id, attempt in lost if task_id != BAD}
    assert batch_mates  # the bad task's first attempt ran in a batch
    assert all(attempt == 1 for task_id, attempt in lost if task_id != BAD)
    ok = defaultdict(list)
    for r in rows:
        if r["ok"]:
            ok[r["task_id"]].append(r["attempt"])
    assert set(ok) == {f"t{i:03d}" for i in range(COUNT)} - {BAD}
    assert all(ok[task_id] == [2] for task_id in batch_mates)  # retried once, alone
    assert all(len(attempts_ok) == 1 for attempts_ok in ok.values())


@pytest.mark.slow
def test_a_hanging_attempt_in_a_run_of_batches_is_stopped_and_the_others_succeed(
    tmp_path, ray_executors
):
    job = flaky_job(
        tmp_path,
        recipe="executors.hanging_recipe:HangingRecipe",
        executor="ray",
        count=COUNT,
        fail_ids=[BAD],
        task_timeout=1.5,
        retries=0,
    )
    result = run_job(job)

    # No retries: the attempts stopped with the hanging one's batch get theirs all the same.
    assert (result.report["succeeded"], result.report["failed"]) == (COUNT - 1, 1)
    (executor,) = ray_executors
    assert executor.ray_tasks < COUNT / 2
    rows = attempts(tmp_path / "run")
    assert [r["error"] for r in rows if r["task_id"] == BAD] == ["timed out after 1.5 s"]
    others = [r for r in rows if r["task_id"] != BAD]
    ok = [r["task_id"] for r in others if r["ok"]]
    assert sorted(ok) == sorted({r["task_id"] for r in others})  # each once
    stopped_with_it = f"worker lost: stopped with its batch, as {BAD} timed out"
    assert all(r["error"] == stopped_with_it for r in others if not r["ok"])


@pytest.mark.slow
def test_inside_a_batch_the_overdue_attempt_times_out_those_before_it_keep_their_outcomes(
    tmp_path, ray_session
):
    """Driven as the engine drives it: 16 attempts alone show the tasks short, then 64 go
    in batches of 8 (what keeps BATCHES_HELD batches a worker in flight on 2 workers); the
    4th of the first batch hangs. The 3 before it ended (their outcomes told to the board
    with its start), the 4 after it never ran."""
    params = HangingParams(
        dest=str(tmp_path / "dest"), state_dir=str(tmp_path / "st"), count=80, fail_ids=["t019"]
    )
    tasks = HangingRecipe().plan(params)
    executor = RayExecutor(workers=2)
    executor.task_timeout = 1.5
    executor.start()
    try:
        first = run_all(executor, tasks[:16])
        assert all(c.outcome is not None and c.outcome.ok for c in first.values())
        assert executor.default_max_in_flight >= 2 * BATCHES_HELD * 8  # batches of 8 fit
        done = run_all(executor, tasks[16:])
    finally:
        executor.shutdown()

    assert executor.ray_tasks == 16 + 64 // 8
    assert isinstance(done["t019"].lost, TaskTimeoutError)
    assert str(done["t019"].lost) == "timed out after 1.5 s"
    for task_id in ("t016", "t017", "t018"):  # ended before it: kept
        assert done[task_id].outcome is not None and done[task_id].outcome.ok
    assert not done["t019"].collateral  # its own try
    for task_id in ("t020", "t021", "t022", "t023"):  # queued behind it: lost, not charged
        assert isinstance(done[task_id].lost, WorkerLostError) and done[task_id].collateral
    for i in range(24, 80):  # the other batches ran on
        assert done[f"t{i:03d}"].outcome.ok


def run_all(executor: RayExecutor, tasks) -> dict:
    """Submit first attempts of ``tasks`` in one call, wait for all: completion per id."""
    executor.submit_many([(task, 1) for task in tasks])
    done = {}
    deadline = time.monotonic() + 60
    while len(done) < len(tasks) and time.monotonic() < deadline:
        for completion in executor.wait(1.0):
            assert completion.task_id not in done  # one completion per attempt
            done[completion.task_id] = completion
    assert len(done) == len(tasks)
    return done
