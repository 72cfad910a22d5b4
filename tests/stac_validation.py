"""stac-validator run offline: the core STAC 1.1 schemas served from the copies pystac ships.

The machine reaches no schema host, and no installed package ships the extension schemas
(projection, raster, eo, processing), so only the core schemas are checked by schema; the
tests check the extension fields they depend on themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pystac
from stac_validator.validate import StacValidate

_SPEC = "https://schemas.stacspec.org/v1.1.0"
_LOCAL = Path(pystac.__file__).parent / "validation" / "jsonschemas"


def _schema_map() -> dict[str, str]:
    folder = _LOCAL / "stac-spec" / "v1.1.0"
    mapping = {}
    for path in folder.glob("*.json"):
        spec = {"catalog.json": "catalog-spec", "collection.json": "collection-spec"}
        mapping[f"{_SPEC}/{spec.get(path.name, 'item-spec')}/json-schema/{path.name}"] = str(path)
    for name in ("Feature.json", "Geometry.json"):
        mapping[f"https://geojson.org/schema/{name}"] = str(_LOCAL / "geojson" / name)
    return mapping


SCHEMA_MAP = _schema_map()


def stac_errors(path: Path) -> list[str]:
    """What stac-validator finds wrong with the STAC file at ``path`` (core schemas)."""
    document = json.loads(path.read_text())
    assert document.get("stac_version") == "1.1.0", f"{path}: not STAC 1.1.0"
    validator = StacValidate(str(path), core=True, schema_map=dict(SCHEMA_MAP))
    valid = validator.run()
    (message,) = validator.message
    return [] if valid else [f"{path}: {message.get('error_message', message)}"]
