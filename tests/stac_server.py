"""A real STAC API (stac-fastapi-static) on loopback, serving real items, with a switchable
"429 storm" in front of it.

stac-fastapi-static answers ``/search`` (bbox/intersects, datetime, collections, CQL2
``filter``, paging) straight from a static catalog on disk: no database server, so the same
catalog files that the static-catalog tests walk also back the API.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import rasterio
import requests
import uvicorn

# The openEO chips (3 dates, near Mol, BE) carry no collection id: the server's copy gets one.
OPENEO_COLLECTION = "openeo-mol"
OPENEO_ITEMS = (
    "openEO_2023-06-01Z.tif.json",
    "sub-folder/openEO_2023-06-04Z.tif.json",
    "sub-folder/openEO_2023-06-06Z.tif.json",
)
EARTH_SEARCH_COLLECTION = "sentinel-2-l2a"
EARTH_SEARCH_ITEM = "s2_l2a_29RKH_20200219/S2A_29RKH_20200219_0_L2A.json"


def _place(source: Path, target: Path) -> str:
    """Put a real data file below the catalog (a hard link where the file system allows, a
    copy otherwise: the server's static mount refuses symlinks that leave its folder) and
    return its href relative to the item files in ``items/``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, target)
    return f"../assets/{target.name}"


def _localise_earth_search(item: dict, item_file: Path, folder: Path) -> dict:
    """Point the 29RKH item at the downsampled real COGs and drop the assets that exist only
    on AWS; ``proj:shape``/``proj:transform`` are read from the files so they stay true."""
    assets = {}
    for key, asset in item["assets"].items():
        source = item_file.parent / asset["href"].rsplit("/", 1)[-1]
        if not (asset["href"].endswith(".tif") and source.is_file()):
            continue
        with rasterio.open(source) as src:
            assets[key] = {
                **asset,
                "href": _place(source, folder / "assets" / source.name),
                "proj:shape": [src.height, src.width],
                "proj:transform": list(src.transform)[:6],
            }
    return {**item, "assets": assets}


def _localise_openeo(item: dict, item_file: Path, folder: Path) -> dict:
    assets = {}
    for key, asset in item["assets"].items():
        source = (item_file.parent / asset["href"]).resolve()
        assets[key] = {**asset, "href": _place(source, folder / "assets" / source.name)}
    return {**item, "collection": OPENEO_COLLECTION, "assets": assets}


def _collection(collection_id: str, items: list[dict]) -> dict:
    west = min(i["bbox"][0] for i in items)
    south = min(i["bbox"][1] for i in items)
    east = max(i["bbox"][2] for i in items)
    north = max(i["bbox"][3] for i in items)
    times = sorted(i["properties"]["datetime"] for i in items)
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": collection_id,
        "description": f"Real test items ({len(items)}) for {collection_id}",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [[west, south, east, north]]},
            "temporal": {"interval": [[times[0], times[-1]]]},
        },
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
        ]
        + [
            {"rel": "item", "href": f"./items/{i['id']}.json", "type": "application/geo+json"}
            for i in items
        ],
    }


def write_test_catalog(data_dir: Path, root: Path) -> Path:
    """Write a static catalog of the real items, and their real rasters, below ``root``;
    returns the path of its ``catalog.json``. Asset hrefs are relative, so the server
    publishes them as its own ``http://127.0.0.1:…/<collection>/assets/…`` URLs."""
    if root.exists():
        shutil.rmtree(root)
    openeo = [data_dir / "s2_openeo_3dates_be" / name for name in OPENEO_ITEMS]
    es_file = data_dir / EARTH_SEARCH_ITEM
    groups = {
        OPENEO_COLLECTION: [
            _localise_openeo(json.loads(f.read_text()), f, root / OPENEO_COLLECTION) for f in openeo
        ],
        EARTH_SEARCH_COLLECTION: [
            _localise_earth_search(
                json.loads(es_file.read_text()), es_file, root / EARTH_SEARCH_COLLECTION
            )
        ],
    }
    return write_catalog(
        root, groups, "tilefleet-test", "Real Sentinel-2 items for tilefleet's STAC tests"
    )


