"""What a ttc-ard run plans and records: task ids with product and year, a request over two
years, tiles CSVs with a product column, failed.csv fed back (to ttc-ard and to
``tilefleet tiles ttc --tiles``), routing by product over two local pools, skipping per
product, a SIGKILL midway then resume, and the cost per product before and after."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import tilefleet
from helpers import read_csv
from tilefleet import plugins
from tilefleet.cli import app
from tilefleet.engine.executors.base import Billing
from tilefleet.engine.executors.local import LocalExecutor
from tilefleet.engine.footprints import tile_key
from tilefleet.engine.run import run_job
from tilefleet.jobs import build_job
from tilefleet.recipes import get_recipe
from tilefleet.recipes.ttc_ard.params import TtcArdParams
from ttc_ard.catalogs import DEM_TILE

SAO_TOME = f"{DEM_TILE[0]}X{DEM_TILE[1]}Y"
BRAZIL = "1035X727Y"  # in the tile database, outside every test catalog
SOURCE = ["product", "Year", "X", "Y", "Y_tile", "X_tile"]


def write_request(path, years_tiles):
    path.write_text(json.dumps({"p": {str(y): {"missing_tiles": t} for y, t in years_tiles}}))
    return path


def plan(tiledb, dem_catalog, **values):
    params = TtcArdParams(tiledb=tiledb, dest="out", catalog=str(dem_catalog), **values)
    return get_recipe("ttc-ard").plan(params)


def test_ids_name_product_year_and_tile_and_a_product_column_limits_a_row(
    tmp_path, tiledb, dem_catalog
):
    tiles = tmp_path / "tiles.csv"
    tiles.write_text(
        "product,Year,X_tile,Y_tile,reason\n"
        f"dem,2023,{DEM_TILE[0]},{DEM_TILE[1]},timeout\n"
        f"s2,2023,{DEM_TILE[0]},{DEM_TILE[1]},\n"
        ",2022,1035,727,\n"
    )
    tasks = plan(tiledb, dem_catalog, tiles=tiles, products=["dem", "s1", "s2"])
    assert [t.id for t in tasks] == [  # rows in file order, products in dem, s1, s2 order
        f"dem/2023/{SAO_TOME}",
        f"s2/2023/{SAO_TOME}",
        "dem/2022/1035X727Y",
        "s1/2022/1035X727Y",
        "s2/2022/1035X727Y",
    ]
    first = tasks[0]
    assert first.params["product"] == "dem" and first.params["year"] == 2023
    assert first.marker == f"2023/{DEM_TILE[0]}/{DEM_TILE[1]}/dem.json"
    assert list(first.source) == SOURCE
    assert first.source["X"] == "6.5833" and first.source["Y_tile"] == str(DEM_TILE[1])
    # The report's tile map draws each tile once, whatever its products and years.
    assert tile_key(first) == tile_key(tasks[1]) and tile_key(first)[0] == "tile"


def test_an_area_needs_a_year_and_exactly_one_area(tiledb, dem_catalog):
    with pytest.raises(ValueError, match="bbox needs year"):
        TtcArdParams(tiledb=tiledb, dest="o", catalog="c", bbox=(6.6, 0.2, 6.7, 0.3))
    with pytest.raises(ValueError, match="exactly one of a tiles CSV, request, bbox or aoi"):
        TtcArdParams(tiledb=tiledb, dest="o", catalog="c", bbox=(6.6, 0.2, 6.7, 0.3),
                     request="r.json", year=2023)  # fmt: skip


def test_the_same_tile_in_two_years_is_two_tasks_each_with_its_outputs(
    tmp_path, tiledb, dem_catalog
):
    request = write_request(tmp_path / "req.json", [(2022, [SAO_TOME]), (2023, [SAO_TOME])])
    result = tilefleet.run(
        "ttc-ard", request=str(request), tiledb=str(tiledb), dest=str(tmp_path / "out"),
        products=["dem"], catalog=str(dem_catalog), run_dir=str(tmp_path / "run"),
        workers=2, progress=False,
    )  # fmt: skip
    assert result.exit_code == 0 and result.counts["succeeded"] == 2
    for year in (2022, 2023):
        item = json.loads((tmp_path / f"out/{year}/1804/968/dem.json").read_text())
        assert item["properties"]["start_datetime"].startswith(f"{year}-01-01")
    rows = read_csv(tmp_path / "run/tasks.csv")
    assert [(r["id"], r["Year"], r["product"]) for r in rows] == [
        (f"dem/2022/{SAO_TOME}", "2022", "dem"),
        (f"dem/2023/{SAO_TOME}", "2023", "dem"),
    ]
    assert all(r["X"] == "6.5833" and r["Y"] == "0.25" for r in rows)


def test_tile_index_over_a_request_of_two_years_names_tiles_with_the_year(tmp_path, tiledb):
    """The grid's own fix: any tiled recipe over a two-year request plans one task per tile
    and year (it used to plan both under one id and crash in the scheduler)."""
    request = write_request(tmp_path / "req.json", [(2022, [BRAZIL]), (2023, [BRAZIL, SAO_TOME])])
    result = tilefleet.run(
        "tile-index", tiles={"grid": "ttc", "request": str(request), "tiledb": str(tiledb)},
        dest=str(tmp_path / "out"), run_dir=str(tmp_path / "run"), workers=1, progress=False,
    )  # fmt: skip
    assert result.exit_code == 0 and result.counts["succeeded"] == 3
    written = sorted(
        str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").glob("*/*.json")
    )
    assert written == [f"2022/{BRAZIL}.json", f"2023/{BRAZIL}.json", f"2023/{SAO_TOME}.json"]


def test_failed_csv_is_a_tiles_csv_for_ttc_ard_and_tiles_ttc(tmp_path, tiledb, dem_catalog):
    request = write_request(tmp_path / "req.json", [(2022, [BRAZIL, SAO_TOME]), (2023, [BRAZIL])])
    common = dict(
        tiledb=str(tiledb), products=["dem"], catalog=str(dem_catalog), workers=1,
        progress=False,
    )  # fmt: skip
    first = tilefleet.run(
        "ttc-ard", request=str(request), dest=str(tmp_path / "out"),
        run_dir=str(tmp_path / "run1"), **common,
    )  # fmt: skip
    assert first.exit_code == 1
    failed_csv = tmp_path / "run1/failed.csv"
    rows = read_csv(failed_csv)
    assert list(rows[0]) == [*SOURCE, "reason"]
    assert [(r["product"], r["Year"], r["X_tile"], r["Y_tile"]) for r in rows] == [
        ("dem", "2022", "1035", "727"),
        ("dem", "2023", "1035", "727"),
    ]
    assert rows[0]["reason"] == "tile 1035X727Y: no cop-dem-glo-30 item covers it"

    retry = CliRunner().invoke(
        app,
        ["ttc-ard", str(failed_csv), "--tiledb", str(tiledb), "--dest", str(tmp_path / "out"),
         "--products", "dem", "--catalog", str(dem_catalog), "--run-dir", str(tmp_path / "run2"),
         "--workers", "1"],
    )  # fmt: skip
    assert retry.exit_code == 2, retry.output  # the same two fail again, nothing else ran
    ran = [(r["id"], r["status"]) for r in read_csv(tmp_path / "run2/tasks.csv")]
    assert ran == [("dem/2022/1035X727Y", "failed"), ("dem/2023/1035X727Y", "failed")]

    out = tmp_path / "tiles.csv"
    cli = CliRunner().invoke(
        app, ["tiles", "ttc", "--tiles", str(failed_csv), "--tiledb", str(tiledb), "-o", str(out)]
    )
    assert cli.exit_code == 0, cli.output
    listed = read_csv(out)
    assert [(r["product"], r["Year"], r["X_tile"], r["Y_tile"]) for r in listed] == [
        ("dem", "2022", "1035", "727"),
        ("dem", "2023", "1035", "727"),
    ]


@pytest.mark.slow
def test_products_route_to_their_pool_and_skip_on_their_own(tmp_path, tiledb, dem_catalog):
    request = write_request(tmp_path / "req.json", [(2023, [SAO_TOME, "1805X968Y"])])
    job = dict(
        request=str(request), tiledb=str(tiledb), dest=str(tmp_path / "out"),
        products=["dem", "s2"], catalog=str(dem_catalog), progress=False, backoff_s=0.01,
        executor="routed", route_by="product", routes={"dem": "euc1", "s1": "euc1", "s2": "usw2"},
        executors={"euc1": {"executor": "local", "workers": 1},
                   "usw2": {"executor": "local", "workers": 1}},
    )  # fmt: skip
    result = tilefleet.run("ttc-ard", run_dir=str(tmp_path / "run1"), **job)
    rows = {r["id"]: r for r in read_csv(tmp_path / "run1/tasks.csv")}
    dem_workers = {rows[i]["worker"] for i in rows if i.startswith("dem/")}
    s2_workers = {rows[i]["worker"] for i in rows if i.startswith("s2/")}
    assert all(rows[i]["status"] == "succeeded" for i in rows if i.startswith("dem/"))
    # The catalog has no Sentinel-2: those tasks fail with the reason, in their own pool.
    assert all(rows[i]["status"] == "failed" for i in rows if i.startswith("s2/"))
    assert "no sentinel-2-l2a scene" in rows[f"s2/2023/{SAO_TOME}"]["error"]
    assert len(dem_workers) == len(s2_workers) == 1 and dem_workers != s2_workers
    assert result.exit_code == 1

    # The destination is the truth per product: a dem output removed is the only dem redone.
    (tmp_path / "out/2023/1805/968/dem.json").unlink()
    again = tilefleet.run("ttc-ard", run_dir=str(tmp_path / "run2"), **job)
    statuses = {r["id"]: r["status"] for r in read_csv(tmp_path / "run2/tasks.csv")}
    assert statuses[f"dem/2023/{SAO_TOME}"] == "skipped"
    assert statuses["dem/2023/1805X968Y"] == "succeeded"
    assert again.report["by_kind"]["dem"]["skipped"] == 1


class BilledLocal(LocalExecutor):
    """Stands in for AWS Lambda, which cannot run here: local processes billed at 4 GB and
    Lambda's x86 price, so the per-product estimate and measured cost run for real."""

    name = "billed-local"

    @property
    def billing(self):
        return Billing(memory_gb=4.0, usd_per_gb_s=0.00001667)


