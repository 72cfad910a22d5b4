"""The offline STAC check fails what the extensions forbid, so a passing file means something."""

from __future__ import annotations

import copy
import json

import pytest

from stac_validation import stac_errors

PROJ = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
EO = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
PROCESSING = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"

ITEM = {
    "type": "Feature",
    "stac_version": "1.1.0",
    "stac_extensions": [PROJ, RASTER, EO, PROCESSING],
    "id": "tile-1",
    "geometry": {"type": "Polygon", "coordinates": [[[6, 0], [7, 0], [7, 1], [6, 1], [6, 0]]]},
    "bbox": [6, 0, 7, 1],
    "properties": {
        "datetime": "2024-07-16T10:00:00Z",
        "proj:code": "EPSG:4326",
        "processing:lineage": "slope of the Copernicus DEM",
        "processing:software": {"tilefleet": "0.1.0"},
    },
    "links": [],
    "assets": {
        "red": {
            "href": "./red.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "proj:shape": [10, 10],
            "proj:transform": [0.1, 0, 6, 0, -0.1, 1],
            "eo:bands": [{"name": "B04", "common_name": "red"}],
            "raster:bands": [
                {"data_type": "uint16", "nodata": 0, "statistics": {"valid_percent": 100.0}}
            ],
        }
    },
}


def _errors(tmp_path, document) -> list[str]:
    path = tmp_path / "item.json"
    path.write_text(json.dumps(document))
    return stac_errors(path)


def test_a_well_formed_item_passes_every_declared_extension(tmp_path):
    assert _errors(tmp_path, ITEM) == []


def _with(change):
    document = copy.deepcopy(ITEM)
    change(document)
    return document


@pytest.mark.parametrize(
    "change",
    [
        # projection v2 has proj:code, not v1's proj:epsg
        lambda d: d["properties"].update({"proj:epsg": 4326}),
        lambda d: d["assets"]["red"].update({"proj:shape": [10]}),
        lambda d: d["assets"]["red"]["raster:bands"][0]["statistics"].update(
            {"valid_percent": 150}
        ),
        lambda d: d["assets"]["red"]["raster:bands"][0].update({"data_type": "uint12"}),
        lambda d: d["assets"]["red"]["eo:bands"][0].update({"common_name": "infrared"}),
        lambda d: d["properties"].update({"processing:lineage": 3}),
        # a field of a declared extension's prefix that the extension does not define
        lambda d: d["properties"].update({"processing:when": "now"}),
        # an extension the file declares but no local schema covers
        lambda d: d["stac_extensions"].append(
            "https://stac-extensions.github.io/sar/v1.0.0/schema.json"
        ),
    ],
    ids=[
        "proj-v1-field",
        "proj-shape",
        "valid-percent",
        "data-type",
        "common-name",
        "lineage-type",
        "unknown-field",
        "undeclared-schema",
    ],
)
def test_what_an_extension_forbids_fails(tmp_path, change):
    assert _errors(tmp_path, _with(change))


def test_fields_of_an_extension_the_item_does_not_declare_fail(tmp_path):
    document = _with(lambda d: d["stac_extensions"].remove(PROCESSING))
    assert _errors(tmp_path, document) == [
        f"{tmp_path / 'item.json'}: uses processing: fields without declaring them"
    ]
