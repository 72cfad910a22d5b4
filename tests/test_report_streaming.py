"""Reports streamed from the ledger: the same files as the reports made from whole lists of
tasks and attempts (checked against those lists on real runs), the driver's memory for the
reports flat in the run's size, and a large run's page bounded: a sample that says so
(checked in headless Chromium)."""

from __future__ import annotations

import csv
import json
import re
import statistics
import tracemalloc
from contextlib import closing

import pytest

from browser import browser  # noqa: F401 (fixture)
from helpers import flaky_job, kinded_billed_run, read_csv
from tilefleet.engine import html_report, report
from tilefleet.engine.ledger import Ledger
from tilefleet.engine.run import run_job
from tilefleet.task import DONE_STATES, FAILED, SUCCEEDED, Outcome, Task

PRODUCTS = ("dem", "s1", "s2")


def page_data_of(path):
    text = path.read_text()
    block = re.search(r'<script id="tilefleet-data" type="application/json">(.*?)</script>', text)
    return json.loads(block.group(1))


def expected_files(ledger: Ledger) -> dict[str, list[list[str]]]:
    """The CSV reports as the whole lists of tasks and attempts give them: the oracle the
    streamed files are held to."""
    records = list(ledger.records())
    results = report.task_results(ledger.attempts())
    columns = list(ledger.get_meta("source_columns") or ())
    tasks = [[*report.TASK_COLUMNS, *columns]]
    for r in records:
        found = results.get(r.task.id)
        tasks.append(
            [
                r.task.id,
                r.status,
                str(r.attempts),
                f"{r.duration_s:.3f}" if r.duration_s is not None else "",
                r.worker or "",
                r.error or "",
                json.dumps(found, sort_keys=True, separators=(",", ":")) if found else "",
                *[r.task.source.get(c, "") for c in columns],
            ]
        )
    failed = [[*columns, "reason"]]
    failed += [
        [*(r.task.source[c] for c in columns), r.error] for r in records if r.status == FAILED
    ]
    succeeded = [[*columns, "status"]]
    succeeded += [
        [*(r.task.source[c] for c in columns), r.status] for r in records if r.status in DONE_STATES
    ]
    return {"tasks.csv": tasks, "failed.csv": failed, "succeeded.csv": succeeded}