@pytest.fixture
def billed(monkeypatch):
    from importlib.metadata import EntryPoint

    point = EntryPoint("billed-local", f"{__name__}:BilledLocal", plugins.EXECUTORS)
    monkeypatch.setitem(plugins.registered(plugins.EXECUTORS), "billed-local", point)


def test_cost_per_product_from_defaults_then_from_history(tmp_path, tiledb, dem_catalog, billed):
    request = write_request(tmp_path / "req.json", [(2023, [SAO_TOME, BRAZIL])])
    job = dict(
        request=str(request), tiledb=str(tiledb), products=["dem", "s1", "s2"],
        catalog=str(dem_catalog), executor="billed-local", workers=1, progress=False,
    )  # fmt: skip
    questions = []

    def ask(question):
        questions.append(question)
        return False

    plain = {k: v for k, v in job.items() if k != "progress"}
    no = run_job(
        build_job({"recipe": "ttc-ard", "dest": str(tmp_path / "o"), **plain}), confirm=ask
    )
    assert no.declined
    # The stated defaults: 2 tiles x (9 + 14 + 62) s at 4 GB, $0.00001667 per GB-second.
    assert "dem: 2 task(s) x ~9.0 s (from default), $0.0012" in questions[0]
    assert "s1: 2 task(s) x ~14.0 s (from default), $0.0019" in questions[0]
    assert "s2: 2 task(s) x ~62.0 s (from default), $0.0083" in questions[0]
    assert "estimated cost $0.0113" in questions[0]

    ran = tilefleet.run(
        "ttc-ard", dest=str(tmp_path / "out"), run_dir=str(tmp_path / "run"), yes=True, **job
    )
    by_kind = ran.report["by_kind"]
    assert by_kind["dem"]["succeeded"] == 1 and by_kind["dem"]["failed"] == 1
    assert by_kind["dem"]["cost_usd"]["estimated"] == pytest.approx(2 * 9 * 4 * 0.00001667)
    measured = by_kind["dem"]["cost_usd"]["measured"]
    assert 0 < measured < by_kind["dem"]["cost_usd"]["estimated"]
    assert ran.report["estimate"]["by_kind"]["s2"]["task_s_source"] == "default"

    # The next estimate of dem comes from the measured dem tile (s1, s2 never succeeded).
    again = tilefleet.plan(
        "ttc-ard", dest=str(tmp_path / "out2"), run_dir=str(tmp_path / "run2"), **plain
    )
    parts = again.estimate.by_kind
    assert parts["dem"]["task_s_source"] == "history" and parts["dem"]["task_s"] < 9
    assert parts["s2"]["task_s_source"] == "default" and parts["s2"]["task_s"] == 62


