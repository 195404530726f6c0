"""The module dependency graph of the production packages, from their source (no imports run).

    python docs/depgraph.py                   # package level, as Mermaid
    python docs/depgraph.py gateway           # the modules of one package
    python docs/depgraph.py gateway --layers  # its sub-packages (and top-level modules)
    python docs/depgraph.py --root DIR ...    # another checkout (e.g. an older commit's tree)

Used for docs/architecture.md and by tests/test_import_layers.py. Every import counts: at
module level, inside functions (lazy) and under `if TYPE_CHECKING:` alike, since each is a
dependency of the design; `Import.eager` says which ones run when the module is imported.
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("edge", "gateway", "cloud_sync", "firmware_config", "sim", "instore", "benchmarks", "tests")
PRODUCTION = PACKAGES[:6]


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (a module of the packages above)
    line: int
    eager: bool  # at module level, outside `if TYPE_CHECKING:`: runs on import


def modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    found = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _eager_nodes(tree: ast.Module) -> set[int]:
    """ids of the import nodes that run at import time (module body, not under TYPE_CHECKING)."""
    eager: set[int] = set()
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            eager.add(id(node))
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            stack += node.body + node.orelse
        elif isinstance(node, ast.Try):
            stack += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
    return eager


def _named(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [f"{prefix}.{a.name}" for a in node.names]  # a name that is no module resolves to `prefix`


def imports(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[Import]:
    """Every import between modules of `packages` under `root`."""
    known = modules(root, packages)
    out = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        eager = _eager_nodes(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            targets = set()
            for name in _named(node, module, path.name == "__init__.py"):
                while name and name not in known:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    targets.add(name)
            out += [Import(module, t, node.lineno, id(node) in eager) for t in sorted(targets)]
    return out


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        v = todo.pop()
        if v not in seen:
            seen.add(v)
            todo += graph.get(v, ())
    return seen


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The groups of nodes that reach each other (strongly connected components of 2 or more)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    reach = {v: _reachable(graph, v) for v in graph}
    found: list[list[str]] = []
    for v in sorted(graph):
        if v in reach[v] and not any(v in c for c in found):
            found.append(sorted(w for w in reach[v] if v in reach.get(w, ())))
    return found


def mermaid(edges: set[tuple[str, str]], title: str) -> str:
    ids = {n: n.replace(".", "_") for e in edges for n in e}
    lines = [f"%% {title}", "graph LR"]
    lines += [f"  {ids[n]}[{n}]" for n in sorted(ids) if ids[n] != n]
    lines += [f"  {ids[a]} --> {ids[b]}" for a, b in sorted(edges)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", nargs="?", help="one package's modules (default: package level)")
    ap.add_argument("--layers", action="store_true", help="with a package: its sub-packages, not its modules")
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = ap.parse_args()
    found = imports(args.root, PRODUCTION)
    if args.package is None:
        edges = {(i.source.split(".")[0], i.target.split(".")[0]) for i in found}
        edges = {(a, b) for a, b in edges if a != b}
        print(mermaid(edges, "packages: A --> B means A imports B"))
    else:
        prefix = args.package + "."
        edges = {(i.source, i.target) for i in found if i.source.startswith(prefix) and i.target.startswith(prefix)}
        short = {(a.removeprefix(prefix), b.removeprefix(prefix)) for a, b in edges}
        if args.layers:  # engines.presence -> engines
            short = {(a.split(".")[0], b.split(".")[0]) for a, b in short}
            edges = short = {(a, b) for a, b in short if a != b}
        what = "sub-packages" if args.layers else "modules"
        print(mermaid(short, f"{what} of {args.package}: A --> B means A imports B"))
    for c in cycles(edges):
        print(f"%% cycle: {' <-> '.join(c)}")


if __name__ == "__main__":
    main()
