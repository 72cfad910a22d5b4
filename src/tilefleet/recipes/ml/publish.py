"""``publish`` (one task): a STAC collection of the zone maps ``export`` wrote: an item
per UTM zone, its footprint clipped to the area of interest, with the model and the
chain's runs as processing provenance; optionally pushed to a STAC API that has the
Transactions extension (``POST /collections``, ``POST /collections/{id}/items``; an
existing collection or item is replaced with ``PUT``).

Outputs below ``dest``: ``items/UTM_{epsg}.json`` (asset hrefs absolute, so the items
read the same wherever they are copied or pushed) and ``collection.json``, written last
(the marker), after the push.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from pydantic import Field

from tilefleet.errors import JobError, PermanentError
from tilefleet.recipes.base import Recipe
from tilefleet.recipes.params import RecipeParams
from tilefleet.store.location import StoreURL
from tilefleet.task import Task
from tilefleet.tiles.spec import GridSpec

COLLECTION_KEY = "collection.json"
ITEMS_PREFIX = "items"
_ZONE_ITEM = re.compile(r"^UTM_\d+\.json$")
PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"


class PublishParams(RecipeParams):
    path_fields = ("input", "dest", "model", "runs", "tiles.aoi")

    input: StoreURL = Field(description="Folder of the zone maps (the export step's dest)")
    dest: StoreURL = Field(description="Folder of the collection and its items")
    tiles: GridSpec = Field(description="The patches' grid and area (the footprints' clip)")
    model: StoreURL | None = Field(None, description="Folder of the model the maps come from")
    runs: str | None = Field(
        None, description="Run directory of the chain (its steps' reports become provenance)"
    )
    start_date: date | None = Field(None, description="First day of the imagery the maps show")
    end_date: date | None = Field(None, description="Last day of that imagery (inclusive)")
    collection_id: str = Field("ml-maps", description="Id of the collection")
    title: str = Field("Classification maps", description="Title of the collection")
    description: str = Field(
        "Per-pixel predictions of a LightGBM model over UTM patches, merged per UTM zone; "
        "written by tilefleet.",
        description="Description of the collection",
    )
    stac_api_url: str | None = Field(
        None, description="STAC API (Transactions extension) to push the collection to"
    )
    timeout_s: float = Field(30.0, gt=0, description="Timeout of each request to the STAC API")


class PublishRecipe(Recipe):
    name = "publish"
    summary = (
        "A STAC collection of the zone maps (an item per zone, clipped to the area), "
        "optionally pushed to a STAC API."
    )
    Params = PublishParams
    default_task_s = 2.0
    source_columns = ("collection",)

    def plan(self, params: PublishParams) -> list[Task]:
        from shapely.geometry import mapping

        from tilefleet.tiles.tile import TileInputError

        try:
            area = params.tiles.area_geometry()
        except (TileInputError, OSError, AttributeError) as exc:
            raise JobError(f"tiles: {exc}") from None
        payload = params.model_dump(mode="json", exclude={"tiles", "dest"})
        payload["aoi"] = mapping(area)
        cid = params.collection_id
        return [
            Task(cid, self.name, payload, str(params.dest), COLLECTION_KEY, {"collection": cid})
        ]

    def run(self, task: Task) -> dict[str, Any]:
        return publish_collection(task)

    def outputs_url(self, params: PublishParams) -> str:
        from tilefleet.store.location import Location

        return Location.parse(params.dest).join(COLLECTION_KEY)


def publish_collection(task: Task) -> dict[str, Any]:
    import shapely
    from shapely.geometry import mapping, shape

    from tilefleet.store.location import Location
    from tilefleet.store.objects import open_store
    from tilefleet.store.stac_item import collection_dict, collection_links, item_bytes

    p = task.params
    source, dest = open_store(p["input"]), open_store(task.dest)
    keys = sorted(i.key for i in source.list_dir("") if _ZONE_ITEM.match(i.key))
    if not keys:
        raise PermanentError(f"no zone map item (UTM_*.json) in {p['input']}")
    aoi = shape(p["aoi"])
    provenance = _provenance(p)
    items, item_keys = [], []
    for key in keys:
        item = json.loads(source.get_bytes(key))
        clipped = shapely.intersection(shape(item["geometry"]), aoi)
        if clipped.is_empty:
            continue
        item["geometry"], item["bbox"] = mapping(clipped), list(clipped.bounds)
        for asset in item["assets"].values():
            if asset["href"].startswith("./"):
                asset["href"] = Location.parse(p["input"]).join(asset["href"][2:])
        item_key = f"{ITEMS_PREFIX}/{key}"
        item["collection"] = p["collection_id"]
        item["properties"].update(provenance["properties"])
        if p["start_date"] and p["end_date"]:  # the imagery's period, not the export's time
            item["properties"].update(
                datetime=None,
                start_datetime=f"{p['start_date']}T00:00:00Z",
                end_datetime=f"{p['end_date']}T23:59:59Z",
            )
        item["links"] = collection_links(item_key, COLLECTION_KEY) + provenance["links"]
        item["stac_extensions"] = sorted({*item.get("stac_extensions", []), PROCESSING_SCHEMA})
        items.append(item)
        item_keys.append(item_key)
    collection = collection_dict(
        p["collection_id"],
        p["description"],
        items,
        [f"./{k}" for k in item_keys],
        title=p["title"],
    )
    collection["links"] += provenance["links"]
    collection["providers"] = [
        {"name": "tilefleet", "roles": ["processor"], **provenance["properties"]}
    ]
    collection["stac_extensions"] = [PROCESSING_SCHEMA]
    for item, item_key in zip(items, item_keys, strict=True):
        dest.put_bytes(item_bytes(item), item_key)
    pushed = 0
    if p["stac_api_url"]:
        pushed = push_to_api(p["stac_api_url"], collection, items, p["timeout_s"])
    dest.put_bytes(json.dumps(collection, indent=1).encode(), task.marker)  # last
    return {"items": len(items), "pushed_items": pushed}


def _provenance(p: dict) -> dict[str, Any]:
    """Properties (processing extension) and links naming the model and the chain's runs."""
    from pathlib import Path

    from tilefleet import __version__
    from tilefleet.store.location import Location
    from tilefleet.store.objects import open_store

    links: list[dict[str, Any]] = []
    lineage = ["Per-pixel predictions merged per UTM zone, each patch cropped to its own square"]
    if p["model"]:
        href = Location.parse(p["model"]).join("model.json")
        links.append(
            {
                "rel": "derived_from",
                "href": href,
                "type": "application/json",
                "title": "Model card: features, classes, metrics, training data",
            }
        )
        try:
            card = json.loads(open_store(p["model"]).get_bytes("model.json"))
        except (FileNotFoundError, OSError, ValueError):
            raise PermanentError(f"no model card at {href}") from None
        metrics = {k: v for k, v in card.get("metrics", {}).items() if not isinstance(v, list)}
        lineage.append(
            f"LightGBM {card['kind']} on {len(card['features'])} features "
            f"({', '.join(card['features'])}); {card['scored_on']}: "
            + ", ".join(f"{k} {v}" for k, v in metrics.items())
        )
    if p["runs"]:
        for report in sorted(Path(p["runs"]).glob("*/report.json")):
            try:
                summary = json.loads(report.read_text())
            except (OSError, ValueError):
                continue
            links.append(
                {
                    "rel": "via",
                    "href": str(report.resolve()),
                    "type": "application/json",
                    "title": f"run {summary.get('run_id')} ({summary.get('recipe')}): "
                    f"{summary.get('succeeded', 0)} succeeded, {summary.get('skipped', 0)} skipped",
                }
            )
    properties = {
        "processing:lineage": "; ".join(lineage),
        "processing:software": {"tilefleet": __version__},
    }
    return {"properties": properties, "links": links}