def rows_of(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_streamed_reports_are_those_of_the_whole_lists_after_retries_and_failures(tmp_path):
    """Two sessions in one run dir (retries, failures for good, results): report.json
    from SQL equals the one from the lists, and every CSV row is the oracle's."""
    fails = {"mode": "retryable", "fail_ids": ["t001", "t004"], "fail_times": 2}
    first = run_job(flaky_job(tmp_path, count=6, retries=0, **fails))
    assert first.counts["failed"] == 2
    second = run_job(flaky_job(tmp_path, count=6, retries=2, **fails))
    assert second.counts == {"succeeded": 6, "skipped": 0, "failed": 0, "pending": 0}
    run_dir = tmp_path / "run"
    with closing(Ledger.in_run_dir(run_dir)) as ledger:
        streamed = report.build_report(ledger, run_dir)
        listed = report.build_report(ledger, run_dir, list(ledger.records()), ledger.attempts())
        expected = expected_files(ledger)
    assert streamed == listed
    assert streamed["sessions"] == 2 and streamed["retried"] == 2
    assert streamed["attempts"] == 6 + 2 + 2  # first session 6, then t001/t004 twice more
    assert streamed["results"] == {"attempt": 1 * 4 + 3 * 2}  # each task's success
    assert json.loads((run_dir / "report.json").read_text()) == json.loads(json.dumps(streamed))
    for name, rows in expected.items():
        assert rows_of(run_dir / name) == rows, name


def test_reports_and_the_finish_read_hold_on_awkward_values(tmp_path):
    """Results and source columns of awkward values (a NaN, an integer past 64 bits,
    reals, booleans, objects, keys of mixed types): every CSV row is still the oracle's,
    report.json's results are those of the lists, and the finish hooks' read of the
    ledger (SQL's JSON functions, which a NaN would fail) goes on past the NaN. A NaN or
    infinity in a task's source row is stored null (it once failed every report)."""
    sources = [
        {"n": "plain", "x": 7},
        {"n": 0.30000000000000004, "x": True},
        {"n": {"nested": [1, 2]}, "x": None},
        {"n": 12345678901234567890, "x": "=cmd"},
        {"n": 'é"quoted"', "x": -3},
        # No JSON has a NaN: stored (and read back) null, past 64 bits too.
        {"n": float("nan"), "x": 1},
        {"n": float("-inf"), "x": 2**70},
    ]
    metrics = [
        {"b": 1, "a": 0.1, "warning": "look", "finish": [1.5, 2.5]},
        {"value": float("nan"), "count": 2},
        {"big": 12345678901234567890, "small": 1},
        {"b": 1, 2: 3},
        {},
        {},
        {},
    ]
    run_dir = tmp_path / "run"
    with closing(Ledger.in_run_dir(run_dir)) as ledger:
        ledger.set_meta(run_id="awkward", recipe="many", source_columns=["n", "x"], job={})
        tasks = [
            Task(f"t{i}", "scale_recipes:ManyRecipe", {}, "/nowhere", f"t{i}.json", source=row)
            for i, row in enumerate(sources)
        ]
        ledger.add_tasks(tasks)
        session = ledger.start_session(1000.0, "local", {"name": "local", "workers": 1}, {})
        ledger.start_attempts([t.id for t in tasks], session, 1000.0)
        ledger.finish_attempts(
            [
                (
                    Outcome(t.id, 1, True, WORKERS[i % 3], 1000.0 + i, 1001.0 + i, metrics=m),
                    SUCCEEDED,
                )
                for i, (t, m) in enumerate(zip(tasks, metrics, strict=True))
            ]
        )
        ledger.finish_session(session, 1010.0, False)
        # The finish hooks' read: a NaN in one task's metrics costs that task its value only.
        done = {task.id: value for task, value in ledger.done_tasks("finish")}
        assert done == {"t0": [1.5, 2.5]} | {f"t{i}": None for i in range(1, 7)}
        assert [r.task.source for r in ledger.records(["t5", "t6"])] == [
            {"n": None, "x": 1},
            {"n": None, "x": 2**70},
        ]
        written = report.write_reports(ledger, run_dir)
        listed = report.build_report(ledger, run_dir, list(ledger.records()), ledger.attempts())
        expected = expected_files(ledger)
    assert json.dumps(written["results"]) == json.dumps(listed["results"])  # NaN != NaN
    assert written["results"]["big"] == 12345678901234567890  # exact, not a float
    assert written["results"]["a"] == 0.1 and "finish" not in written["results"]
    for name, rows in expected.items():
        assert rows_of(run_dir / name) == [
            [report.spreadsheet_safe(v) if isinstance(v, str) else v for v in row]
            for row in _as_csv(rows)
        ], name


def test_tasks_that_never_ran_are_written_as_sql_gives_them(tmp_path):
    """A run without source columns where most tasks never ran (the rows ``tasks.csv``
    takes from SQL as they are): every row is still the oracle's, ids that a spreadsheet
    would run included."""
    run_dir = tmp_path / "run"
    with closing(Ledger.in_run_dir(run_dir)) as ledger:
        ledger.set_meta(run_id="plain", recipe="many", source_columns=[], job={})
        ids = ["t0", "=t1", "+t2", "t3", "@t4", "t5"]
        ledger.add_tasks([Task(i, "scale_recipes:ManyRecipe", {}, "/nowhere", "") for i in ids])
        session = ledger.start_session(1000.0, "local", {"name": "local", "workers": 1}, {})
        ledger.start_attempts(["t0", "=t1"], session, 1000.0)
        ledger.finish_attempts(
            [
                (Outcome("t0", 1, True, "w", 1000.0, 1000.5, metrics={"n": 1}), SUCCEEDED),
                (Outcome("=t1", 1, False, "w", 1000.0, 1000.2, error="=bad"), FAILED),
            ]
        )
        ledger.mark("t3", "skipped")
        ledger.finish_session(session, 1001.0, False)
        report.write_reports(ledger, run_dir)
        expected = expected_files(ledger)["tasks.csv"]
    rows = rows_of(run_dir / "tasks.csv")
    assert rows == [[report.spreadsheet_safe(v) for v in row] for row in _as_csv(expected)]
    assert rows[3] == ["'+t2", "pending", "0", "", "", "", ""]


#: Workers whose names a spreadsheet would run: written with a leading quote, in SQL.
WORKERS = ("w", "=1+1", "\tw")


def _as_csv(rows):
    """The oracle's rows as csv writes them: None empty, other values as ``str``."""
    return [["" if v is None else str(v) for v in row] for row in rows]


def test_streamed_kinds_and_costs_are_those_of_the_whole_lists(tmp_path, monkeypatch):
    """A recipe with kinds on a billed executor, one task done before: by_kind (counts,
    medians, measured cost per kind) from SQL equals the lists', report.txt names the
    first failures."""
    result = kinded_billed_run(tmp_path, monkeypatch)
    run_dir = tmp_path / "run"
    with closing(Ledger.in_run_dir(run_dir)) as ledger:
        streamed = report.build_report(ledger, run_dir)
        listed = report.build_report(ledger, run_dir, list(ledger.records()), ledger.attempts())
    assert streamed == listed == result.report
    assert set(streamed["by_kind"]) == {"even", "odd"}
    assert streamed["cost_usd"]["measured"] > 0
    by_kind = sum(p["cost_usd"]["measured"] for p in streamed["by_kind"].values())
    assert by_kind == pytest.approx(streamed["cost_usd"]["measured"], abs=2e-10)  # rounded
    text = (run_dir / "report.txt").read_text()
    assert "first failures (2 of 2):" in text
    assert "  t000004: t000004: bad on purpose" in text


def test_the_median_in_sql_is_the_median_of_the_durations(tmp_path):
    """Odd and even counts, per product and in all: SQLite's window medians are
    ``statistics.median`` of the same durations."""
    with closing(synthetic_ledger(tmp_path / "run", 41)) as ledger:
        records = [r for r in ledger.records() if r.status == SUCCEEDED and r.duration_s]
        count, low, median, high = ledger.duration_summary()
        assert (count, low, high) == (
            len(records),
            min(r.duration_s for r in records),
            max(r.duration_s for r in records),
        )
        assert median == statistics.median(r.duration_s for r in records)
        for product, low, median, high in ledger.grouped_durations("product"):
            mine = [r.duration_s for r in records if r.task.params["product"] == product]
            assert (low, median, high) == (min(mine), statistics.median(mine), max(mine))
        assert html_report.ledger_breakdown(ledger, {"product", "tile"}) == html_report.breakdown(
            list(ledger.records())
        )


def synthetic_ledger(run_dir, count: int, *, workers: int = 4) -> Ledger:
    """A ledger of ``count`` tasks of three products, run once: every seventh failed for
    good, the others succeeded in 1 + (i % 13) / 10 s, each with a result."""
    ledger = Ledger.in_run_dir(run_dir)
    ledger.set_meta(run_id="synthetic", recipe="many", source_columns=["n"], job={})
    tasks = [
        Task(
            f"t{i:07d}",
            "scale_recipes:ManyRecipe",
            {"product": PRODUCTS[i % 3]},
            "/nowhere",
            f"{i % 100:03d}/t{i:07d}.json",
            source={"n": str(i)},
        )
        for i in range(count)
    ]
    ledger.add_tasks(tasks)
    session = ledger.start_session(1000.0, "local", {"name": "local", "workers": workers}, {})
    ledger.start_attempts([t.id for t in tasks], session, 1000.0)
    finished = []
    for i, task in enumerate(tasks):
        started = 1000.0 + i / workers
        ok = i % 7 != 3
        outcome = Outcome(
            task.id,
            1,
            ok,
            f"host:{i % workers}",
            started,
            started + 1 + (i % 13) / 10,
            error=None if ok else f"{task.id}: bad input",
            error_kind=None if ok else "permanent",
            metrics={"bytes_out": 2} if ok else {},
        )
        finished.append((outcome, SUCCEEDED if ok else FAILED))
    ledger.finish_attempts(finished)
    ledger.finish_session(session, 1000.0 + count / workers + 3, False)
    return ledger


def _report_peak_mb(tmp_path, count: int) -> float:
    with closing(synthetic_ledger(tmp_path / f"run-{count}", count)) as ledger:
        tracemalloc.start()
        try:
            report.write_reports(ledger, tmp_path / f"run-{count}")
            return tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()


def test_the_reports_memory_does_not_grow_with_the_run(tmp_path, monkeypatch):
    """The reports of 30,000 tasks take no more of the driver's memory than those of 3,000
    (the page and the timelines drawn from samples of 1,000): reading every task and
    attempt into lists took ten times as much."""
    monkeypatch.setattr(html_report, "MAX_MAP_TASKS", 1000)
    monkeypatch.setattr(html_report, "MAX_MAP_FAILED", 100)
    monkeypatch.setattr(html_report, "MAX_DURATIONS", 1000)
    monkeypatch.setattr(report, "MAX_TIMELINE_ATTEMPTS", 1000)
    _report_peak_mb(tmp_path, 100)  # imports and caches (fonts): not the reports'
    small = _report_peak_mb(tmp_path, 3000)
    large = _report_peak_mb(tmp_path, 30000)
    assert large < 1.3 * small + 1, (small, large)
    tasks = read_csv(tmp_path / "run-30000/tasks.csv")
    assert len(tasks) == 30000 and tasks[-1]["n"] == "29999"
    assert len(read_csv(tmp_path / "run-30000/failed.csv")) == len(range(3, 30000, 7))


def test_a_large_runs_page_is_a_bounded_sample_that_says_so(tmp_path, browser):  # noqa: F811
    """Past the page's limits (lowered here), the map draws a sample spread over the plan
    (and of the failed tasks), the timeline a sample of attempts, the failures table its
    first rows with the count of all; each part says what it shows."""
    from selenium.webdriver.common.by import By

    limits = {"MAX_MAP_TASKS": 10, "MAX_MAP_FAILED": 3, "MAX_FAILURE_ROWS": 4}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in limits.items():
            patch.setattr(html_report, name, value)
        patch.setattr(report, "MAX_TIMELINE_ATTEMPTS", 8)
        fails = [f"t{i:03d}" for i in range(1, 40, 4)]  # 10 tasks fail for good
        result = run_job(
            flaky_job(tmp_path, count=40, mode="permanent", fail_ids=fails, tile_records=True)
        )
    assert result.counts["failed"] == 10 and result.report["attempts"] == 40
    data = page_data_of(result.reports["report.html"])
    drawn, failed = len(data["map"]["ids"]), data["map"]["status"].count("f")
    assert 0 < drawn < 40 and 0 < failed < 10
    assert data["notes"]["map"] == (
        f"A sample: {drawn} of the run's 40 tasks are drawn, about 1 in 4 spread over the "
        f"plan, with {failed} of its 10 failed. tasks.csv lists them all."
    )
    assert data["failures_total"] == 10 and [f[0] for f in data["failures"]] == fails[:4]
    assert data["timeline"]["weight"] == 5 and len(data["timeline"]["outcome"]) == 8
    assert "1 in 5 of the run's 40 attempts" in data["notes"]["timeline"]
    assert data["breakdown"] is None  # the tasks carry no breakdown parameter
    browser.get(result.reports["report.html"].resolve().as_uri())
    for note in ("map-note", "timeline-note"):
        assert browser.find_element(By.ID, note).is_displayed()
        assert browser.find_element(By.ID, note).text.startswith("A sample")
    assert browser.find_element(By.ID, "failure-count").text == "(10)"
    rows = browser.find_elements(By.CSS_SELECTOR, "#failures tr")
    assert rows[-1].text == "… 6 more in failed.csv"
    assert len(browser.execute_script("return window.tilefleetMap")) == drawn
    browser.shot("report-sampled")


def test_a_small_runs_page_has_no_sample_notes(tmp_path, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    result = run_job(flaky_job(tmp_path, count=4, mode="permanent", fail_ids=["t002"]))
    data = page_data_of(result.reports["report.html"])
    assert data["notes"] == {} and "failures_total" not in data
    assert [f[0] for f in data["failures"]] == ["t002"]
    browser.get(result.reports["report.html"].resolve().as_uri())
    for note in ("map-note", "timeline-note", "durations-note"):
        assert browser.execute_script(f"return document.getElementById('{note}').hidden")
    assert browser.find_element(By.ID, "failure-count").text == "(1)"
