"""Executors by name, from the registry (see :mod:`tilefleet.plugins`). Each engine is an
adapter in its own module; the engine library itself is imported only when one is started."""

from __future__ import annotations

import logging
from typing import Any

from tilefleet import plugins
from tilefleet.engine.executors.base import (
    AttemptExecutor,
    Billing,
    Completion,
    Executor,
    ExecutorSettings,
    Launch,
    PlanExecutor,
)

log = logging.getLogger("tilefleet")


def executor_class(name: str) -> type[Executor]:
    """The executor class registered under ``name`` (or given as ``module:Class``)."""
    return plugins.load(plugins.EXECUTORS, name, Executor)


def executor_classes() -> dict[str, type[Executor]]:
    """Every registered executor class by name; one whose module cannot be imported is
    left out with a warning, so a broken plugin does not break every job."""
    classes = {}
    for name in plugins.names(plugins.EXECUTORS):
        try:
            classes[name] = executor_class(name)
        except plugins.UnknownPluginError as exc:
            log.warning("executor %s is not available: %s", name, exc)
    return classes


def create_executor(name: str, workers: int | None = None, **settings: Any) -> Executor:
    """An executor of the given name with its settings; raises ValueError for an unknown
    executor or settings it does not take."""
    return executor_class(name)(workers, **settings)


__all__ = [
    "AttemptExecutor",
    "Billing",
    "Completion",
    "Executor",
    "ExecutorSettings",
    "Launch",
    "PlanExecutor",
    "create_executor",
    "executor_class",
    "executor_classes",
]
