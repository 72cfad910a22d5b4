"""Executors by name. Each engine is an adapter in its own module, imported only when chosen."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from tilefleet.engine.executors.base import Billing, Completion, Executor

EXECUTORS: dict[str, str] = {
    "local": "tilefleet.engine.executors.local:LocalExecutor",
}


def create_executor(name: str, workers: int | None = None, **settings: Any) -> Executor:
    """An executor of the given name; raises ValueError for an unknown one."""
    try:
        module, _, attr = EXECUTORS[name].partition(":")
    except KeyError:
        known = ", ".join(sorted(EXECUTORS))
        raise ValueError(f"unknown executor {name!r}; known: {known}") from None
    return getattr(import_module(module), attr)(workers, **settings)


__all__ = ["EXECUTORS", "Billing", "Completion", "Executor", "create_executor"]
