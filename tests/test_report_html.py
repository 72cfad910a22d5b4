"""report.html: one self-contained page per run with the tile map, the timeline and the
failures; checked in a real headless Chromium on real runs (tile-index over TTC tiles,
run twice so that some tiles are skipped, with tiles whose output cannot be written)."""

from __future__ import annotations

import json
import re
from contextlib import closing

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from browser import browser  # noqa: F401 (fixture)
from helpers import flaky_job, kinded_billed_run, read_csv
from tilefleet.cli import app
from tilefleet.engine.footprints import footprints, task_footprint
from tilefleet.engine.html_report import STATUS_CODES, breakdown, map_geometry, map_status
from tilefleet.engine.ledger import Ledger, TaskRecord
from tilefleet.engine.result import REPORT_FILES
from tilefleet.engine.run import run_job
from tilefleet.jobs import build_job
from tilefleet.task import Task
from tilefleet.tiles.tile import Tile

COLOURS = {
    "succeeded": "#2e9e44",
    "skipped": "#7fb8e6",
    "failed": "#d03030",
    "pending": "#c8ccd0",
}
BBOX = [30.0, -1.0, 30.5, -0.6]  # 9 x 8 TTC tiles
FIRST = 20  # tiles done by the first run


def ttc_job(data_dir, tmp_path, run_dir, **values):
    return {
        "recipe": "tile-index",
        "tiles": {
            "grid": "ttc",
            "bbox": BBOX,
            "tiledb": str(data_dir / "ttc_tiledb/tiledb.parquet"),
            "year": 2023,
        },
        "dest": str(tmp_path / "dest"),
        "run_dir": str(tmp_path / run_dir),
        "workers": 2,
        "backoff_s": 0.01,
        "retries": 1,
        **values,
    }


@pytest.fixture
def tiled_run(data_dir, tmp_path):
    """A first run of 20 TTC tiles, then a second run (new run dir, same destination) of
    all 72: 20 skipped, 3 failed (a folder stands where their item goes), 49 succeeded."""
    first = run_job(build_job(ttc_job(data_dir, tmp_path, "run1", limit=FIRST)))
    assert first.report["succeeded"] == FIRST
    with closing(Ledger.in_run_dir(tmp_path / "run1", readonly=True)) as ledger:
        pending = [r.task.id for r in ledger.records() if r.status == "pending"]
    broken = pending[:3]
    for tile_id in broken:
        (tmp_path / "dest" / f"{tile_id}.json" / "in-the-way").mkdir(parents=True)
    second = run_job(build_job(ttc_job(data_dir, tmp_path, "run2")))
    counts = second.counts
    assert counts == {"succeeded": 49, "skipped": FIRST, "failed": 3, "pending": 0}
    return second, broken


def test_report_html_is_written_with_the_other_reports_and_is_self_contained(tiled_run):
    result, _ = tiled_run
    assert "report.html" in REPORT_FILES and "report.html" in result.reports
    html = result.reports["report.html"].read_text()
    # Offline: no external script, style, image or font; no URL to fetch at all.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)
    assert "http://" not in html and "https://" not in html
    data = json.loads(
        re.search(
            r'<script id="tilefleet-data" type="application/json">(.*?)</script>', html
        ).group(1)
    )
    assert data["summary"]["failed"] == 3 and data["map"]["kind"] == "tiles"
    assert len(data["map"]["ids"]) == 72 and len(data["failures"]) == 3


