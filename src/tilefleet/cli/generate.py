"""Command-line options made from pydantic models, so that each option is declared once.

A recipe's ``Params``, the run options, the executors' ``Settings`` and the grids' specs
are the declarations; :func:`model_options` turns their fields into typer parameters (name,
type, help, default shown) and :func:`command` makes a typer command of them. Every
option defaults to "not given", so the options of ``tilefleet run JOB`` override only what
the user typed; the model's own default is what ``--help`` shows.

How a field type appears:

- ``bool`` → ``--flag/--no-flag``; ``Literal[...]`` → a choice; numbers, text, paths as such;
- a list → a repeatable option (``--bands red --bands green``; ``red,green`` works too);
- a ``KEY=VALUE`` mapping (:data:`~tilefleet.fields.KeyValues`) → a repeatable option;
- anything else (a nested model, a mapping, a tuple) → text, read as YAML when it is a
  mapping or a list (``--tiles '{grid: utm, size: 5000, bbox: [5, 51, 6, 52]}'``).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.markup import escape

from tilefleet.fields import Cli, Pairs, cli_of

_SCALARS = (bool, int, float, str, Path, date)


def model_options(
    model: type[BaseModel],
    *,
    skip: Iterable[str] = (),
    required: bool = True,
    panel: str | None = None,
) -> list[inspect.Parameter]:
    """The typer parameters of ``model``'s fields (those not in ``skip`` or hidden), in the
    model's order, arguments first. With ``required`` False nothing is required (options
    that override a job file)."""
    skipped = set(skip)
    parameters = []
    for name, field in model.model_fields.items():
        hints = cli_of(field)
        if name in skipped or hints.hidden:
            continue
        parameters.append(_parameter(name, field, hints, required, panel))
    return sorted(parameters, key=lambda p: p.kind)


def command(
    app: typer.Typer,
    name: str,
    parameters: list[inspect.Parameter],
    handler: Callable[[dict[str, Any]], None],
    help: str,
    **settings: Any,
) -> None:
    """Add the command ``name`` to ``app``: its ``parameters`` are collected into one
    mapping of the values the user gave (YAML text read where the field wants it), which
    ``handler`` receives."""
    readers = {p.name: _reader_of(p) for p in parameters}

    def invoked(**kwargs: Any) -> None:
        given = {}
        for key, value in kwargs.items():
            if value is None or value == []:
                continue
            reader = readers.get(key)
            given[key] = reader(value) if reader else value
        handler(given)

    invoked.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    invoked.__annotations__ = {p.name: p.annotation for p in parameters}
    invoked.__doc__ = help
    app.command(name, help=help, **settings)(invoked)


def extra_option(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    """A parameter that is not a model field (``--verbose``), for :func:`command`."""
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def extra_argument(name: str, annotation: Any) -> inspect.Parameter:
    """A required positional parameter that is not a model field (a job file)."""
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)


def _parameter(
    name: str, field: FieldInfo, hints: Cli, required: bool, panel: str | None
) -> inspect.Parameter:
    base, many = _plain_type(field.annotation)
    shown = _default_text(field, hints)
    # The default goes into the help text (typer would bracket a text default) and the
    # option itself defaults to "not given": a job file's key then stays as it is.
    help_text = escape(field.description or "")
    if shown is not None:
        help_text += escape(f" [default: {shown}]")
    is_required = required and field.is_required()
    reader = None
    metavar = hints.metavar
    if many:
        kind: Any = list[str]
        metavar = metavar or ("KEY=VALUE" if base is dict else "VALUE[,VALUE…]")
    elif base is bool:
        kind = bool
    elif typing.get_origin(base) is Literal:
        kind = Literal[tuple(str(v) for v in typing.get_args(base))]  # a choice
    elif base in _SCALARS:
        kind = Path if base is Path else (str if base is date else base)
    else:  # nested models, mappings, tuples: text, read as YAML if it is one
        kind = str
        reader = _read_yaml
    if hints.argument:
        info = typer.Argument(
            help=help_text,
            show_default=False,
            metavar=metavar,
        )
        parameter = inspect.Parameter(
            name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=inspect.Parameter.empty if is_required else None,
            annotation=Annotated[kind if is_required else kind | None, info],
        )
    else:
        flag = hints.flag or "--" + name.replace("_", "-")
        declarations = [f"{flag}/--no-{flag.removeprefix('--')}" if kind is bool else flag]
        declarations += list(hints.aliases)
        if hints.short:
            declarations.append(hints.short)
        info = typer.Option(
            *declarations,
            help=help_text,
            show_default=False,
            metavar=metavar,
            rich_help_panel=panel,
        )
        annotation = Annotated[kind if is_required else kind | None, info]
        parameter = inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
        )
        if is_required:
            parameter = parameter.replace(default=inspect.Parameter.empty)
    if reader is not None:
        parameter = parameter.replace(annotation=Annotated[parameter.annotation, _Reader(reader)])
    return parameter


@dataclass(frozen=True)
class _Reader:
    """How a parameter's text becomes its value (kept in the annotation, which typer
    ignores beyond its own parameter info)."""

    read: Callable[[str], Any]


def _reader_of(parameter: inspect.Parameter) -> Callable[[str], Any] | None:
    metadata = typing.get_args(parameter.annotation)[1:]
    return next((item.read for item in metadata if isinstance(item, _Reader)), None)


def _plain_type(annotation: Any) -> tuple[Any, bool]:
    """The field's type without None, Annotated and aliases; and whether it is a list
    (or a ``KEY=VALUE`` mapping: also given as repeated options)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation, *metadata = typing.get_args(annotation)
            if any(isinstance(item, Pairs) for item in metadata):
                return dict, True
            continue
        if origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) == 1:
                annotation = options[0]
                continue
            return annotation, False
        if origin in (list, set, frozenset):
            return annotation, True
        return annotation, False


def _default_text(field: FieldInfo, hints: Cli) -> str | None:
    if hints.default is not None:
        return hints.default
    if field.default is PydanticUndefined or field.default is None:
        if field.default_factory is not None:
            value = field.default_factory()
            return ",".join(map(str, value)) if value else None
        return None
    value = field.default
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return None  # the --flag/--no-flag pair says it
    return str(value)


def _read_yaml(text: str) -> Any:
    """A nested value from the command line: YAML when it reads as a mapping or a list."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, dict | list) else text
