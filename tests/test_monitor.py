"""The live monitor: a local page that follows a run by reading its ledger read-only; a
real run started with ``--monitor`` in a subprocess, watched in a real headless Chromium
until its counters reach the final counts; then ``tilefleet monitor`` on the ended run."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from browser import browser  # noqa: F401 (fixture)
from helpers import flaky_job
from tilefleet.cli import app
from tilefleet.engine.monitor import MonitorServer
from tilefleet.engine.run import run_job

TESTS = Path(__file__).parent
COUNT, FAILING = 16, ["t003", "t010"]


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def wait_for(predicate, timeout: float = 60.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not true within {timeout} s: {predicate}")


def test_monitor_serves_the_page_and_data_of_an_ended_run_read_only(tmp_path):
    result = run_job(flaky_job(tmp_path, count=4, mode="permanent", fail_ids=["t001"]))
    ledger = tmp_path / "run/ledger.sqlite"
    # A writer holding a write transaction does not block the monitor (WAL, read-only).
    writer = sqlite3.connect(ledger, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    server = MonitorServer(tmp_path / "run", port=0).start()
    try:
        assert server.url.startswith("http://localhost:")
        assert server.server.server_address[0] == "127.0.0.1"
        data = get_json(server.url + "api/data")
        assert data["summary"]["succeeded"] == 3 and data["summary"]["failed"] == 1
        assert data["live"]["state"] == "finished" and data["failures"][0][0] == "t001"
        with urllib.request.urlopen(server.url, timeout=10) as response:
            page = response.read().decode()
        assert '"endpoint":"api/data"' in page and result.report["run_id"] in page
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        server.stop()
    # The monitor wrote nothing: the ledger is as the run left it.
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if "ledger" in p.name)[0] == (
        "ledger.sqlite"
    )


def test_monitor_shows_outcomes_of_detached_nodes_not_merged_yet(tmp_path):
    """A launched plan (HTCondor DAG): nodes report outcome files that reach the ledger only
    when merged; the monitor shows them live, and merges (writes) nothing."""
    from tilefleet.engine.task_runner import write_outcome
    from tilefleet.task import Outcome

    run_job(flaky_job(tmp_path, count=4, limit=2))
    run_dir = tmp_path / "run"
    (run_dir / "outcomes").mkdir()  # made by the nodes' attempt claims
    stamp = time.time()
    write_outcome(run_dir, Outcome("t002", 1, True, "node-a:1", stamp, stamp + 2.0))
    write_outcome(
        run_dir,
        Outcome("t003", 1, False, "node-b:1", stamp, stamp + 1.0, "bad input", "permanent"),
    )
    server = MonitorServer(run_dir, port=0).start()
    try:
        data = get_json(server.url + "api/data")
    finally:
        server.stop()
    summary = data["summary"]
    assert (summary["succeeded"], summary["failed"], summary["pending"]) == (3, 1, 0)
    assert data["failures"] == [["t003", 1, "bad input"]]
    assert len(list((run_dir / "outcomes").glob("*.json"))) == 2  # still unmerged
    with closing(sqlite3.connect(run_dir / "ledger.sqlite")) as db:
        assert dict(db.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status")) == {
            "succeeded": 2,
            "pending": 2,
        }


def test_monitor_waits_for_a_run_dir_without_a_ledger_yet(tmp_path):
    server = MonitorServer(tmp_path / "not-yet", port=0).start()
    try:
        data = get_json(server.url + "api/data")
        assert data["live"]["state"].startswith("waiting")
    finally:
        server.stop()


def test_monitor_help_says_how_to_reach_it_from_another_machine():
    out = CliRunner().invoke(app, ["monitor", "--help"], env={"COLUMNS": "200"})
    text = " ".join(out.output.split())
    assert out.exit_code == 0 and "ssh -L 8765:localhost:8765" in text and "127.0.0.1" in text
    run_help = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert "--monitor" in run_help.output and "--monitor-port" in run_help.output
    recipe_help = CliRunner().invoke(app, ["tile-index", "--help"], env={"COLUMNS": "200"})
    assert "--monitor" in recipe_help.output


@pytest.mark.slow
def test_a_run_with_monitor_is_followed_live_to_its_final_counts(tmp_path, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    job = tmp_path / "job.yaml"
    job.write_text(
        yaml.safe_dump(
            {
                "recipe": "engine_recipes:FlakyRecipe",
                "dest": str(tmp_path / "dest"),
                "state_dir": str(tmp_path / "st"),
                "run_dir": str(tmp_path / "run"),
                "count": COUNT,
                "mode": "permanent",
                "fail_ids": FAILING,
                "sleep_s": 0.5,
                "tile_records": True,
                "workers": 2,
                "backoff_s": 0.01,
            }
        )
    )
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tilefleet", "run", str(job), "--monitor", "--monitor-port",
         str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        url = f"http://localhost:{port}/"

        def page_up():
            try:
                return get_json(url + "api/data")["live"]["state"] == "running"
            except OSError:
                return False

        wait_for(page_up, timeout=60)
        browser.get(url)
        seen = []

        def counters():
            # In one script: the page redraws its counters on every poll.
            succeeded, failed, state = browser.execute_script(
                "var v = function (k) {"
                " return document.getElementById('count-' + k).dataset.value; };"
                "return [v('succeeded'), v('failed'), document.body.dataset.liveState];"
            )
            seen.append((int(succeeded), int(failed)))
            return state

        mid_shot = False
        deadline = time.monotonic() + 120
        while counters() != "finished" and time.monotonic() < deadline:
            if not mid_shot and 0 < seen[-1][0] < COUNT - len(FAILING):
                browser.shot("monitor-running")
                shapes = browser.execute_script("return window.tilefleetMap")
                statuses = {s["status"] for s in shapes}
                # The map fills in: some tiles done, others still to do.
                assert len(shapes) == COUNT and "succeeded" in statuses
                assert statuses & {"pending", "running"}
                mid_shot = True
            time.sleep(0.2)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, err  # some tasks failed
    assert f"monitor: http://localhost:{port}/" in err and "ssh -L" in err
    assert seen[-1] == (COUNT - len(FAILING), len(FAILING))
    # It followed the run: counters went up step by step, never back.
    values = [succeeded for succeeded, _ in seen]
    assert values == sorted(values) and len(set(values)) > 2, values
    assert mid_shot
    shapes = browser.execute_script("return window.tilefleetMap")
    assert {s["id"] for s in shapes if s["status"] == "failed"} == set(FAILING)
    assert all(s["reason"] == f"bad input in {s['id']}" for s in shapes if s["id"] in FAILING)
    badge = browser.find_element(By.ID, "live-state").text
    assert "finished" in badge
    browser.shot("monitor-finished")

    # Once the run has ended, `tilefleet monitor RUN_DIR` shows its final report.
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tilefleet", "monitor", str(tmp_path / "run"), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://localhost:{port}/"

        def served():
            try:
                return get_json(url + "api/data")
            except OSError:
                return None

        data = wait_for(served, timeout=60)
        assert data["live"]["state"] == "finished"
        assert data["summary"]["succeeded"] == COUNT - len(FAILING)
        browser.get(url)
        wait_for(
            lambda: (
                browser.find_element(By.TAG_NAME, "body").get_attribute("data-live-state")
                == "finished"
            ),
            timeout=30,
        )
        succeeded = browser.execute_script(
            "return document.getElementById('count-succeeded').dataset.value"
        )
        assert int(succeeded) == COUNT - len(FAILING)
        browser.shot("monitor-after-the-run")
    finally:
        server.terminate()
        server.communicate(timeout=30)
