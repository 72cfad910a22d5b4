"""``ttc-ard``: analysis-ready inputs of the Tropical Tree Cover model, per TTC tile and year.

One task per tile (1/18 degree, from the TTC tile database), year and product:

- ``dem`` (:mod:`.dem`): slope in degrees from the Copernicus GLO-30 DEM on a 1/3
  arc-second grid (~10 m), at the true ground spacing of each row;
- ``s1`` (:mod:`.s1`): Sentinel-1 RTC quarterly VV/VH median composites, uint16;
- ``s2`` (:mod:`.s2`): a cloud-screened Sentinel-2 L2A time series (up to 24 dates, 10
  bands, cirrus mask, real acquisition dates), Zarr with a time coordinate.

Planning (:mod:`.planning`) selects tiles as ``tilefleet tiles ttc`` does; each task
searches its own inputs (STAC API or static catalog) and writes its outputs, then its STAC
item (:mod:`.items`), where :mod:`.layout` says. Each product is its own task, so it skips,
retries, routes (``routed`` executor, ``route_by: product``) and is costed on its own
(:meth:`TtcArdRecipe.task_kind`). Product modules are imported where first needed, so a
worker loads only what its product takes.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from tilefleet.errors import JobError
from tilefleet.recipes.base import ParamsModel, Recipe
from tilefleet.recipes.ttc_ard.layout import SOURCE_COLUMNS
from tilefleet.task import Task

if TYPE_CHECKING:
    from tilefleet.recipes.ttc_ard.params import TtcArdParams

#: Seconds per task before a product has been measured: the TTC job tracker's averages.
DEFAULT_TASK_S = {"dem": 9.0, "s1": 14.0, "s2": 62.0}


# No class docstring: ``Recipe.describe`` would turn it into the recipe's one-line summary.
class TtcArdRecipe(Recipe):
    name = "ttc-ard"
    summary = (
        "TTC analysis-ready tiles: DEM slope, Sentinel-1 quarterly composites and a "
        "cloud-screened Sentinel-2 series per 1/18-degree tile and year."
    )
    Params = ParamsModel("tilefleet.recipes.ttc_ard.params:TtcArdParams")
    default_task_s = DEFAULT_TASK_S["s2"]
    default_task_s_by_kind = DEFAULT_TASK_S
    source_columns = SOURCE_COLUMNS

    def plan(self, params: TtcArdParams) -> list[Task]:
        from tilefleet.recipes.ttc_ard.planning import plan_tasks

        if params.format == "hkl" and importlib.util.find_spec("hickle") is None:
            # Every task would fail for it: one line now instead (workers need it too).
            raise JobError("--format hkl needs the hickle package: install tilefleet[ttc]")
        return plan_tasks(params, self.name)

    def task_kind(self, task: Task) -> str | None:
        return task.params.get("product")

    def run(self, task: Task) -> dict[str, Any]:
        product = task.params["product"]
        if product == "dem":
            from tilefleet.recipes.ttc_ard.dem import run_dem

            return run_dem(task)
        if product == "s1":
            from tilefleet.recipes.ttc_ard.s1 import run_s1

            return run_s1(task)
        from tilefleet.recipes.ttc_ard.s2 import run_s2

        return run_s2(task)


__all__ = ["DEFAULT_TASK_S", "TtcArdRecipe"]