def push_to_api(url: str, collection: dict, items: list[dict], timeout_s: float) -> int:
    """Create (or replace) the collection and its items on a STAC API with Transactions;
    the number of items pushed. Throttling, server errors and lost connections raise
    retryable errors (the task is retried); other refusals are permanent."""
    import requests

    root = url.rstrip("/")
    cid = collection["id"]
    body = {**collection, "links": [x for x in collection["links"] if x["rel"] != "item"]}
    _send(requests, "POST", f"{root}/collections", body, f"{root}/collections/{cid}", timeout_s)
    for item in items:
        _send(
            requests,
            "POST",
            f"{root}/collections/{cid}/items",
            item,
            f"{root}/collections/{cid}/items/{item['id']}",
            timeout_s,
        )
    return len(items)


def _send(requests, method: str, url: str, body: dict, replace_url: str, timeout_s: float) -> None:
    response = requests.request(method, url, json=body, timeout=timeout_s)
    if response.status_code == 409:  # exists: replace it (a rerun publishes again)
        response = requests.put(replace_url, json=body, timeout=timeout_s)
    if response.status_code in (429,) or response.status_code >= 500:
        raise ConnectionError(f"STAC API {url}: HTTP {response.status_code}, will retry")
    if response.status_code >= 400:
        raise PermanentError(
            f"STAC API refused {method} {url}: HTTP {response.status_code} "
            f"{' '.join(response.text.split())[:200]}"
        )
