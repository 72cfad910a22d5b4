"""Jobs that cannot run end in one line and exit status 3, never a traceback: malformed
static STAC catalogs, a YAML file whose aliases expand without end, a run directory on a
disk that is full."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import time
from datetime import date

import pytest
from shapely.geometry import box

from tilefleet.fields import read_yaml_mapping
from tilefleet.sources.stac import StacQuery, StacSearchError, search_items

WORLD = box(-180, -90, 180, 90)
ITEM = {
    "type": "Feature",
    "stac_version": "1.0.0",
    "id": "scene-1",
    "geometry": {"type": "Point", "coordinates": [0, 0]},
    "bbox": [0, 0, 0, 0],
    "properties": {"datetime": "2023-06-01T00:00:00Z"},
    "links": [],
    "assets": {"B04": {"href": "./B04.tif"}},
}
COLLECTION = {
    "type": "Collection",
    "stac_version": "1.0.0",
    "id": "coll",
    "description": "d",
    "license": "proprietary",
    "extent": {},
    "links": [{"rel": "item", "href": "./scene-1.json"}],
}
MALFORMED = {
    "collection-without-id": ({k: v for k, v in COLLECTION.items() if k != "id"}, ITEM, "'id'"),
    "link-without-href": ({**COLLECTION, "links": [{"rel": "item"}]}, ITEM, "'href'"),
    "links-a-number": ({**COLLECTION, "links": 5}, ITEM, "'links' must be a list"),
    "geometry-a-string": (COLLECTION, {**ITEM, "geometry": "x"}, "geometry is not GeoJSON"),
    "assets-a-list": (COLLECTION, {**ITEM, "assets": [{"href": "a.tif"}]}, "'assets' must be"),
    "asset-without-href": (COLLECTION, {**ITEM, "assets": {"B04": {}}}, "asset B04: no 'href'"),
}


@pytest.mark.parametrize(("collection", "item", "reason"), MALFORMED.values(), ids=MALFORMED)
def test_a_malformed_static_catalog_is_one_line_naming_the_file(tmp_path, collection, item, reason):
    (tmp_path / "collection.json").write_text(json.dumps(collection))
    (tmp_path / "scene-1.json").write_text(json.dumps(item))
    query = StacQuery(WORLD, date(2023, 1, 1), date(2023, 12, 31))
    with pytest.raises(StacSearchError) as caught:
        search_items(query, catalog=str(tmp_path / "collection.json"))
    message = str(caught.value)
    assert reason in message and "\n" not in message
    assert ".json" in message  # names the document at fault


def test_a_wellformed_catalog_still_reads(tmp_path):
    (tmp_path / "collection.json").write_text(json.dumps(COLLECTION))
    (tmp_path / "scene-1.json").write_text(json.dumps(ITEM))
    query = StacQuery(WORLD, date(2023, 1, 1), date(2023, 12, 31))
    (item,) = search_items(query, catalog=str(tmp_path / "collection.json"))
    assert item.collection_id == "coll"
    assert item.assets["B04"].href == str(tmp_path / "B04.tif")


def billion_laughs(levels: int = 9) -> str:
    lines = ["recipe: cogify", 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefghij", "bcdefghijk"[: levels - 1], strict=False):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 8)}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_file_whose_aliases_expand_without_end_is_refused_fast(tmp_path):
    job = tmp_path / "laughs.yaml"
    job.write_text(billion_laughs())  # 8**9 values from under 1 KB
    started = time.monotonic()
    with pytest.raises(ValueError, match="aliases .* expand to more than 100,000 values"):
        read_yaml_mapping(job, "job file")
    assert time.monotonic() - started < 5  # refused before building anything
    job.write_text(billion_laughs(levels=3))  # a few aliases are fine
    assert read_yaml_mapping(job, "job file")["c"][0][0] == ["lol"] * 8


def test_a_run_dir_on_a_full_disk_is_one_line_and_exit_3(inputs, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\nlandsat/RGB.byte.tif\n")

    def full_disk():  # every write past 0 bytes fails, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    command = [sys.executable, "-m", "tilefleet", "cogify", str(manifest)]
    command += ["--input-root", str(inputs), "--dest", str(tmp_path / "out")]
    command += ["--run-dir", str(tmp_path / "run")]
    done = subprocess.run(command, preexec_fn=full_disk, capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    # The first file a run writes is its plan's spool, in TMPDIR (the same full disk).
    assert lines[0].startswith("error: cannot write the plan's spool file ")
    assert "temporary" in lines[0]  # Python finds no folder it can write a file in
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
