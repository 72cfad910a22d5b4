"""Finish hooks build their STAC collection from what the tasks returned, and read back only
the items the ledger knows no extent of: checked on real runs (tile-index over UTM and TTC
tiles, cogify on real rasters, mosaic on real Sentinel-2 dates), first runs, resumed runs,
runs that find some tasks done by their markers, and ledgers of an earlier version. The
collection written must be byte for byte what reading every item back gives."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from conftest import link_rasters
from helpers import read_csv, run_cogify
from tilefleet.engine.ledger import LEDGER_NAME
from tilefleet.engine.run import run_job
from tilefleet.jobs import build_job
from tilefleet.recipes.base import FINISH_METRIC
from tilefleet.store import stac_item

GRANDMESA_TILES = {"grid": "utm", "size": 20000}  # with the AOI of the shared data
TTC_BBOX = [30.0, -1.0, 30.5, -0.6]  # 9 x 8 TTC tiles


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The keys the collections read back (the finish hooks run in this process)."""
    keys: list[str] = []
    real = stac_item.read_concurrently

    def counted(store, wanted, workers=None):
        keys.extend(wanted)
        return real(store, wanted, workers)

    monkeypatch.setattr(stac_item, "read_concurrently", counted)
    return keys


def read_back_collection(dest: Path, collection_id: str, description: str, title: str) -> bytes:
    """collection.json as built by reading every item linked back: the items' own bboxes
    and datetimes, the earliest start and latest end, written as the hooks write it."""
    collection = json.loads((dest / "collection.json").read_text())
    keys = [link["href"][2:] for link in collection["links"] if link["rel"] == "item"]
    items = [json.loads((dest / key).read_text()) for key in keys]
    boxes = [item["bbox"] for item in items if item.get("bbox")]
    bbox = [min(b[i] for b in boxes) for i in (0, 1)] + [max(b[i] for b in boxes) for i in (2, 3)]
    props = [item["properties"] for item in items]
    starts = [p.get("start_datetime") or p["datetime"] for p in props]
    ends = [p.get("end_datetime") or p["datetime"] for p in props]

    def instant(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    expected = {
        "type": "Collection",
        "stac_version": stac_item.STAC_VERSION,
        "stac_extensions": [],
        "id": collection_id,
        "description": description,
        "license": "other",
        "extent": {
            "spatial": {"bbox": [bbox]},
            "temporal": {"interval": [[min(starts, key=instant), max(ends, key=instant)]]},
        },
        "links": [{"rel": "root", "href": "./collection.json", "type": "application/json"}]
        + [{"rel": "item", "href": f"./{k}", "type": "application/geo+json"} for k in keys],
        "title": title,
    }
    return json.dumps(expected, indent=1).encode()


def tile_index_job(tmp_path: Path, tiles: dict, run_dir: str, **values) -> dict:
    return {
        "recipe": "tile-index",
        "tiles": tiles,
        "dest": str(tmp_path / "dest"),
        "run_dir": str(tmp_path / run_dir),
        "workers": 2,
        "backoff_s": 0.01,
        **values,
    }


def assert_tile_index_collection(dest: Path, grid: str, items: int) -> None:
    written = (dest / "collection.json").read_bytes()
    description = f"The tiles of the {grid} grid over an area, written by tilefleet."
    assert written == read_back_collection(dest, "tile-index", description, "Tile index")
    assert len([p for p in dest.glob("*.json") if p.name != "collection.json"]) == items
    assert written.count(b'"rel": "item"') == items


def forget_extents(run_dir: Path, count: int) -> list[str]:
    """Strip the finish metric from the first ``count`` successful attempts of a ledger,
    as an earlier version wrote them; the markers of their tasks."""
    with sqlite3.connect(run_dir / LEDGER_NAME) as db:
        rows = db.execute(
            "SELECT a.task_id, a.metrics, json_extract(t.task, '$.marker') FROM attempts a "
            "JOIN tasks t ON t.id = a.task_id WHERE a.ok ORDER BY t.seq LIMIT ?",
            (count,),
        ).fetchall()
        for task_id, metrics, _ in rows:
            kept = {k: v for k, v in json.loads(metrics).items() if k != FINISH_METRIC}
            db.execute(
                "UPDATE attempts SET metrics = ? WHERE task_id = ?", (json.dumps(kept), task_id)
            )
    return [marker for *_, marker in rows]


def test_tile_index_first_resumed_and_skipping_runs(data_dir, tmp_path, reads):
    """UTM tiles, dated when written (each item its own microsecond): the collection of a
    first part, of the run resumed (some attempts as an earlier version recorded them),
    and of a run in another run dir that finds them all done by their markers."""
    tiles = {**GRANDMESA_TILES, "aoi": str(data_dir / "aoi/grandmesa.geojson")}
    dest = tmp_path / "dest"
    first = run_job(build_job(tile_index_job(tmp_path, tiles, "run", limit=5)))
    assert first.report["succeeded"] == 5 and first.report["pending"] > 3
    assert reads == []  # every extent came with its task
    assert_tile_index_collection(dest, "utm", 5)

    forgotten = forget_extents(tmp_path / "run", 2)
    resumed = run_job(build_job(tile_index_job(tmp_path, tiles, "run")))
    assert resumed.exit_code == 0 and resumed.report["sessions"] == 2
    total = resumed.report["succeeded"]
    assert sorted(reads) == sorted(forgotten)  # only what the ledger holds no extent of
    assert_tile_index_collection(dest, "utm", total)

    reads.clear()
    elsewhere = run_job(build_job(tile_index_job(tmp_path, tiles, "run2")))
    assert elsewhere.report["skipped"] == total and elsewhere.report["attempts"] == 0
    assert len(reads) == total  # done by their markers: read back, every one
    assert_tile_index_collection(dest, "utm", total)


def test_tile_index_of_years_with_some_tiles_skipped_by_their_markers(data_dir, tmp_path, reads):
    """TTC tiles of a year (start and end datetimes): 20 done by a first run, then all 72
    by a second run dir, which reads back the 20 it skipped and no other."""
    tiles = {
        "grid": "ttc",
        "bbox": TTC_BBOX,
        "tiledb": str(data_dir / "ttc_tiledb/tiledb.parquet"),
        "year": 2023,
    }
    dest = tmp_path / "dest"
    run_job(build_job(tile_index_job(tmp_path, tiles, "run1", limit=20)))
    first_items = sorted(p.name for p in dest.glob("*.json") if p.name != "collection.json")
    reads.clear()
    second = run_job(build_job(tile_index_job(tmp_path, tiles, "run2")))
    assert (second.report["skipped"], second.report["succeeded"]) == (20, 52)
    assert sorted(reads) == first_items
    assert_tile_index_collection(dest, "ttc", 72)
    collection = json.loads((dest / "collection.json").read_text())
    assert collection["extent"]["temporal"]["interval"] == [
        ["2023-01-01T00:00:00Z", "2023-12-31T23:59:59Z"]
    ]


COGIFY_RASTERS = ["landsat/RGB.byte.tif", "dem/glo30.tif", "dem/glo90_polar.tif", "s2/B02.tif"]


def test_cogify_collection_of_a_resumed_run_and_a_rerun(data_dir, tmp_path, reads):
    """Real rasters in four CRSs (one polar): a first image, then the rest on resume,
    then a run in another run dir that finds every image done."""
    inputs = link_rasters(tmp_path / "in", data_dir)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("".join(f"{key},\n" for key in COGIFY_RASTERS))
    dest = tmp_path / "out"
    description = "Cloud-Optimized GeoTIFFs with JPEG previews, written by tilefleet cogify."

    def assert_collection(images: int) -> None:
        written = (dest / "collection.json").read_bytes()
        assert written == read_back_collection(dest, "cogs", description, "COGs")
        assert written.count(b'"rel": "item"') == images

    assert run_cogify(manifest, inputs, dest, tmp_path / "run", limit=1).exit_code == 0
    assert reads == []
    assert_collection(1)
    resumed = run_cogify(manifest, inputs, dest, tmp_path / "run")
    assert resumed.report["succeeded"] == len(COGIFY_RASTERS) and reads == []
    assert_collection(len(COGIFY_RASTERS))
    # The reports list what the tasks produced, not what they left for the finish hook.
    rows = read_csv(tmp_path / "run/tasks.csv")
    assert [json.loads(row["results"]).keys() for row in rows] == [
        {"bands", "bytes_out", "dtype"}
    ] * len(COGIFY_RASTERS)
    assert resumed.report["results"].keys() == {"bands", "bytes_out"}

    again = run_cogify(manifest, inputs, dest, tmp_path / "run2")
    assert again.report["skipped"] == len(COGIFY_RASTERS)
    assert sorted(reads) == sorted(k.replace(".tif", ".json") for k in COGIFY_RASTERS)
    assert_collection(len(COGIFY_RASTERS))


def test_mosaic_collection_from_the_tasks_is_the_one_read_back(data_dir, tmp_path, reads):
    """Real openEO dates, four tiles in June and a July without scenes (no item): the
    collection from what the tasks returned, then, their extents forgotten, the same run
    dir finished again reading every item back: the same bytes."""
    job = {
        "recipe": "mosaic",
        "catalog": str(data_dir / "s2_openeo_3dates_be/collection.json"),
        "bbox": "5.0705,51.2155,5.0795,51.2195",
        "start_date": "2023-06-01",
        "end_date": "2023-07-31",
        "bands": "B04",
        "tile_size": 500,
        "dest": str(tmp_path / "out"),
        "run_dir": str(tmp_path / "run"),
        "workers": 2,
    }
    first = run_job(build_job(job))
    assert first.exit_code == 0 and first.report["succeeded"] == 8
    assert reads == []
    written = (tmp_path / "out/collection.json").read_bytes()
    collection = json.loads(written)
    items = [link["href"][2:] for link in collection["links"] if link["rel"] == "item"]
    assert len(items) == 4 and all("2023-06" in key for key in items)
    assert collection["extent"]["temporal"]["interval"] == [
        ["2023-06-01T00:00:00Z", "2023-06-30T23:59:59.999999Z"]
    ]
    assert collection["item_assets"].keys() == {"B04"}

    forget_extents(tmp_path / "run", 8)
    (tmp_path / "out/collection.json").unlink()
    again = run_job(build_job(job))
    assert again.exit_code == 0 and again.report["attempts"] == 8
    assert sorted(reads) == sorted(items)
    assert (tmp_path / "out/collection.json").read_bytes() == written
