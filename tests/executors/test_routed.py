"""The routed executor: several executors in one run, each task sent to one by a key in it
(the TTC pattern: DEM and Sentinel-1 tiles on one Lithops config, Sentinel-2 on another)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict

import pytest

from helpers import read_csv
from tilefleet import engine
from tilefleet.engine.executors import create_executor
from tilefleet.engine.run import run_job
from tilefleet.jobs import build_job, load_job
from tilefleet.task import Task

POOLED = "executors.routed_recipe:PooledFlakyRecipe"


@pytest.fixture
def submitted(monkeypatch) -> dict[str, list[str]]:
    """Task ids each pool's executor was given, by executor name."""
    seen: dict[str, list[str]] = defaultdict(list)
    create = engine.executors.create_executor

    def create_and_watch(name, *args, **kwargs):
        executor = create(name, *args, **kwargs)
        submit_many = executor.submit_many

        def watched(attempts):
            seen[name] += [task.id for task, _ in attempts]
            submit_many(attempts)

        executor.submit_many = watched
        return executor

    monkeypatch.setattr(engine.executors, "create_executor", create_and_watch)
    return seen


@pytest.mark.slow
def test_tasks_go_to_their_pool_and_survive_a_dying_worker_in_each(tmp_path, submitted):
    job = build_job(
        {
            "recipe": POOLED,
            "dest": str(tmp_path / "dest"),
            "state_dir": str(tmp_path / "st"),
            "run_dir": str(tmp_path / "run"),
            "backoff_s": 0.01,
            "count": 6,
            "pools": ["euc1", "usw2", "nowhere"],
            "mode": "crash",
            "fail_ids": ["t000", "t001"],  # one in each pool
            "executor": "routed",
            "executors": {
                "euc1": {"executor": "local", "workers": 1},
                "usw2": {"executor": "lithops", "workers": 2},
            },
        }
    )
    result = run_job(job)

    assert result.exit_code == 1  # the tasks of pool "nowhere" fail
    assert sorted(set(submitted["local"])) == ["t000", "t003"]
    assert sorted(set(submitted["lithops"])) == ["t001", "t004"]
    tasks = {row["id"]: row for row in read_csv(tmp_path / "run/tasks.csv")}
    for task_id in ("t000", "t001", "t003", "t004"):
        assert tasks[task_id]["status"] == "succeeded"
    assert int(tasks["t000"]["attempts"]) >= 2 and int(tasks["t001"]["attempts"]) >= 2
    assert tasks["t002"]["status"] == "failed" and tasks["t002"]["attempts"] == "1"
    assert tasks["t002"]["error"] == "no executor for pool='nowhere' (pools: euc1, usw2)"
    db = sqlite3.connect(tmp_path / "run/ledger.sqlite")
    ok = dict(db.execute("SELECT task_id, COUNT(*) FROM attempts WHERE ok = 1 GROUP BY task_id"))
    assert ok == {"t000": 1, "t001": 1, "t003": 1, "t004": 1}
    assert sorted(p.name for p in (tmp_path / "dest/out").iterdir()) == [
        "t000.txt",
        "t001.txt",
        "t003.txt",
        "t004.txt",
    ]
    executor = result.report["executor"]
    assert executor["name"] == "routed" and executor["workers"] == 3
    assert executor["executors"]["usw2"]["backend"] == "localhost"


def test_the_ttc_two_region_job_file(tmp_path):
    """Stages to regions in a job file; each pool's Lithops config relative to the file."""
    for region in ("euc1", "usw2"):
        (tmp_path / f"lithops-{region}.yaml").write_text(
            "lithops: {backend: aws_lambda, storage: aws_s3}\n"
            f"aws_lambda: {{region: {region}, architecture: arm64}}\n"
        )
    (tmp_path / "job.yaml").write_text(
        f"recipe: {POOLED}\n"
        "dest: out\nstate_dir: st\npools: [dem]\n"
        "executor: routed\n"
        "executors:\n"
        "  euc1: {executor: lithops, lithops_config: lithops-euc1.yaml, mem: 4096}\n"
        "  usw2: {executor: lithops, lithops_config: lithops-usw2.yaml, mem: 2048}\n"
        "route_by: stage\n"
        "routes: {dem: euc1, s1: euc1, s2: usw2}\n"
    )
    job = load_job(tmp_path / "job.yaml")
    routed = create_executor(job.executor, job.workers, **job.executor_settings)
    stage = {s: Task(s, "r", {"stage": s}, "d", "m") for s in ("dem", "s1", "s2", "x")}
    assert [routed.pool_of(stage[s]) for s in ("dem", "s1", "s2", "x")] == [
        "euc1",
        "euc1",
        "usw2",
        None,
    ]
    described = routed.describe()
    assert described["executors"]["usw2"]["region"] == "usw2"
    assert described["executors"]["euc1"]["lithops_config"] == str(tmp_path / "lithops-euc1.yaml")
    # Billed pools: every task priced at the dearest pool (an upper bound).
    assert routed.billing.memory_gb == 4.0


def test_a_pool_with_bad_settings_is_refused(tmp_path):
    with pytest.raises(ValueError, match="pool 'a'.*does not take: scheduler"):
        create_executor("routed", 2, executors={"a": {"executor": "local", "scheduler": "x"}})
    with pytest.raises(ValueError, match="unknown pool"):
        create_executor("routed", 2, executors={"a": {"executor": "local"}}, routes={"x": "b"})
