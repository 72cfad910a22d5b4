"""The workloads tilefleet runs, by name. Imported lazily so the engine stays light."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tilefleet.recipes.base import Recipe

RECIPES: dict[str, str] = {
    "cells": "tilefleet.recipes.cells:CellsRecipe",
    "cogify": "tilefleet.recipes.cogify:CogifyRecipe",
    "mosaic": "tilefleet.recipes.mosaic:MosaicRecipe",
    "tile-index": "tilefleet.recipes.tile_index:TileIndexRecipe",
}


def get_recipe(name: str) -> Recipe:
    """The recipe registered under ``name``, or a user's own given as ``package.module:Class``
    (importable on every worker)."""
    reference = RECIPES.get(name) or (name if ":" in name else None)
    if reference is None:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPES))}")
    module, _, attr = reference.partition(":")
    try:
        return getattr(import_module(module), attr)()
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load recipe {name!r}: {exc}") from None
