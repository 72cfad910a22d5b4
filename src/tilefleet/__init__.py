"""tilefleet: Earth-observation work tile by tile, at any scale.

The Python API (see :mod:`tilefleet.api`)::

    import tilefleet
    result = tilefleet.run("cogify", manifest="m.csv", input_root="in", dest="out")

Names are imported on first use, so ``import tilefleet`` (in every worker) stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "run": "tilefleet.api",
    "plan": "tilefleet.api",
    "load_job": "tilefleet.api",
    "load_chain": "tilefleet.chain",
    "Chain": "tilefleet.chain",
    "ChainResult": "tilefleet.chain",
    "Job": "tilefleet.engine.job",
    "RunResult": "tilefleet.engine.result",
    "FailedTask": "tilefleet.engine.result",
    "RunCallback": "tilefleet.engine.callbacks",
    "RunStart": "tilefleet.engine.callbacks",
    "AttemptEnd": "tilefleet.engine.callbacks",
    "ExitCode": "tilefleet.errors",
    "TilefleetError": "tilefleet.errors",
    "JobError": "tilefleet.errors",
    "PermanentError": "tilefleet.errors",
    "RetryableError": "tilefleet.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
