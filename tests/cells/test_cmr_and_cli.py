"""The CMR catalog builder against a CMR-like server on loopback (real-shaped UMM-G pages
linked by CMR-Search-After), and the ``tilefleet cells`` commands."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import zarr
from shapely.geometry import Polygon
from typer.testing import CliRunner

from tilefleet.cli import app
from tilefleet.sources.cmr import GranuleQuery, search_granules
from tilefleet.tiles import healpix


def umm_item(name: str, ring: list[tuple[float, float]]) -> dict:
    return {
        "meta": {"concept-id": f"G-{name}", "native-id": name, "provider-id": "NSIDC_CPRD"},
        "umm": {
            "GranuleUR": name,
            "RelatedUrls": [
                {
                    "URL": f"https://data.nsidc.earthdatacloud.nasa.gov/ATL06/{name}",
                    "Type": "GET DATA",
                },
                {
                    "URL": f"s3://nsidc-cumulus-prod-protected/ATL06/{name}",
                    "Type": "GET DATA VIA DIRECT ACCESS",
                },
                {"URL": f"https://example.org/{name}.xml", "Type": "EXTENDED METADATA"},
            ],
            "SpatialExtent": {
                "HorizontalSpatialDomain": {
                    "Geometry": {
                        "GPolygons": [
                            {
                                "Boundary": {
                                    "Points": [{"Longitude": x, "Latitude": y} for x, y in ring]
                                }
                            }
                        ]
                    }
                }
            },
        },
    }


STRIPS = {  # three narrow along-track footprints
    "ATL06_A_01.h5": [(-50.0, 60.0), (-49.9, 60.0), (-49.9, 70.0), (-50.0, 70.0), (-50.0, 60.0)],
    "ATL06_B_01.h5": [
        (-49.95, 65.0),
        (-49.85, 65.0),
        (-49.85, 66.0),
        (-49.95, 66.0),
        (-49.95, 65.0),
    ],
    "ATL06_C_01.h5": [(10.0, 0.0), (10.1, 0.0), (10.1, 1.0), (10.0, 1.0), (10.0, 0.0)],
}


@pytest.fixture
def cmr():
    items = [umm_item(name, ring) for name, ring in STRIPS.items()]
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            query = parse_qs(urlparse(self.path).query)
            seen.append(
                {
                    "path": urlparse(self.path).path,
                    "query": query,
                    "after": self.headers.get("CMR-Search-After"),
                }
            )
            page = int(self.headers.get("CMR-Search-After") or 0)
            body = json.dumps(
                {"hits": len(items), "took": 3, "items": items[page * 2 : page * 2 + 2]}
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.nasa.cmr.umm_results+json")
            self.send_header("CMR-Hits", str(len(items)))
            if page * 2 + 2 < len(items):
                self.send_header("CMR-Search-After", str(page + 1))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_catalog_from_cmr_follows_pages_and_maps_footprints(cmr, tmp_path):
    url, seen = cmr
    out = tmp_path / "catalog.json"
    result = CliRunner().invoke(
        app,
        [
            "cells",
            "catalog",
            "--cycle",
            "22",
            "--bbox",
            "-60,55,20,75",
            "--cmr-url",
            url,
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert [s["after"] for s in seen] == [None, "1"]  # two pages via CMR-Search-After
    query = seen[0]["query"]
    assert seen[0]["path"] == "/search/granules.umm_json"
    assert query["short_name"] == ["ATL06"] and query["cycle[]"] == ["22"]
    assert query["bounding_box"] == ["-60,55,20,75"]
    doc = json.loads(out.read_text())
    catalog = {int(k): v for k, v in doc["catalog"].items()}
    # C lies outside the bbox, so its cells are dropped; B's cells are a subset of A's.
    a_cells = set(healpix.cells_covering(Polygon(STRIPS["ATL06_A_01.h5"]), 6).tolist())
    assert set(catalog) <= a_cells and len(catalog) >= 2
    b_url = "s3://nsidc-cumulus-prod-protected/ATL06/ATL06_B_01.h5"
    assert any(b_url in urls for urls in catalog.values())
    assert doc["metadata"]["https_urls"][b_url].startswith("https://data.nsidc")
    assert doc["metadata"]["parent_order"] == 6 and doc["metadata"]["cycle"] == 22


def test_catalog_needs_a_cycle_or_dates(tmp_path):
    result = CliRunner().invoke(app, ["cells", "catalog", "-o", str(tmp_path / "c.json")])
    assert result.exit_code == 3 and "cycle" in result.output


def test_cells_command_and_job_file_do_the_same(real_granule, tmp_path):
    runner = CliRunner()
    out = runner.invoke(
        app, ["cells", "catalog", str(real_granule), "-o", str(tmp_path / "c.json")]
    )
    assert out.exit_code == 0, out.output
    result = runner.invoke(
        app,
        [
            "cells",
            "--catalog",
            str(tmp_path / "c.json"),
            "--store",
            str(tmp_path / "a.zarr"),
            "--run-dir",
            str(tmp_path / "r1"),
            "--workers",
            "2",
            "--max-cells",
            "1",
            "--statistics",
            "count,h_q50",
        ],
    )
    assert result.exit_code == 0, result.output
    group = zarr.open_group(str(tmp_path / "a.zarr"), path="12", mode="r")
    assert sorted(group.array_keys()) == ["cell_ids", "count", "crs", "h_q50", "morton"]
    done = sorted(p.name for p in (tmp_path / "a.zarr/.tilefleet/done").iterdir())
    assert done == ["44325.json"]  # the parent with most granules first (tie: lower id)

    (tmp_path / "job.yaml").write_text(
        "recipe: cells\ncatalog: c.json\nstore: b.zarr\nrun_dir: r2\nmax_cells: 1\n"
        "statistics: [count, h_q50]\nworkers: 2\n"
    )
    result = runner.invoke(app, ["run", str(tmp_path / "job.yaml")])
    assert result.exit_code == 0, result.output
    other = zarr.open_group(str(tmp_path / "b.zarr"), path="12", mode="r")
    np.testing.assert_array_equal(other["count"][:], group["count"][:])


def test_bad_options_are_one_line_errors(tmp_path):
    result = CliRunner().invoke(app, ["cells", "--store", str(tmp_path / "s.zarr")])
    assert result.exit_code == 3 and "either granule files or a catalog" in result.output


def test_catalog_from_cmr_with_an_aoi_sends_a_polygon_and_clips_to_it(cmr, tmp_path):
    url, seen = cmr
    # A GeoJSON AOI in a projected CRS (UTM 22N) around 61-64°N on the A strip.
    from pyproj import Transformer

    to_utm = Transformer.from_crs(4326, 32622, always_xy=True)
    ring = [
        to_utm.transform(x, y)
        for x, y in [(-50.5, 61.0), (-49.5, 61.0), (-49.5, 64.0), (-50.5, 64.0), (-50.5, 61.0)]
    ]
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps({
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32622"}},
        "features": [{"type": "Feature", "properties": {},
                      "geometry": {"type": "Polygon", "coordinates": [ring]}}],
    }))  # fmt: skip
    out = tmp_path / "catalog.json"
    result = CliRunner().invoke(
        app,
        ["cells", "catalog", "--cycle", "22", "--aoi", str(aoi), "--cmr-url", url, "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    polygon = [float(v) for v in seen[0]["query"]["polygon"][0].split(",")]
    lons, lats = polygon[0::2], polygon[1::2]
    assert min(lons) == pytest.approx(-50.5, abs=0.05) and max(lats) == pytest.approx(64, abs=0.05)
    catalog = {int(k) for k in json.loads(out.read_text())["catalog"]}
    area = Polygon([(-50.5, 61.0), (-49.5, 61.0), (-49.5, 64.0), (-50.5, 64.0)])
    strip = Polygon(STRIPS["ATL06_A_01.h5"])
    expected = set(healpix.cells_covering(strip.intersection(area), 6).tolist())
    assert catalog and catalog <= set(healpix.cells_covering(area, 6).tolist())
    assert expected <= catalog


def test_a_throttled_search_waits_what_retry_after_says():
    """CMR throttles with 429 and Retry-After: the page is asked again after that wait."""
    times: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            times.append(time.monotonic())
            if len(times) == 1:
                self.send_response(429)
                self.send_header("Retry-After", "1")
                self.end_headers()
                return
            body = json.dumps(
                {"hits": 1, "items": [umm_item("ATL06_A_01.h5", STRIPS["ATL06_A_01.h5"])]}
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        granules = list(search_granules(GranuleQuery(cycle=22), url))
    finally:
        server.shutdown()
    assert [g.name for g in granules] == ["ATL06_A_01.h5"]
    assert len(times) == 2 and times[1] - times[0] >= 0.9  # the server's wait, not a guess
