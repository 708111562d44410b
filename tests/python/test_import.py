"""The package imports without Mininet, and the stubs cover the compiled module."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import handofflab
from handofflab import _core

BINDINGS = Path(__file__).resolve().parents[2] / "bindings"


def test_import_needs_no_mininet() -> None:
    # A fresh interpreter: importing the package and the core must not pull in
    # Mininet or the Cluster module (Cluster is lazy).
    code = (
        "import sys, handofflab, handofflab._core\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'mininet' or m == 'handofflab.cluster']\n"
        "assert not bad, bad\n"
        "print(handofflab.__version__, handofflab._core.__version__)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(BINDINGS))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [handofflab.__version__, _core.__version__]


def test_stubs_cover_the_module() -> None:
    tree = ast.parse((BINDINGS / "handofflab" / "_core.pyi").read_text())
    stubbed: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            stubbed.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stubbed.add(node.target.id)
    public = {name for name in dir(_core) if not name.startswith("_")}
    assert public - stubbed == set(), "missing from _core.pyi"
    assert stubbed - public - {"__version__"} == set(), "stubbed but not in _core"
