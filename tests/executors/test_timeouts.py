"""Task timeouts: an attempt that hangs past ``task_timeout`` is stopped, fails retryable
"timed out after N s", is retried and then fails; the other tasks succeed once each. On
real engines (a Dask LocalCluster, a local Ray), and on HTCondor nodes run here."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from executors.hanging_recipe import HangingParams, HangingRecipe, start_boards
from executors.test_htcondor import node_command, parse_dag, parse_submit
from helpers import flaky_job, read_csv
from tilefleet.engine.executors.base import start_reported_if_long
from tilefleet.engine.executors.htcondor import HTCondorExecutor
from tilefleet.engine.run import run_job
from tilefleet.engine.task_runner import load_task, write_task_file
from tilefleet.errors import RETRYABLE

HANGING = "executors.hanging_recipe:HangingRecipe"
STUCK = "t001"


def attempts_by_task(run_dir) -> dict[str, list[tuple[int, str | None]]]:
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    try:
        rows = db.execute("SELECT task_id, ok, error FROM attempts ORDER BY rowid").fetchall()
    finally:
        db.close()
    attempts: dict[str, list[tuple[int, str | None]]] = {}
    for task_id, ok, error in rows:
        attempts.setdefault(task_id, []).append((ok, error))
    return attempts


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["dask", "ray"])
def test_a_hanging_attempt_is_stopped_retried_then_failed_and_the_others_go_on(
    executor, tmp_path, request, caplog
):
    if executor == "ray":
        request.getfixturevalue("ray_session")
    job = flaky_job(
        tmp_path,
        recipe=HANGING,
        executor=executor,
        count=5,
        fail_ids=[STUCK],
        task_timeout=1.5,
        retries=1,
    )
    caplog.set_level(logging.DEBUG, logger="tilefleet")
    result = run_job(job)

    assert result.exit_code == 1
    assert (result.report["succeeded"], result.report["failed"]) == (4, 1)
    if executor == "ray":  # started once the stuck attempt had been in flight a while
        assert [r for r in caplog.records if "starting tilefleet-starts-" in r.getMessage()]
    attempts = attempts_by_task(tmp_path / "run")
    assert attempts[STUCK] == [(0, "timed out after 1.5 s")] * 2  # stopped, retried, stopped
    (failed,) = read_csv(tmp_path / "run/failed.csv")
    assert failed["tile"] == STUCK and failed["reason"] == "timed out after 1.5 s"
    for task_id in {f"t{i:03d}" for i in range(5)} - {STUCK}:
        assert attempts[task_id] == [(1, None)]  # once each, no attempt lost to the stop
        assert (tmp_path / f"dest/out/{task_id}.txt").read_text() == f"{task_id} done"
    assert not (tmp_path / f"dest/out/{STUCK}.txt").exists()


@pytest.mark.slow
def test_an_htcondor_node_past_the_timeout_reports_it_timed_out_and_is_retried(tmp_path):
    """No HTCondor pool runs here: each node's command is run with subprocess as the pool
    would, in the environment its submit file gives, and rerun as ``RETRY`` says."""
    run_dir = tmp_path / "run"
    job = flaky_job(
        tmp_path, recipe=HANGING, executor="htcondor", count=2, fail_ids=[STUCK], retries=1
    )
    run_job(job)  # plans, records every task pending, writes the DAG (no schedd takes it)
    # The DAG again, from the executor given a timeout as the engine gives it one.
    executor = HTCondorExecutor(cluster_options={"environment": '"GDAL_CACHEMAX=64"'})
    executor.task_timeout = 1.5
    tasks = [load_task(run_dir, f"t{i:03d}") for i in range(2)]
    executor.launch(tasks, run_dir, retries=1, submit=False)

    folder = run_dir / "htcondor"
    submit = parse_submit(folder / "task.sub")
    environment = dict(pair.split("=", 1) for pair in submit["environment"].strip('"').split())
    assert environment == {"TILEFLEET_TASK_TIMEOUT": "1.5", "GDAL_CACHEMAX": "64"}
    # A node too stuck to stop itself is removed by the schedd a while after the timeout.
    assert "time() - EnteredCurrentStatus > 301" in submit["periodic_remove"]
    nodes, _ = parse_dag(folder / "tilefleet.dag")
    codes: dict[str, list[int]] = {}
    for node in nodes.values():
        for _try in range(1 + node["retry"]):
            done = subprocess.run(
                node_command(submit, node["vars"]),
                cwd=submit["initialdir"],
                env={**os.environ, **environment},
                capture_output=True,
                text=True,
                timeout=60,
            )
            codes.setdefault(node["vars"]["task_id"], []).append(done.returncode)
            if done.returncode in (0, node["unless_exit"]):
                break
    assert codes == {"t000": [0], STUCK: [1, 1]}  # stopped, exit 1: RETRY reruns it

    finish = parse_submit(folder / "final.sub")
    done = subprocess.run(
        node_command(finish, {}), cwd=finish["initialdir"], capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr
    assert attempts_by_task(run_dir) == {
        "t000": [(1, None)],
        STUCK: [(0, "timed out after 1.5 s")] * 2,
    }
    (failed,) = read_csv(run_dir / "failed.csv")
    assert failed["tile"] == STUCK and failed["reason"] == "timed out after 1.5 s"
    assert not (tmp_path / f"dest/out/{STUCK}.txt").exists()


def test_a_node_without_the_run_dir_reports_its_timeout_in_its_outcome_file(tmp_path):
    """``task run-file`` (a pool without a shared file system) stops its attempt the same
    way, and the outcome file that HTCondor's transfer brings home says why."""
    (task,) = [t for t in HangingRecipe().plan(hanging_params(tmp_path)) if t.id == STUCK]
    task_file = write_task_file(task, tmp_path / "t0000001.json")
    done = subprocess.run(
        [sys.executable, "-m", "tilefleet", "task", "run-file", str(task_file)]
        + ["--attempt", "1", "--outcome", "outcome.json"],
        cwd=tmp_path,
        env={**os.environ, "TILEFLEET_TASK_TIMEOUT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr  # retryable: DAGMan's RETRY reruns it
    outcome = json.loads((tmp_path / "outcome.json").read_text())
    assert (outcome["task_id"], outcome["attempt"], outcome["ok"]) == (STUCK, 1, False)
    assert (outcome["error"], outcome["error_kind"]) == ("timed out after 1 s", RETRYABLE)
    assert "timed out after 1 s" in done.stderr


def hanging_params(tmp_path):
    return HangingParams(
        dest=str(tmp_path / "dest"), state_dir=str(tmp_path / "st"), count=2, fail_ids=[STUCK]
    )


def test_only_attempts_that_run_long_report_their_start_and_all_share_one_thread():
    reports: list[tuple[str, float]] = []
    for _ in range(200):  # short attempts: none reports, and none starts a thread
        with start_reported_if_long(0.4, lambda elapsed: reports.append(("short", elapsed))):
            pass
    threads = threading.active_count()
    with (
        start_reported_if_long(0.4, lambda elapsed: reports.append(("long", elapsed))),
        start_reported_if_long(0.4, lambda elapsed: reports.append(("nested", elapsed))),
    ):
        running = threading.active_count()
        time.sleep(0.8)

    assert sorted(name for name, _ in reports) == ["long", "nested"]  # once each
    assert all(0.2 <= elapsed < 0.8 for _, elapsed in reports)  # after half the timeout
    assert running == threads  # no thread of their own


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_reports_its_long_attempts_from_its_own_thread():
    with start_reported_if_long(60, lambda elapsed: None):  # the parent's thread is up
        pass
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        with start_reported_if_long(0.2, lambda elapsed: os.write(write, b"reported")):
            time.sleep(0.3)
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    assert os.read(read, 100) == b"reported" and os.waitstatus_to_exitcode(status) == 0
    os.close(read)


@pytest.mark.slow
def test_a_ray_run_of_short_attempts_with_a_timeout_starts_no_start_board(tmp_path, ray_session):
    """The board is a process of its own: started only once some attempt has been in
    flight for a while (the hanging test above shows it started and used then)."""
    recipe = "executors.hanging_recipe:RayBoardsRecipe"
    job = flaky_job(tmp_path, recipe=recipe, executor="ray", count=8, task_timeout=30)
    warm = ray_session.remote(lambda: None)  # workers up (those stopped above restart)
    ray_session.get([warm.remote() for _ in range(4)])
    earlier = start_boards(ray_session)  # of runs before (a killed actor goes in a while)
    result = run_job(job)

    assert result.report["succeeded"] == 8
    db = sqlite3.connect(tmp_path / "run/ledger.sqlite")
    try:
        metrics = [json.loads(m) for (m,) in db.execute("SELECT metrics FROM attempts")]
    finally:
        db.close()
    assert len(metrics) == 8
    assert all(set(m["boards"]) <= set(earlier) for m in metrics)  # none of this run
