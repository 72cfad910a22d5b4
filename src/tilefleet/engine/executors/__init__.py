"""Executors by name. Each engine is an adapter in its own module, imported only when chosen."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from tilefleet.engine.executors.base import Billing, Completion, Executor

EXECUTORS: dict[str, str] = {
    "local": "tilefleet.engine.executors.local:LocalExecutor",
    "dask": "tilefleet.engine.executors.dask:DaskExecutor",
    "ray": "tilefleet.engine.executors.ray:RayExecutor",
    "lithops": "tilefleet.engine.executors.lithops:LithopsExecutor",
    "htcondor": "tilefleet.engine.executors.htcondor:HTCondorExecutor",
    "routed": "tilefleet.engine.executors.routed:RoutedExecutor",
}


def create_executor(name: str, workers: int | None = None, **settings: Any) -> Executor:
    """An executor of the given name with its settings; raises ValueError for an unknown
    executor or a setting it does not take."""
    try:
        module, _, attr = EXECUTORS[name].partition(":")
    except KeyError:
        known = ", ".join(sorted(EXECUTORS))
        raise ValueError(f"unknown executor {name!r}; known: {known}") from None
    executor_class = getattr(import_module(module), attr)
    foreign = sorted(set(settings) - set(executor_class.setting_keys))
    if foreign:
        raise ValueError(f"executor {name!r} does not take: {', '.join(foreign)}")
    return executor_class(workers, **settings)


__all__ = ["EXECUTORS", "Billing", "Completion", "Executor", "create_executor"]