def test_the_map_has_one_shape_per_tile_in_its_status_colour(tiled_run, browser):  # noqa: F811
    result, broken = tiled_run
    tasks = {row["id"]: row for row in read_csv(result.run_dir / "tasks.csv")}
    browser.get(result.reports["report.html"].resolve().as_uri())
    shapes = browser.execute_script("return window.tilefleetMap")
    assert sorted(s["id"] for s in shapes) == sorted(tasks)
    for shape in shapes:
        row = tasks[shape["id"]]
        assert shape["status"] == row["status"], shape
        assert shape["colour"] == COLOURS[row["status"]], shape
        assert shape["reason"] == (row["error"] if row["status"] == "failed" else None)
    assert sorted(s["id"] for s in shapes if s["status"] == "failed") == sorted(broken)
    assert sum(s["status"] == "skipped" for s in shapes) == FIRST
    # The pixels drawn at each tile's centre are its colour.
    for shape in shapes[::7]:
        x, y = browser.execute_script("return window.tilefleetPixelOf(arguments[0])", shape["id"])
        rgb = browser.execute_script(
            "var c = document.getElementById('map'), r = c.getBoundingClientRect();"
            "var px = c.getContext('2d').getImageData(Math.round(arguments[0] * c.width / r.width),"
            " Math.round(arguments[1] * c.height / r.height), 1, 1).data;"
            "return [px[0], px[1], px[2]];",
            x,
            y,
        )
        expected = [int(shape["colour"][i : i + 2], 16) for i in (1, 3, 5)]
        assert rgb == expected, shape
    browser.shot("report-tiles")


def test_a_failed_tile_shows_its_reason_on_hover_and_click(tiled_run, browser):  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    result, broken = tiled_run
    reasons = {r["id"]: r["error"] for r in read_csv(result.run_dir / "tasks.csv")}
    browser.get(result.reports["report.html"].resolve().as_uri())
    canvas = browser.find_element(By.ID, "map")
    # Actions measure from the centre of the element's visible part: show all of it.
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    x, y = browser.execute_script("return window.tilefleetPixelOf(arguments[0])", broken[1])
    size = canvas.size
    offset = (x - size["width"] / 2, y - size["height"] / 2)
    ActionChains(browser).move_to_element_with_offset(canvas, *offset).perform()
    tooltip = browser.find_element(By.ID, "tooltip")
    assert tooltip.is_displayed() and tooltip.get_attribute("data-id") == broken[1]
    assert "failed" in tooltip.text and "Is a directory" in tooltip.text
    assert reasons[broken[1]].split(":")[0] in tooltip.text
    ActionChains(browser).click().perform()  # pinned: stays when the mouse leaves
    ActionChains(browser).move_to_element_with_offset(canvas, -size["width"] / 2 + 2, 0).perform()
    assert tooltip.is_displayed() and "pinned" in tooltip.get_attribute("class")
    browser.shot("report-failed-tile-reason", full=False)
    # The failures table: every failed tile with its attempts and reason; filterable.
    rows = browser.find_elements(By.CSS_SELECTOR, "#failures tr[data-id]")
    assert sorted(r.get_attribute("data-id") for r in rows) == sorted(broken)
    browser.find_element(By.ID, "failure-filter").send_keys(broken[2])
    rows = browser.find_elements(By.CSS_SELECTOR, "#failures tr[data-id]")
    assert [r.get_attribute("data-id") for r in rows] == [broken[2]]
    assert "Is a directory" in rows[0].text
    # The summary counters and the timeline of every attempt.
    for key, value in (("succeeded", 49), ("skipped", 20), ("failed", 3)):
        counter = browser.find_element(By.ID, f"count-{key}")
        assert counter.get_attribute("data-value") == str(value)
    attempts = browser.execute_script("return document.getElementById('timeline').height")
    assert attempts > 0


