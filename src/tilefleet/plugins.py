"""The registry: recipes, executors and grids, found by name.

Every kind of plugin is an entry-point group. tilefleet declares its own in its
``pyproject.toml``, and a package of yours adds to them the same way, so its names work
in job files and on the command line like the built-in ones::

    [project.entry-points."tilefleet.recipes"]
    ndi = "mypackage.ndi:NdiRecipe"

Code that is not packaged is named by its import path, ``package.module:Class``. Either
way the name must lead to a class of the expected kind (a ``Recipe`` subclass for a
recipe, …); anything else is an invalid job that says what was found.

This module sits at the bottom of the layers, so it knows no plugin kind itself: each layer
asks for its own kind (``recipes`` for recipes, ``engine.executors`` for executors, …).
"""

from __future__ import annotations

import functools
import inspect
from importlib import import_module
from typing import TYPE_CHECKING, TypeVar

from tilefleet.errors import JobError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

RECIPES = "tilefleet.recipes"
EXECUTORS = "tilefleet.executors"
GRIDS = "tilefleet.grids"

#: What each group holds, for messages.
_KIND = {RECIPES: "recipe", EXECUTORS: "executor", GRIDS: "grid"}

T = TypeVar("T")


class UnknownPluginError(JobError, ValueError):
    """A name that is neither registered nor an importable class of the right kind."""


@functools.cache
def registered(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` by name (read from the installed packages once)."""
    # Imported here: a worker names its recipes by import path and never reads package
    # metadata, so it does not pay for importlib.metadata (tens of milliseconds).
    from importlib.metadata import entry_points

    return {point.name: point for point in entry_points(group=group)}


def names(group: str) -> list[str]:
    """The registered names of ``group``, sorted."""
    return sorted(registered(group))


def load(group: str, name: str, kind: type[T]) -> type[T]:
    """The class named ``name`` in ``group`` (a registered name or ``module:Class``);
    :class:`UnknownPluginError` unless it is a subclass of ``kind``."""
    what = _KIND.get(group, group)
    # An import path needs no package metadata: workers (tasks name their recipe by one)
    # never read the entry points.
    point = None if ":" in name else registered(group).get(name)
    if point is not None:
        reference = point.value
    elif ":" in name:
        reference = name
    else:
        known = ", ".join(names(group)) or "none"
        raise UnknownPluginError(
            f"unknown {what} {name!r}; known: {known} (or package.module:Class for your own)"
        )
    found = _import(reference, what)
    if not (inspect.isclass(found) and issubclass(found, kind) and not inspect.isabstract(found)):
        raise UnknownPluginError(
            f"{what} {name!r} is {_describe(found)}, not a {kind.__name__} class"
        )
    return found


def reference_of(cls: type) -> str:
    """The ``module:Class`` path of a class: what a worker imports it by, without reading
    any package metadata."""
    return f"{cls.__module__}:{cls.__qualname__}"


@functools.cache
def _import(reference: str, what: str) -> object:
    module_name, _, attribute = reference.partition(":")
    try:
        found: object = import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise UnknownPluginError(f"cannot load {what} {reference!r}: {exc}") from None
    return found


def _describe(value: object) -> str:
    if inspect.isclass(value):
        return f"the class {value.__module__}.{value.__qualname__}"
    if callable(value):
        where = getattr(value, "__module__", None) or "?"
        return f"the function {where}.{getattr(value, '__qualname__', value)}"
    return f"a {type(value).__name__}"
