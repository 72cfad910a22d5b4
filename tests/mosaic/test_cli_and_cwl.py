"""``tilefleet mosaic`` from the command line, and the CWL document run by cwltool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mosaic.outputs import TileStack, band_files

REPO = Path(__file__).resolve().parents[2]
CWL = REPO / "cwl" / "tilefleet-mosaic.cwl"
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "bands",
    [["--bands", "B04,B03,B02"], ["--bands", "B04", "--bands", "B03", "--bands", "B02"]],
    ids=["comma-separated", "repeated"],
)
def test_the_command_with_a_geojson_area_in_utm(bands, openeo_collection, tmp_path):
    area = tmp_path / "area.geojson"
    area.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32631"}},
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [
                                [
                                    [644600, 5675800],
                                    [645200, 5675800],
                                    [645200, 5676300],
                                    [644600, 5676300],
                                    [644600, 5675800],
                                ]
                            ],
                        },
                    }
                ],
            }
        )
    )
    command = [
        sys.executable,
        "-m",
        "tilefleet",
        "mosaic",
        "--catalog",
        str(openeo_collection),
        "--aoi",
        str(area),
        "--start-date",
        "2023-06-01",
        "--end-date",
        "2023-06-30",
        *bands,
        "--dtype",
        "float32",
        "--dest",
        str(tmp_path / "out"),
        "--run-dir",
        str(tmp_path / "run"),
        "--workers",
        "1",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"outputs    {tmp_path / 'out' / 'collection.json'}" in done.stdout
    (item,) = (tmp_path / "out/monthly-mosaic-2023-06").glob("*.json")
    with TileStack(item) as cog:
        assert cog.dtypes == ("float32",) * 3 and str(cog.nodata) == "nan"


def test_the_cwl_document_validates_and_runs_with_cwltool(openeo_collection, tmp_path):
    cwltool = shutil.which("cwltool", path=str(BIN)) or shutil.which("cwltool")
    if cwltool is None:
        pytest.fail("cwltool is part of the test extra; install it with make test")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    check = subprocess.run(
        [cwltool, "--validate", str(CWL)], capture_output=True, text=True, env=env
    )
    assert check.returncode == 0 and "is valid CWL" in check.stdout + check.stderr
    area = tmp_path / "area.geojson"  # the test's box as a GeoJSON file input
    west, south, east, north = 5.0705, 51.2155, 5.0795, 51.2195
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    area.write_text(json.dumps({"type": "Polygon", "coordinates": [ring]}))
    params = tmp_path / "params.json"
    params.write_text(
        json.dumps(
            {
                # The folder staged whole, as a container runner needs for relative links.
                "catalog_folder": {"class": "Directory", "path": str(openeo_collection.parent)},
                "aoi": {"class": "File", "path": str(area)},
                "start_date": "2023-06-01",
                "end_date": "2023-06-30",
                "bands": ["B04", "B03", "B02"],
                "executor": "local",
                "workers": 1,
            }
        )
    )
    out = tmp_path / "cwl-out"
    run = subprocess.run(
        [
            cwltool,
            "--no-container",
            "--outdir",
            str(out),
            f"{CWL}#main",
            str(params),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    mosaics = Path(result["stac_catalog"]["path"])
    collection = json.loads((mosaics / "collection.json").read_text())
    (link,) = [x["href"] for x in collection["links"] if x["rel"] == "item"]
    assert (mosaics / link).is_file() and all(p.is_file() for p in band_files(mosaics / link))
    # The EO Application Package entry point: catalog.json, reaching every item.
    import pystac

    root = pystac.Catalog.from_file(str(mosaics / "catalog.json"))
    assert [item.id for item in root.get_items(recursive=True)] == [
        json.loads((mosaics / link).read_text())["id"]
    ]
    assert (Path(result["run_record"]["path"]) / "report.json").is_file()


def test_a_job_file_with_paths_relative_to_itself(s2_catalog, tmp_path, monkeypatch):
    from tilefleet.engine.run import run_job
    from tilefleet.jobs import load_job

    job_file = tmp_path / "mosaic.yaml"
    job_file.write_text(
        f"""\
recipe: mosaic
catalog: {s2_catalog.name}
bbox: [-11.5, 24.6, -11.2, 24.9]
start_date: 2020-02-01
end_date: 2020-02-29
bands: [red, nir]
scl_mask: [8, 9, 10]
resolution: 200
dest: out
run_dir: run
workers: 1
"""
    )
    monkeypatch.chdir(tmp_path.parent)  # anywhere but the job file's folder
    job = load_job(job_file)
    assert job.params.catalog == str(s2_catalog) and job.params.scl_mask == [8, 9, 10]
    result = run_job(job)
    assert result.exit_code == 0
    assert (tmp_path / "out/collection.json").is_file() and (tmp_path / "run/report.json").is_file()