def test_a_manifest_recipe_gets_a_list_coloured_by_status(tmp_path, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    result = run_job(flaky_job(tmp_path, count=6, mode="permanent", fail_ids=["t002"]))
    assert result.counts["failed"] == 1
    browser.get(result.reports["report.html"].resolve().as_uri())
    items = browser.find_elements(By.CSS_SELECTOR, "#task-list .item")
    statuses = {i.get_attribute("data-id"): i.get_attribute("data-status") for i in items}
    assert statuses == {f"t{i:03d}": "failed" if i == 2 else "succeeded" for i in range(6)}
    assert not browser.find_element(By.ID, "map").is_displayed()
    failed = browser.find_element(By.CSS_SELECTOR, '#task-list .item[data-id="t002"]')
    assert failed.get_attribute("title") == "bad input in t002"
    browser.shot("report-manifest-list")


def test_plan_map_shows_what_would_run_and_what_is_done(data_dir, tmp_path, browser):  # noqa: F811
    run_job(build_job(ttc_job(data_dir, tmp_path, "run1", limit=FIRST)))
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(ttc_job(data_dir, tmp_path, "run-next")))
    out = CliRunner().invoke(app, ["plan", str(job), "--map", str(tmp_path / "plan.html")])
    assert out.exit_code == 0, out.output
    assert "52 task(s) to run, 20 already done" in out.output
    assert not (tmp_path / "run-next").exists()  # a plan writes no run dir
    browser.get((tmp_path / "plan.html").as_uri())
    shapes = browser.execute_script("return window.tilefleetMap")
    statuses = [s["status"] for s in shapes]
    assert len(shapes) == 72 and statuses.count("skipped") == 20 and statuses.count("pending") == 52
    with closing(Ledger.in_run_dir(tmp_path / "run1", readonly=True)) as ledger:
        done = {r.task.id for r in ledger.records() if r.status == "succeeded"}
    assert {s["id"] for s in shapes if s["status"] == "skipped"} == done
    browser.shot("plan-map")


def test_report_command_writes_report_html(tiled_run):
    result, _ = tiled_run
    (result.run_dir / "report.html").unlink()
    out = CliRunner().invoke(app, ["report", str(result.run_dir)])
    assert out.exit_code == 0 and (result.run_dir / "report.html").is_file()


def test_an_interrupted_run_still_gets_its_report_html(tmp_path):
    import signal
    import threading

    # Ctrl-C in the middle of the run (the engine's KeyboardInterrupt path).
    timer = threading.Timer(1.0, lambda: signal.raise_signal(signal.SIGINT))
    timer.start()
    try:
        result = run_job(flaky_job(tmp_path, count=12, sleep_s=0.3))
    finally:
        timer.cancel()
    assert result.report["interrupted"] is True and result.counts["pending"] > 0
    html = (tmp_path / "run/report.html").read_text()
    assert '"interrupted":true' in html


# -- footprints of every tiled recipe, without a browser ------------------------------------


def test_footprints_of_ttc_utm_and_healpix_tiles(data_dir):
    from tilefleet.tiles.healpix import healpix_cells
    from tilefleet.tiles.utm import utm_patches

    ttc = Tile("1X1Y", (10.0, 45.0, 10.0 + 1 / 18, 45.0 + 1 / 18))
    shape = task_footprint(Task("1X1Y", "r", {"tile": ttc.as_record()}, "", ""))
    assert shape["type"] == "Polygon"
    assert np.allclose(np.array(shape["coordinates"][0]).min(axis=0), [10.0, 45.0])
    # A UTM patch (outline in lon/lat as WKB) becomes its four corners.
    import shapely

    aoi = shapely.box(6.0, 51.0, 6.2, 51.1)
    patches = list(utm_patches(aoi, 5000).tiles())
    tasks = [Task(t.id, "r", {"tile": t.as_record()}, "", "") for t in patches]
    shapes = footprints(tasks)
    assert len(shapes) == len(patches)
    for index, tile in enumerate(patches):
        ring = shapes.rings[shapes.ring_start[index] : shapes.ring_start[index + 1]]
        assert 4 <= len(ring) <= 8
        outline = shapely.Polygon(ring)
        assert outline.symmetric_difference(tile.footprint).area < 0.01 * tile.footprint.area
    # UTM bounds without an outline: reprojected corners.
    bare = {**patches[0].as_record(), "outline": None}
    projected = footprints([Task("p", "r", {"tile": bare}, "", "")])
    ring = projected.rings[: projected.ring_start[1]]
    assert shapely.Polygon(ring).symmetric_difference(patches[0].footprint).area < 1e-3 * (
        patches[0].footprint.area
    )
    # HEALPix: tile-index tiles carry an outline; a cells task names its parent cell.
    cells = healpix_cells(shapely.box(6.0, 51.0, 7.0, 52.0), 6)
    cell_tasks = [Task(t.id, "r", {"tile": t.as_record()}, "", "") for t in cells.tiles()]
    parents = [
        Task(f"6/{c}", "cells", {"parent": c, "parent_order": 6}, "", "")
        for c in cells.cells.tolist()
    ]
    a, b = footprints(cell_tasks), footprints(parents)
    assert a.ids == b.ids == cells.ids()
    assert np.allclose(a.extent(), b.extent(), atol=1e-6)
    # Tasks without a tile (a manifest's rows) have none.
    assert task_footprint(Task("m.tif", "cogify", {"key": "m.tif"}, "", "")) is None


