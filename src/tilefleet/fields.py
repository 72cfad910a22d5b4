"""How parameters read and show themselves, declared next to the models that own them.

Recipes' ``Params``, executors' ``Settings`` and grids' specs are pydantic models; the job
files, ``tilefleet schema`` and the command line are all made from them. A field needs
nothing more than its type, default and description, unless the command line should show
it otherwise: :class:`Cli` (in the field's ``Annotated`` metadata) says so. The types below
accept the text forms a command line gives (``a,b``, ``KEY=VALUE``) as well as YAML's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import BeforeValidator
from pydantic.fields import FieldInfo

# yaml is imported where text is read: a worker imports its recipe's models (and so this
# module) but validates nothing.
if TYPE_CHECKING:
    import yaml

T = TypeVar("T")


@dataclass(frozen=True)
class Cli:
    """Command-line presentation of one field (``Annotated[int, Cli(...)]``).

    ``flag`` replaces ``--field-name`` (``--cluster-option`` for ``cluster_options``),
    ``aliases`` are older spellings still accepted (``("--store",)``), ``short`` adds a
    short flag, ``argument`` makes it positional, ``hidden`` keeps it to
    job files, and ``default`` is the text shown as the default where the model's default
    is None because the real one is decided later (``CPU count``)."""

    flag: str | None = None
    aliases: tuple[str, ...] = ()
    short: str | None = None
    argument: bool = False
    hidden: bool = False
    default: str | None = None
    metavar: str | None = None


def cli_of(field: FieldInfo) -> Cli:
    """The :class:`Cli` of a field, or the plain default one."""
    return next((item for item in field.metadata if isinstance(item, Cli)), Cli())


def _split_commas(value: Any) -> Any:
    """``"a,b"`` and ``["a,b", "c"]`` (a repeated option) are ``["a", "b", "c"]``."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        return [part for item in value for part in _parts(item)]
    return value


def _parts(item: Any) -> list[Any]:
    if not isinstance(item, str):
        return [item]
    return [part.strip() for part in item.split(",") if part.strip()]


def _key_values(value: Any) -> Any:
    """``["K=V", …]`` (a repeated option) is ``{K: V, …}``, each V read as YAML."""
    import yaml

    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        pairs = [str(item).partition("=") for item in value]
        return {key.strip(): yaml.safe_load(text) for key, _, text in pairs}
    return value


def _yaml_mapping(value: Any) -> Any:
    """A YAML or JSON mapping given as text on the command line."""
    import yaml

    return yaml.safe_load(value) if isinstance(value, str) else value


#: A list given as ``a,b``, as a repeated option, or as a YAML list.
CommaList = Annotated[list[T], BeforeValidator(_split_commas)]


@dataclass(frozen=True)
class Pairs:
    """Marks a mapping that the command line takes as repeated ``KEY=VALUE`` options."""


#: A mapping given as repeated ``KEY=VALUE`` options, or as a YAML mapping.
KeyValues = Annotated[dict[str, Any], BeforeValidator(_key_values), Pairs()]
#: A mapping given as YAML text on the command line, or as a YAML mapping.
YamlMapping = Annotated[dict[str, Any], BeforeValidator(_yaml_mapping)]


#: Most values a YAML file may stand for once its aliases (``*name``) are expanded: nested
#: aliases multiply, so a "billion laughs" file of a few hundred bytes stands for
#: gigabytes; a job is a few hundred values.
MAX_YAML_VALUES = 100_000


def _safe_yaml(text: str) -> Any:
    """``yaml.safe_load``, refusing (ValueError) a document whose aliases expand to more
    than :data:`MAX_YAML_VALUES` values; measured on the composed nodes, before anything
    is built from them."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_VALUES:
            raise ValueError(f"its aliases (*name) expand to more than {MAX_YAML_VALUES:,} values")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values ``node`` stands for with every alias expanded (each shared node measured once)."""
    import yaml

    if id(node) in sizes:
        return sizes[id(node)]
    sizes[id(node)] = 1  # a node that contains itself counts once
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(item, sizes) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(
            _expanded_size(key, sizes) + _expanded_size(value, sizes) for key, value in node.value
        )
    else:
        size = 1
    sizes[id(node)] = size
    return size


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML file of keys and values (a job file, an engine's config); ValueError with one
    clear line otherwise."""
    import yaml

    try:
        raw = _safe_yaml(Path(path).read_text())
    except ValueError as exc:
        raise ValueError(f"{what} {path} is refused: {exc}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{what} {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{what} {path} must be a mapping of keys to values")
    return raw
