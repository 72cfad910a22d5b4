"""A plan of any size on one driver: plans streamed once (never lists), the ledger filled
from a spool, skip-existing by one listing per folder (in parallel), the scheduler fed
page by page, the reports read from the ledger without whole tasks. Checked on real runs
with real worker processes, a real S3 API on loopback and the real TTC tile database."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest

from helpers import read_csv
from tilefleet.engine import planning
from tilefleet.engine.ledger import Ledger
from tilefleet.engine.plan_map import write_plan_map_of
from tilefleet.engine.run import run_job
from tilefleet.engine.skip import find_done_markers
from tilefleet.engine.spool import PlanMarkers, PlanSpool, TaskFeed, feed_count
from tilefleet.errors import JobError
from tilefleet.jobs import build_job
from tilefleet.store.objects import PARTIAL_MARK
from tilefleet.task import Task

RECIPE = "scale_recipes:ManyRecipe"


def many_job(tmp_path, **values):
    return build_job(
        {
            "recipe": RECIPE,
            "dest": str(tmp_path / "dest"),
            "run_dir": str(tmp_path / "run"),
            "workers": 2,
            **values,
        }
    )


def ledger_rows(run_dir):
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    return db.execute("SELECT id, status, attempts FROM tasks ORDER BY seq").fetchall()


def test_a_generator_plan_is_read_once_and_recorded_whole_in_plan_order(tmp_path):
    reads = tmp_path / "reads.txt"
    result = run_job(many_job(tmp_path, count=5000, limit=3, plan_reads=str(reads)))
    assert reads.read_text() == "1"
    assert result.planned == 5000 and result.exit_code == 0
    rows = ledger_rows(tmp_path / "run")
    assert [r[0] for r in rows] == [f"t{i:06d}" for i in range(5000)]
    assert [r[1] for r in rows[:4]] == ["succeeded"] * 3 + ["pending"]
    assert {r[1] for r in rows[3:]} == {"pending"}
    tasks = read_csv(tmp_path / "run/tasks.csv")
    assert [t["id"] for t in tasks] == [r[0] for r in rows]
    assert tasks[0]["n"] == "0" and tasks[4999]["n"] == "4999"
    assert tasks[0]["results"] == '{"bytes_out":2}' and tasks[3]["results"] == ""
    assert result.report["tasks"] == 5000 and result.report["results"] == {"bytes_out": 6}


def test_limit_counts_tasks_still_to_do_and_every_done_one_is_skipped(tmp_path):
    dest = tmp_path / "dest"
    for i in range(0, 40, 2):  # the even tasks are done
        marker = dest / f"{i % 4:03d}/t{i:06d}.json"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_bytes(b"{}")
    (dest / "001").mkdir()
    (dest / "001/t000001.json").write_bytes(b"")  # an empty marker is no marker
    gone = _finished_pid()
    leftover = dest / f"003/t000003.json{PARTIAL_MARK}{gone}-0dead000"  # a killed write
    leftover.parent.mkdir()
    leftover.write_bytes(b"half")
    result = run_job(many_job(tmp_path, count=40, folders=4, limit=5))
    statuses = dict((r[0], r[1]) for r in ledger_rows(tmp_path / "run"))
    ran = [i for i, s in statuses.items() if s == "succeeded"]
    assert ran == ["t000001", "t000003", "t000005", "t000007", "t000009"]
    assert sum(s == "skipped" for s in statuses.values()) == 20
    assert result.estimate.tasks == 5 and result.estimate.skipped == 20
    assert not leftover.exists()


def test_done_tasks_are_recorded_skipped_as_the_plan_is_and_a_resumed_one_loses_its_error(
    tmp_path,
):
    """A fresh run writes its done tasks once, as skipped; a task that failed in an earlier
    session and whose outputs someone else made since is skipped on the rerun, its error
    gone."""
    job = many_job(tmp_path, recipe="scale_recipes:KindedRecipe", count=10, folders=1)
    marker = tmp_path / "dest/000/t000000.json"
    marker.parent.mkdir(parents=True)
    marker.write_bytes(b"{}")
    first = run_job(job)
    assert first.counts == {"succeeded": 7, "skipped": 1, "failed": 2, "pending": 0}
    (tmp_path / "dest/000/t000004.json").write_bytes(b"{}")  # t000004 failed on purpose
    again = run_job(job)
    assert again.counts == {"succeeded": 7, "skipped": 2, "failed": 1, "pending": 0}
    db = sqlite3.connect(tmp_path / "run/ledger.sqlite")
    rows = dict(db.execute("SELECT id, status || ':' || COALESCE(error, '') FROM tasks"))
    assert rows["t000000"] == rows["t000004"] == "skipped:"
    assert rows["t000009"] == "failed:t000009: bad on purpose"


def test_a_new_ledger_takes_its_plan_through_a_rollback_journal_then_is_wal_again(tmp_path):
    """The one large write of a new ledger skips the WAL, whose every page would be written
    twice; the ledger is in WAL mode once it is done (a resumed run's is never switched),
    and a reader holding the ledger open meanwhile (a monitor) leaves it in WAL mode."""
    modes = []
    original, switch = Ledger.add_spooled_tasks, Ledger._journal_mode

    def add_spooled_tasks(self, spool):
        original(self, spool)
        modes.append(self.db.execute("PRAGMA journal_mode").fetchone()[0])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Ledger, "add_spooled_tasks", add_spooled_tasks)
        patch.setattr(Ledger, "_journal_mode", _recording(switch, modes))
        run_job(many_job(tmp_path, count=300, limit=2))
        assert modes == ["delete", "wal", "wal"]  # switched there and back, then WAL
        modes.clear()
        run_job(many_job(tmp_path, count=300, limit=2))  # resumed: nothing to switch
        assert modes == ["wal"]
        modes.clear()
        other = tmp_path / "other"
        reader = None

        def held_open(self, mode):
            nonlocal reader
            if reader is None:  # a monitor's read, open across the switch
                reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
                reader.execute("BEGIN")
                reader.execute("SELECT COUNT(*) FROM meta").fetchone()
            return switch(self, mode)

        patch.setattr(Ledger, "_journal_mode", _recording(held_open, modes))
        result = run_job(many_job(other, count=300, limit=2))
        reader.close()
        assert modes == ["wal", "wal"] and result.exit_code == 0
    rows = ledger_rows(other / "run")
    assert len(rows) == 300 and [r[1] for r in rows[:3]] == ["succeeded"] * 2 + ["pending"]


def _recording(switch, modes):
    def recorded(self, mode):
        modes.append(switch(self, mode))
        return modes[-1]

    return recorded


def _finished_pid() -> int:
    """The pid of a process that has ended (what a killed writer leaves in its names)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_only_then_resume_run_each_task_once(tmp_path):
    first = run_job(many_job(tmp_path, count=30, only=["t000007", "t000003"]))
    assert first.counts["succeeded"] == 2
    again = run_job(many_job(tmp_path, count=30))
    assert again.counts == {"succeeded": 30, "skipped": 0, "failed": 0, "pending": 0}
    assert {r[2] for r in ledger_rows(tmp_path / "run")} == {1}


def test_an_unknown_only_id_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(JobError, match="unknown task id.*nope"):
        run_job(many_job(tmp_path, count=30, only=["t000001", "nope"]))
    assert not (tmp_path / "run").exists()


def test_a_declined_run_leaves_no_ledger_and_no_spool(tmp_path, monkeypatch):
    import tempfile

    from tilefleet.engine.executors.base import Billing
    from tilefleet.engine.executors.local import LocalExecutor

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(LocalExecutor, "billing", Billing(memory_gb=1.0, usd_per_gb_s=1e-5))
    result = run_job(many_job(tmp_path, count=30), confirm=lambda question: False)
    assert result.declined and not (tmp_path / "run").exists()
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("make_spool", [PlanSpool, PlanMarkers], ids=["run", "dry-run"])
def test_rejected_tasks_of_a_streamed_plan_fail_alone(tmp_path, make_spool):
    from scale_recipes import ManyRecipe

    class Clashing(ManyRecipe):
        def plan(self, params):
            yield from super().plan(params)
            ref = "scale_recipes:ManyRecipe"
            yield Task("late", ref, {}, params.dest, "000/t000000.json", {"n": "late"})
            yield Task("nul\x00id", ref, {}, params.dest, "x/nul.json", {"n": "nul"})

    spool = make_spool()
    try:
        digest = planning.digest_plan(
            Clashing(),
            Clashing.Params(dest=str(tmp_path), count=20),
            known={},
            only=None,
            spool=spool,
            keep=True,
        )
        selected = list(spool.selected_ids())
    finally:
        spool.close()
    assert digest.planned == 22 and len(digest.kept) == 22
    reasons = {t.id: t.rejected for t in digest.rejected}
    assert reasons == {
        "late": "its outputs (000/t000000.json) are also those of t000000",
        "nul\\x00id": "task id nul\\x00id holds a NUL",
    }
    assert selected == [f"t{i:06d}" for i in range(20)]


@pytest.mark.parametrize("make_spool", [PlanSpool, PlanMarkers], ids=["run", "dry-run"])
def test_the_spooled_one_writer_check_and_skip_span_batches(tmp_path, monkeypatch, make_spool):
    """Batches of 4: a marker taken a batch earlier or within a batch is rejected naming
    its first writer, as the check of a plan in memory does; a task planned twice under
    its own id is not; the skip finds the done markers of the selected writers only. The
    same for a run's spool and a dry run's markers in memory."""
    from scale_recipes import ManyRecipe

    monkeypatch.setattr(planning, "BATCH", 4)
    dest, ref = str(tmp_path / "dest"), "scale_recipes:ManyRecipe"
    tasks = [Task(f"t{i}", ref, {}, dest, f"f{i % 2}/m{i}.json") for i in range(10)]
    tasks += [Task("late", ref, {}, dest, "f1/m1.json"), Task("t3", ref, {}, dest, "f1/m3.json")]
    tasks += [Task("x", ref, {}, dest, "f0/m10.json"), Task("y", ref, {}, dest, "f0/m10.json")]
    # In one batch, the first in plan order holds, whatever the order of the ids.
    tasks += [Task("zz", ref, {}, dest, "f0/m11.json"), Task("aa", ref, {}, dest, "f0/m11.json")]

    class Listed(ManyRecipe):
        def plan(self, params):
            return iter(tasks)

    for marker in ("f0/m0.json", "f1/m1.json", "f0/m10.json", "f1/m5.json"):
        (tmp_path / "dest" / marker).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "dest" / marker).write_bytes(b"{}")
    spool = make_spool()
    try:
        digest = planning.digest_plan(
            Listed(),
            Listed.Params(dest=dest, count=0),
            known={"t5": "succeeded"},  # done in this run: not selected, not listed for
            only=None,
            spool=spool,
            keep=False,
        )
        done = spool.find_done()
        if isinstance(spool, PlanSpool):  # the folders it lists (a dry run's: in memory)
            assert sorted(spool.marker_folders()) == [(dest, "f0"), (dest, "f1")]
    finally:
        spool.close()
    reasons = {t.id: t.rejected for t in digest.rejected}
    assert reasons == {
        "late": "its outputs (f1/m1.json) are also those of t1",
        "y": "its outputs (f0/m10.json) are also those of x",
        "aa": "its outputs (f0/m11.json) are also those of zz",
    }
    in_memory = [t for t in planning.checked_plan(Listed(), tasks) if t.rejected]
    assert {t.id: t.rejected for t in in_memory} == reasons
    assert done == {"t0", "t1", "x"}


