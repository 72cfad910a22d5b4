"""The workloads tilefleet runs, found by name in the registry (see :mod:`tilefleet.plugins`).
Each recipe's module is imported only when it is named, so the engine stays light."""

from __future__ import annotations

from tilefleet import plugins
from tilefleet.recipes.base import Recipe


def get_recipe(name: str) -> Recipe:
    """The recipe registered under ``name``, or a user's own given as ``package.module:Class``
    (importable on every worker); :class:`~tilefleet.plugins.UnknownPluginError` otherwise."""
    return plugins.load(plugins.RECIPES, name, Recipe)()


def recipe_names() -> list[str]:
    """The names of the registered recipes."""
    return plugins.names(plugins.RECIPES)
