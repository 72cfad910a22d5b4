"""Fixtures of the cells tests (helpers live in ``granules.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cells.granules import REAL_GRANULE


@pytest.fixture
def real_granule(data_dir) -> Path:
    path = data_dir / REAL_GRANULE
    if not path.is_file():
        pytest.skip(f"the real ATL06 granule is missing: {path}")
    return path
