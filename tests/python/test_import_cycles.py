"""No import cycle among the Python lab's modules: handofflab (every import
statement, also those inside functions), topologies, and the experiment folders'
experiment.py files (which handofflab.registry loads: counted as imported by it).
Parses the sources (ast); imports nothing it checks."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"handofflab": ROOT / "bindings" / "handofflab", "topologies": ROOT / "topologies"}
REGISTRY = "handofflab.registry"  # loads experiments/<name>/experiment.py by path


def lab_modules() -> dict[str, Path]:
    """{module name: source file} of every module checked."""
    mods: dict[str, Path] = {}
    for pkg, folder in PACKAGES.items():
        for path in sorted(folder.glob("*.py")):
            mods[pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"] = path
    for path in sorted((ROOT / "experiments").glob("*/experiment.py")):
        mods[f"experiments/{path.parent.name}"] = path
    return mods


def _package_of(name: str, path: Path) -> str:
    if name.startswith("experiments/"):
        return ""
    return name if path.stem == "__init__" else name.rpartition(".")[0]


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules in ``known`` that the source of module ``name`` imports."""
    package = _package_of(name, path)
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in known:  # a name inside a module: the module
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            for alias in node.names:  # `from pkg import mod` imports pkg.mod
                full = f"{base}.{alias.name}"
                add(full if full in known else base)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = lab_modules()
    # compiled modules (handofflab._core, stubbed by _core.pyi) import nothing of ours
    compiled = {f"{pkg}.{stub.stem}" for pkg, folder in PACKAGES.items()
                for stub in folder.glob("*.pyi") if not (folder / f"{stub.stem}.py").exists()}
    known = set(mods) | compiled
    graph = {name: imports_of(name, path, known) for name, path in mods.items()}
    graph[REGISTRY] |= {m for m in mods if m.startswith("experiments/")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> Optional[list[str]]:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> Optional[list[str]]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_checker_sees_every_module_and_edge() -> None:
    graph = import_graph()
    assert {"handofflab", "handofflab.cluster", "handofflab.experiment", "handofflab.runner",
            "handofflab.soak", "topologies", "topologies.cluster", "experiments/soak"} <= set(graph)
    assert "handofflab.runner" in graph["handofflab.experiment"]
    assert "handofflab.cluster" in graph["handofflab.runner"]  # inside a function
    assert "handofflab.cluster" in graph["handofflab"]  # `from . import cluster`, lazily
    assert "topologies.cluster" in graph["handofflab.topo"]
    assert "handofflab" not in graph["handofflab.cluster"]  # `from . import _core`: compiled
    assert {"handofflab.runner", "handofflab.soak"} <= graph["experiments/soak"]
    assert not any(m.startswith("handofflab") for m in graph["topologies.cluster"])


def test_the_checker_finds_a_cycle() -> None:
    # the cycle this layout removed: experiment -> soak (SoakRunner) -> experiment (_Runner)
    old = {"handofflab.experiment": {"handofflab.soak", "handofflab.results"},
           "handofflab.soak": {"handofflab.experiment"}, "handofflab.results": set()}
    assert find_cycle(old) == ["handofflab.experiment", "handofflab.soak",
                               "handofflab.experiment"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