def test_planning_and_skipping_hold_nothing_per_task(tmp_path, monkeypatch):
    """The one-writer check and the skip listing of a run ask the spool, not per-task
    records: 200,000 planned tasks (1 in 100 done, 1 run) cost about 13 MB of Python
    objects at peak (a batch of tasks, the modules a run imports), where holding their ids
    and markers took 45 MB. (A dry run keeps them in memory: it runs nothing.)"""
    monkeypatch.setattr(planning, "KEPT_FOR_MAP", 10)  # no plan kept for a map
    for i in range(0, 200_000, 100):
        marker = tmp_path / f"dest/{i % 100:03d}/t{i:06d}.json"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_bytes(b"{}")
    tracemalloc.start()
    try:
        result = run_job(many_job(tmp_path, count=200_000, folders=100, limit=1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.planned == 200_000 and result.estimate.skipped == 2_000
    assert result.estimate.tasks == 1 and result.report["succeeded"] == 1  # --limit 1
    assert peak < 20 * 2**20, f"{peak / 2**20:.1f} MB of Python objects at peak"


def test_the_feed_gives_the_selected_tasks_in_plan_order_then_the_retries(tmp_path):
    spool = PlanSpool()
    try:
        tasks = [Task(f"t{i}", "r", {"i": i}, "d", f"m/{i}") for i in range(25_000)]
        for task in tasks:
            spool.add(task, selected=task.params["i"] % 3 != 0)
        selected = [t.id for t in tasks if t.params["i"] % 3 != 0]
        skip = {"t1", "t20000"}
        count = feed_count(selected, skip, limit=None)
        feed = TaskFeed(spool, count, skip)
        assert len(feed) == count == len(selected) - 2
        first = feed.popleft()
        assert first == tasks[2]  # t0 not selected, t1 skipped
        feed.append(first)  # a retry goes after every fresh task
        out = [feed.popleft() for _ in range(count)]
        assert [t.id for t in out[:-1]] == [i for i in selected if i not in skip][1:]
        assert out[-1] == first and not feed
        limited = TaskFeed(spool, feed_count(selected, skip, limit=4), skip)
        assert [t.id for t in limited.drain()] == ["t2", "t4", "t5", "t7"]
    finally:
        spool.close()
    assert not spool.path.exists()


def test_done_markers_are_found_by_one_listing_per_folder_also_past_a_page(tmp_path, s3):
    s3.create_bucket(Bucket="scale")
    keys = [f"big/t{i:05d}.json" for i in range(1100)]  # past one LIST page (1000 keys)
    keys += [f"f{f}/t{i}.json" for f in range(3) for i in range(5)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket="scale", Key=k, Body=b"{}"), keys))
    s3.put_object(Bucket="scale", Key="f0/empty.json", Body=b"")
    markers = [(f"id:{k}", "s3://scale", k) for k in keys]
    markers += [("empty", "s3://scale", "f0/empty.json"), ("absent", "s3://scale", "f9/x.json")]
    markers += [("none", "s3://scale", "")]
    assert find_done_markers(markers) == {f"id:{k}" for k in keys}


