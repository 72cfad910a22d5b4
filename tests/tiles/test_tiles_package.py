"""The shape of ``tilefleet.tiles``: a light manifest module and no import cycle (the lazy
exports are checked in test_tile_model.py)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tilefleet.tiles

TILES = Path(tilefleet.tiles.__file__).parent


def test_manifest_stays_light():
    heavy = ("shapely", "pyproj", "pyarrow", "pydantic")
    code = (
        f"import sys, tilefleet.tiles.manifest; print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _imports_of(path: Path) -> set[str]:
    """The ``tilefleet.tiles`` modules that ``path`` imports, anywhere in it (functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {n.split(".")[2] for n in names if n.startswith("tilefleet.tiles.")}
    return found


def test_no_import_cycle_inside_tiles():
    modules = {p.stem: p for p in TILES.glob("*.py") if p.stem != "__init__"}
    graph = {name: _imports_of(path) & modules.keys() - {name} for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for imported in sorted(graph[name]):
                visit(imported, (*path, name))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())