def test_tasks_on_one_tile_are_one_shape_with_the_worst_status():
    tile = Tile("A", (0.0, 0.0, 1.0, 1.0)).as_record()
    tasks = [Task(f"A/2024-0{m}", "mosaic", {"tile": tile, "month": m}, "", "") for m in (1, 2)]
    geometry = map_geometry(tasks)
    assert geometry["ids"] == ["A"] and geometry["tasks"] == [[0, 1]]
    status = map_status(geometry, ["succeeded", "failed"], [None, "no scene"])
    assert status["status"] == STATUS_CODES["failed"]
    assert "A/2024-02: no scene" in status["reasons"][0]


def test_breakdown_groups_by_a_task_parameter():
    records = [
        TaskRecord(Task(f"{p}{i}", "r", {"product": p}, "", ""), status, 1, 1.0, "w", None)
        for p, status in (("dem", "succeeded"), ("s1", "failed"), ("s2", "succeeded"))
        for i in range(2)
    ]
    table = breakdown(records)
    assert table["param"] == "product"
    rows = {row["value"]: row for row in table["rows"]}
    assert rows["s1"]["failed"] == 2 and rows["dem"]["succeeded"] == 2
    assert rows["dem"]["median_s"] == 1.0
    assert breakdown(records[:2]) is None  # one value: nothing to break down


def test_timeline_png_merges_lanes_past_hundreds_of_concurrent_attempts(tmp_path):
    from PIL import Image

    from tilefleet.engine.timeline import MAX_LANES, plot_timeline

    # 2000 serverless invocations all running at once: 2000 packed lanes.
    attempts = [
        {
            "task_id": f"t{i}",
            "attempt": 1,
            "worker": f"lambda:{i}",
            "started": 0.0 + i * 1e-4,
            "finished": 5.0,
            "ok": True,
        }
        for i in range(2000)
    ]
    plot_timeline(attempts, tmp_path / "timeline.png", "many")
    with Image.open(tmp_path / "timeline.png") as image:
        assert image.height <= 100 * (2 + 0.35 * MAX_LANES) + 1


@pytest.mark.parametrize(
    "tiles",
    [
        {"grid": "utm", "size": 20000},  # two UTM zones: outlines in lon/lat
        {"grid": "healpix", "order": 7},  # HEALPix cells: curved outlines
    ],
    ids=["utm", "healpix"],
)
def test_utm_and_healpix_tiles_are_mapped_by_their_outlines(data_dir, tmp_path, browser, tiles):  # noqa: F811
    import shapely

    job = {
        "recipe": "tile-index",
        "tiles": {**tiles, "aoi": str(data_dir / "aoi/grandmesa.geojson")},
        "dest": str(tmp_path / "dest"),
        "run_dir": str(tmp_path / "run"),
        "workers": 2,
    }
    result = run_job(build_job(job))
    assert result.exit_code == 0
    with closing(Ledger.in_run_dir(tmp_path / "run", readonly=True)) as ledger:
        footprints_of = {
            r.task.id: Tile.from_record(r.task.params["tile"]).footprint for r in ledger.records()
        }
    browser.get(result.reports["report.html"].resolve().as_uri())
    shapes = browser.execute_script("return window.tilefleetMap")
    assert sorted(s["id"] for s in shapes) == sorted(footprints_of) and len(shapes) > 4
    assert {s["colour"] for s in shapes} == {COLOURS["succeeded"]}
    # Hover finds each tile by its outline (point in polygon, not just its box); where two
    # tiles overlap (UTM patches of neighbouring zones), either is right.
    for tile_id, footprint in footprints_of.items():
        inner = shapely.buffer(footprint, -0.05 * np.sqrt(footprint.area))
        point = inner.representative_point()
        found = browser.execute_script(
            "return window.tilefleetShapeAt(arguments[0], arguments[1])", point.x, point.y
        )
        holding = {i for i, f in footprints_of.items() if f.buffer(1e-4).contains(point)}
        assert found in holding and tile_id in holding, (tile_id, found)
    outside = footprints_of[next(iter(footprints_of))].bounds
    none = browser.execute_script(
        "return window.tilefleetShapeAt(arguments[0], arguments[1])", outside[0] - 5, outside[1]
    )
    assert none is None
    browser.shot(f"report-{tiles['grid']}")


