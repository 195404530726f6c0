"""A light edge: the node's code never loads the gateway, the simulator or the heavy numeric
stack, so `pip install .[edge]` on a Pi is enough and `instore edge` starts quickly."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Packages an edge node must never load (not installed by `.[edge]`, or the wrong layer).
FOREIGN = ("gateway", "sim", "cloud_sync", "benchmarks", "tests", "numpy", "scipy", "matplotlib", "fastapi")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def foreign(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in FOREIGN)


def test_no_edge_module_imports_the_gateway_the_simulator_or_numpy() -> None:
    code = (
        "import importlib, pkgutil, sys, edge\n"
        "for m in pkgutil.walk_packages(edge.__path__, 'edge.'): importlib.import_module(m.name)\n"
        "print('\\n'.join(sys.modules))"
    )
    out = run("-c", code)
    assert out.returncode == 0, out.stderr
    modules = out.stdout.split()
    assert "edge.node" in modules and "edge.rfid_node" in modules and "bleak" in modules
    assert foreign(modules) == []


def test_instore_edge_help_loads_only_what_the_node_uses() -> None:
    out = run("-X", "importtime", "-m", "instore.cli", "edge", "--help")
    assert out.returncode == 0, out.stderr
    assert "--config" in out.stdout
    loaded = [line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]
    assert "typer" in loaded
    assert foreign(loaded) == [] and "rich" not in {m.split(".")[0] for m in loaded}


def test_no_edge_source_names_them_even_in_a_lazy_import() -> None:
    """Imports inside functions (the simulated scanner used to be one) count too."""
    found = []
    for path in sorted((ROOT / "edge").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in FOREIGN]
    assert found == []