def test_the_reports_read_what_they_show_without_whole_tasks(data_dir, tmp_path):
    job = {
        "recipe": "tile-index",
        "tiles": {
            "grid": "ttc",
            "bbox": [30.0, -1.0, 30.3, -0.8],
            "tiledb": str(data_dir / "ttc_tiledb/tiledb.parquet"),
            "year": 2023,
        },
        "dest": str(tmp_path / "dest"),
        "run_dir": str(tmp_path / "run"),
        "workers": 2,
        "limit": 4,
    }
    run_job(build_job(job))
    with closing(Ledger.in_run_dir(tmp_path / "run", readonly=True)) as ledger:
        whole = list(ledger.records())
        light = list(ledger.report_records({"tile", "product"}))
    assert len(light) == len(whole) > 4
    for a, b in zip(whole, light, strict=True):
        assert (a.status, a.attempts, a.duration_s, a.worker, a.error) == b[1:]
        assert (a.task.id, a.task.source) == (b.task.id, b.task.source)
        assert b.task.params == {"tile": a.task.params["tile"]}


def test_a_large_dry_run_keeps_no_tasks_and_its_map_plans_again(tmp_path, monkeypatch):
    monkeypatch.setattr(planning, "KEPT_FOR_MAP", 10)
    job = many_job(tmp_path, count=30, dry_run=True)
    result = run_job(job)
    assert result.planned == 30 and result.planned_tasks == []
    small = run_job(many_job(tmp_path, count=8, dry_run=True))
    assert [t.id for t in small.planned_tasks] == [f"t{i:06d}" for i in range(8)]
    page = write_plan_map_of(job, result, tmp_path / "plan.html").read_text()
    data = json.loads(page.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    assert data["summary"]["tasks"] == 30 and len(data["map"]["ids"]) == 30


def test_ttc_tiles_stream_in_blocks_and_a_tiled_plan_indexes_like_a_list(data_dir):
    from tilefleet.recipes import get_recipe
    from tilefleet.tiles import ttc

    recipe = get_recipe("tile-index")
    params = recipe.Params.model_validate(
        {
            "tiles": {
                "grid": "ttc",
                "bbox": [-60.0, -10.0, -50.0, -5.0],  # about 16k tiles: two blocks
                "tiledb": str(data_dir / "ttc_tiledb/tiledb.parquet"),
                "year": 2023,
            },
            "dest": "out",
        }
    )
    selection = ttc.TtcGrid(**params.tiles.model_dump()).select()
    assert len(selection) > ttc._TILE_BLOCK
    plan = recipe.plan(params)
    tasks = list(plan)
    assert len(plan) == len(tasks) == len(selection)
    assert [t.id for t in tasks] == selection.ids()
    bounds = selection.bounds()
    for i in (0, ttc._TILE_BLOCK - 1, ttc._TILE_BLOCK, len(tasks) - 1):
        assert tasks[i].params["tile"]["bounds"] == bounds[i].tolist()
        assert plan[i] == tasks[i]
    assert plan[-1] == tasks[-1] and plan[:2] == tasks[:2]
    assert tasks[0].recipe == recipe.reference()
    with pytest.raises(IndexError):
        plan[len(tasks)]
