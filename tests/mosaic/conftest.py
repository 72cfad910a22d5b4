"""Real Sentinel-2 scenes as STAC for the mosaic tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mosaic.scenes import local_scene_item


@pytest.fixture
def s2_catalog(data_dir, tmp_path) -> Path:
    """An ItemCollection of the real L2A scene with its SCL."""
    path = tmp_path / "s2-items.json"
    collection = {"type": "FeatureCollection", "features": [local_scene_item(data_dir)]}
    path.write_text(json.dumps(collection))
    return path


@pytest.fixture
def openeo_collection(data_dir) -> Path:
    """A static collection of three real dates (nested sub-folder, relative links)."""
    return data_dir / "s2_openeo_3dates_be" / "collection.json"
