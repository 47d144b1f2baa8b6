"""The import graph of tlsweep's own modules: its arrows, its cycles and its number of levels.

    python tools/import_graph.py                 modules, module-level imports only
    python tools/import_graph.py --lazy          imports inside functions count too
    python tools/import_graph.py --packages      one node per subpackage (or top-level module)

A level is a step in the longest chain of imports: a module that imports none of ours is on
level 1, one that imports only level-1 modules on level 2, and so on. Imports under
``TYPE_CHECKING`` count as module-level ones: they never run, but a type named there is a
dependency all the same, and a circle hidden there is still a circle. A module's import of its
own package is not an arrow: the package's ``__init__`` has already run by then.
"""

from __future__ import annotations

import argparse
import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "tlsweep"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, package: str, lazy: bool) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import) and (lazy or not nested):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and (lazy or not nested):
                base = child.module or ""
                if child.level:  # relative: resolve against this module's package
                    anchor = package.split(".")[:len(package.split(".")) + 1 - child.level]
                    base = ".".join([*anchor, base] if base else anchor)
                found.update([base, *(f"{base}.{alias.name}" for alias in child.names)])
            visit(child, inner)

    visit(tree, False)
    return found


def graph(lazy: bool) -> dict[str, set[str]]:
    modules = {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = _imports(ast.parse(path.read_text()), package, lazy)
        # A module inside a package runs after that package's __init__, so naming its own
        # package (``from tlsweep.cli import _launch``) is not an arrow.
        edges[name] = {m for m in imported if m in modules and m != name and m != package}
    return edges


def by_package(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    def group(name: str) -> str:
        return ".".join(name.split(".")[:2])

    packed: dict[str, set[str]] = {}
    for name, targets in edges.items():
        packed.setdefault(group(name), set()).update(
            group(t) for t in targets if group(t) != group(name))
    return packed


def levels(edges: dict[str, set[str]]) -> dict[str, int]:
    level: dict[str, int] = {}
    for name in TopologicalSorter(edges).static_order():
        level[name] = 1 + max((level[t] for t in edges[name]), default=0)
    return level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lazy", action="store_true", help="count imports inside functions")
    parser.add_argument("--packages", action="store_true", help="one node per subpackage")
    args = parser.parse_args()
    edges = graph(args.lazy)
    if args.packages:
        edges = by_package(edges)
    try:
        level = levels(edges)
    except CycleError as cycle:
        raise SystemExit(f"cycle: {' -> '.join(cycle.args[1])}") from None
    for name in sorted(edges, key=lambda n: (level[n], n)):
        print(f"{level[name]:>2}  {name} -> {', '.join(sorted(edges[name])) or '-'}")
    print(f"{len(edges)} nodes, {sum(map(len, edges.values()))} arrows, no cycles, "
          f"{max(level.values())} levels")


if __name__ == "__main__":
    main()
