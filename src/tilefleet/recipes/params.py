"""The base of every recipe's parameters model (pydantic).

It lives apart from :mod:`tilefleet.recipes.base` so that a worker, which imports a recipe
to run its tasks but never validates parameters, need not import pydantic: a recipe names
its model with :class:`~tilefleet.recipes.base.ParamsModel`, imported on first use.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class RecipeParams(BaseModel):
    """Base of each recipe's parameters: the job-file keys and CLI options it adds."""

    # Built on first validation, not at import: a recipe's ``--help`` and the workers of
    # recipes that keep their model beside their tasks import it but validate nothing.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    #: Parameters holding local paths that a job file may give relative to itself
    #: (``a.b`` for a key ``b`` inside the mapping ``a``).
    path_fields: ClassVar[tuple[str, ...]] = ()