def test_the_breakdown_per_product_is_shown(tmp_path, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    from tilefleet.engine.html_report import write_plan_map

    tile = Tile("A", (0.0, 0.0, 1.0, 1.0)).as_record()
    tasks = [
        Task(f"A/{product}/{year}", "ttc-ard", {"tile": tile, "product": product}, "", "")
        for product in ("dem", "s1", "s2")
        for year in (2022, 2023)
    ]
    page = write_plan_map(tmp_path / "plan.html", tasks, {"A/dem/2022"}, recipe="ttc-ard")
    browser.get(page.as_uri())
    assert browser.find_element(By.ID, "breakdown-title").text == "Per product"
    rows = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#breakdown tr")[1:]
    ]
    assert [row[:6] for row in rows] == [
        ["dem", "2", "0", "1", "0", "1"],
        ["s1", "2", "0", "0", "0", "2"],
        ["s2", "2", "0", "0", "0", "2"],
    ]
    # Six tasks on one tile: one shape, with each task listed on hover.
    shapes = browser.execute_script("return window.tilefleetMap")
    assert [(s["id"], s["status"]) for s in shapes] == [("A", "pending")]


def test_the_per_kind_breakdown_of_report_json_is_shown(tmp_path, browser, monkeypatch):  # noqa: F811
    """A recipe with kinds of tasks (even and odd ones, one of each failing for good, one
    done before), run on a billed executor: the page's table per kind is report.json's."""
    from selenium.webdriver.common.by import By

    result = kinded_billed_run(tmp_path, monkeypatch)
    by_kind = result.report["by_kind"]
    assert [by_kind[k]["succeeded"] for k in ("even", "odd")] == [3, 4]
    assert [by_kind[k]["skipped"] for k in ("even", "odd")] == [1, 0]
    assert [by_kind[k]["failed"] for k in ("even", "odd")] == [1, 1]
    browser.get(result.reports["report.html"].resolve().as_uri())
    assert browser.find_element(By.ID, "kinds-section").is_displayed()
    header = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#kinds th")]
    assert header == ["kind", "tasks", "succeeded", "skipped", "failed", "median time",
                      "estimated cost", "measured cost"]  # fmt: skip
    rows = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#kinds tr")[1:]
    ]
    expected = []
    for kind, part in by_kind.items():
        cost = part["cost_usd"]
        counts = [str(part[k]) for k in ("tasks", "succeeded", "skipped", "failed")]
        expected.append([kind, *counts, f"${cost['estimated']:.4f}", f"${cost['measured']:.4f}"])
    assert [row[:5] + row[6:] for row in rows] == expected
    assert all(row[5].endswith(("ms", " s")) for row in rows)  # the median time, formatted
    browser.shot("report-by-kind")


def test_a_recipe_without_kinds_shows_no_table_per_kind(tmp_path, browser):  # noqa: F811
    result = run_job(flaky_job(tmp_path, count=3, mode="ok"))
    assert result.report["by_kind"] == {}
    browser.get(result.reports["report.html"].resolve().as_uri())
    assert browser.execute_script("return document.getElementById('kinds-section').hidden")
