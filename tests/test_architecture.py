"""The layers of the code and the registry, checked as CI runs them: no package imports one
above it, no module imports itself back, and a recipe, executor or grid of a user's own is
one class found by name."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PYPROJECT = SRC.parent / "pyproject.toml"


def module_imports(root: Path) -> dict[str, set[str]]:
    """Each tilefleet module and the tilefleet modules it imports (also inside functions)."""
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                targets = [".".join([*base, node.module or ""]).rstrip(".")]
                targets += [f"{targets[0]}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (one path per cycle found by a depth-first walk)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                found.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_module_imports_itself_back():
    graph = module_imports(SRC)
    assert len(graph) > 80 and "tilefleet.engine.run" in graph["tilefleet.api"]
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).with_name("lint-imports")),
        "--no-cache",
        "--config",
        str(PYPROJECT),
    ]
    return subprocess.run(
        command, cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root)}
    )


def test_the_layers_hold_and_a_violation_is_caught(tmp_path):
    kept = lint_imports(SRC)
    assert kept.returncode == 0 and "1 kept, 0 broken" in kept.stdout, kept.stdout + kept.stderr
    shutil.copytree(SRC / "tilefleet", tmp_path / "tilefleet")
    recipe = tmp_path / "tilefleet/recipes/base.py"
    recipe.write_text(recipe.read_text() + "\nfrom tilefleet.engine.run import run_job\n")
    broken = lint_imports(tmp_path)
    assert (
        broken.returncode == 1 and "tilefleet.recipes.base -> tilefleet.engine.run" in broken.stdout
    )
