"""The workloads tilefleet runs, by name. Imported lazily so the engine stays light."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tilefleet.recipes.base import Recipe

RECIPES: dict[str, str] = {
    "cogify": "tilefleet.recipes.cogify:CogifyRecipe",
}


def get_recipe(name: str) -> Recipe:
    """The recipe registered under ``name``."""
    try:
        module, _, attr = RECIPES[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPES))}") from None
    return getattr(import_module(module), attr)()
