"""The probe recipe's parameters, in a module of their own as a recipe's model is (see
``start_probe_recipe``): its worker does not import them."""

from __future__ import annotations

from typing import Any

from tilefleet.recipes.params import RecipeParams


class ProbeParams(RecipeParams):
    raster: str
    dest: str
    #: A planned task of a built-in recipe (its fields), run by the probe after its own work.
    task: dict[str, Any] | None = None
