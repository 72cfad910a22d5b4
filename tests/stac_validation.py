"""stac-validator run offline, on the core schemas and on every extension a file declares.

The machine reaches no schema host. The core STAC 1.1 schemas are the copies pystac ships.
No installed package ships the extension schemas (projection, raster, eo, processing), so
``stac_schemas/`` holds tilefleet's own transcription of each extension's field definitions:
names, types and ranges, and no field of the extension's prefix that it does not define (a
``proj:epsg`` beside projection v2 fails). An extension a file declares that has no schema
here fails the check, so a new one cannot go unchecked; so does a field of an extension the
file does not declare (stac-validator checks declared extensions only).
"""

from __future__ import annotations

import json
from pathlib import Path

import pystac
from stac_validator.validate import StacValidate

_SPEC = "https://schemas.stacspec.org/v1.1.0"
_LOCAL = Path(pystac.__file__).parent / "validation" / "jsonschemas"
_EXTENSIONS = Path(__file__).parent / "stac_schemas"


def _schema_map() -> dict[str, str]:
    folder = _LOCAL / "stac-spec" / "v1.1.0"
    mapping = {}
    for path in folder.glob("*.json"):
        spec = {"catalog.json": "catalog-spec", "collection.json": "collection-spec"}
        mapping[f"{_SPEC}/{spec.get(path.name, 'item-spec')}/json-schema/{path.name}"] = str(path)
    for name in ("Feature.json", "Geometry.json"):
        mapping[f"https://geojson.org/schema/{name}"] = str(_LOCAL / "geojson" / name)
    for path in _EXTENSIONS.glob("*.json"):
        mapping[json.loads(path.read_text())["$id"]] = str(path)
    return mapping


SCHEMA_MAP = _schema_map()


def stac_errors(path: Path) -> list[str]:
    """What stac-validator finds wrong with the STAC file at ``path`` (core and extensions)."""
    document = json.loads(path.read_text())
    assert document.get("stac_version") == "1.1.0", f"{path}: not STAC 1.1.0"
    unknown = set(document.get("stac_extensions", [])) - set(SCHEMA_MAP)
    if unknown:
        return [f"{path}: no local schema for {', '.join(sorted(unknown))}"]
    undeclared = _undeclared_prefixes(document)
    if undeclared:
        return [f"{path}: uses {', '.join(sorted(undeclared))} fields without declaring them"]
    validator = StacValidate(str(path), schema_map=dict(SCHEMA_MAP))
    valid = validator.run()
    (message,) = validator.message
    return [] if valid else [f"{path}: {message.get('error_message', message)}"]


def _undeclared_prefixes(document: dict) -> set[str]:
    """The extension prefixes (``proj:``…) of fields whose extension the file leaves out."""
    declared = {url.split("/")[3] for url in document.get("stac_extensions", [])}
    names = {"proj": "projection"}
    parts = [document.get("properties", {}), *document.get("assets", {}).values()]
    parts += list(document.get("item_assets", {}).values())
    used = {key.split(":")[0] for part in parts for key in part if ":" in key}
    known = {"proj", "raster", "eo", "processing"}
    return {f"{p}:" for p in used & known if names.get(p, p) not in declared}