def write_catalog(
    root: Path, groups: dict[str, list[dict]], catalog_id: str, description: str
) -> Path:
    """A static catalog of collections (id -> items, each given its collection and links)
    below ``root``; returns the path of its ``catalog.json``."""
    root.mkdir(parents=True, exist_ok=True)
    for collection_id, items in groups.items():
        folder = root / collection_id
        (folder / "items").mkdir(parents=True, exist_ok=True)
        (folder / "collection.json").write_text(json.dumps(_collection(collection_id, items)))
        for item in items:
            item = {
                **item,
                "collection": collection_id,
                "links": [
                    {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
                    {"rel": "parent", "href": "../collection.json", "type": "application/json"},
                    {"rel": "collection", "href": "../collection.json"},
                ],
            }
            (folder / "items" / f"{item['id']}.json").write_text(json.dumps(item))
    catalog = {
        "type": "Catalog",
        "stac_version": "1.0.0",
        "id": catalog_id,
        "description": description,
        "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
        + [
            {"rel": "child", "href": f"./{cid}/collection.json", "type": "application/json"}
            for cid in groups
        ],
    }
    path = root / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


class ThrottleStorm:
    """ASGI middleware: once armed, answers the next N HTTP requests with a 429 (or any
    status) and ``Retry-After`` instead of passing them on, like a throttling gateway.

    It is armed over HTTP (``POST /_storm`` with ``{"requests": N, "status": 429,
    "retry_after": "1"}``; ``GET /_storm`` reports what is left and how many were turned
    away), because the server runs in its own process: GDAL reading an asset from a server
    thread of the same process would deadlock on the GIL.
    """

    def __init__(self, app):
        self.app = app
        self.state = {"remaining": 0, "status": 429, "retry_after": "1", "answered": 0}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"] == CONTROL_PATH:
            await self._control(scope, receive, send)
        elif self.state["remaining"] > 0:
            self.state["remaining"] -= 1
            self.state["answered"] += 1
            await _respond(
                send,
                self.state["status"],
                {"code": "TooManyRequests", "description": "throttled by the test storm"},
                [(b"retry-after", str(self.state["retry_after"]).encode())],
            )
        else:
            await self.app(scope, receive, send)

    async def _control(self, scope, receive, send):
        if scope["method"] == "POST":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            storm = json.loads(body or b"{}")
            self.state = {
                "remaining": int(storm.get("requests", 0)),
                "status": int(storm.get("status", 429)),
                "retry_after": str(storm.get("retry_after", "1")),
                "answered": 0,
            }
        await _respond(send, 200, self.state)


CONTROL_PATH = "/_storm"


async def _respond(send, status: int, payload: dict, headers: list | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


def serve(catalog: Path) -> None:
    """Run the API for ``catalog`` on a free loopback port until terminated; the first line
    on stdout is its root URL."""
    import logging

    from stac_fastapi.static.api import Settings, make_api

    logging.getLogger("stac_fastapi").setLevel(logging.ERROR)
    settings = Settings(catalog_href=str(catalog.resolve()), reload=False, log_level="warning")
    app = ThrottleStorm(make_api(settings).app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


class StacApiServer:
    """stac-fastapi-static serving a static catalog under uvicorn on 127.0.0.1, in a child
    process; :meth:`storm` arms the throttling middleware in front of it."""

    def __init__(self, catalog: Path):
        self.catalog = catalog
        self.url = ""
        self._process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> StacApiServer:
        self._process = subprocess.Popen(
            [sys.executable, "-W", "ignore", __file__, str(self.catalog)],
            stdout=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + timeout_s
        self.url = self._process.stdout.readline().strip()
        while True:
            try:
                if self.url and requests.get(self.url, timeout=5).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"STAC API server for {self.catalog} did not start")
            time.sleep(0.1)

    def storm(self, requests_: int, *, status: int = 429, retry_after: str = "1") -> None:
        """Turn the next ``requests_`` requests away with ``status`` and ``Retry-After``."""
        body = {"requests": requests_, "status": status, "retry_after": retry_after}
        requests.post(self.url + CONTROL_PATH, json=body, timeout=5).raise_for_status()

    def storm_state(self) -> dict:
        """``remaining`` requests the storm will still turn away, and how many it has."""
        return requests.get(self.url + CONTROL_PATH, timeout=5).json()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