@pytest.mark.slow
def test_sigkill_midway_then_resume_finishes_only_the_rest(tmp_path, tiledb, dem_catalog):
    """Kill the whole process group while dem tiles run; the rerun with the same run dir
    does only what is missing."""
    bbox = "6.45,0.05,6.75,0.3"  # 6 x 5 tiles of Sao Tome
    command = [sys.executable, "-m", "tilefleet", "ttc-ard", "--bbox", bbox, "--year", "2023",
               "--tiledb", str(tiledb), "--dest", str(tmp_path / "out"), "--products", "dem",
               "--catalog", str(dem_catalog), "--run-dir", str(tmp_path / "run"),
               "--workers", "1"]  # fmt: skip
    dest = tmp_path / "out"
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while len(list(dest.rglob("dem.json"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = {str(p.parent.relative_to(dest)) for p in dest.rglob("dem.json")}
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads((tmp_path / "run/report.json").read_text())
    total = report["tasks"]
    assert 3 <= len(done_before) < total, "the kill should land midway"
    db = sqlite3.connect(tmp_path / "run/ledger.sqlite")
    ran_again = {row[0] for row in db.execute("SELECT task_id FROM attempts WHERE session = 2")}
    assert not {_folder(i) for i in ran_again} & done_before  # nothing done ran again
    assert report["succeeded"] + report["skipped"] == total and report["failed"] == 0
    assert len(list(dest.rglob("dem.tif"))) == total


def _folder(task_id: str) -> str:
    """``dem/2023/1804X968Y`` -> ``2023/1804/968``, the folder of its outputs."""
    _, year, tile = task_id.split("/")
    x, y = tile[:-1].split("X")
    return f"{year}/{x}/{y}"


def test_outputs_on_s3_are_found_done_by_one_listing(tmp_path, tiledb, dem_catalog, s3):
    s3.create_bucket(Bucket="ttc")
    request = write_request(tmp_path / "req.json", [(2023, [SAO_TOME])])
    job = dict(
        request=str(request), tiledb=str(tiledb), dest="s3://ttc/ard", products=["dem"],
        catalog=str(dem_catalog), workers=1, progress=False,
    )  # fmt: skip
    first = tilefleet.run("ttc-ard", run_dir=str(tmp_path / "run1"), **job)
    assert first.exit_code == 0, [f.reason for f in first.failed]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="ttc")["Contents"])
    assert keys == ["ard/2023/1804/968/dem.json", "ard/2023/1804/968/dem.tif"]
    again = tilefleet.run("ttc-ard", run_dir=str(tmp_path / "run2"), **job)
    assert again.counts["skipped"] == 1 and again.counts["succeeded"] == 0
