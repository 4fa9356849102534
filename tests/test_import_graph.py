"""No import loops inside the appliance package: each module's imports of other appliance modules, read
with `ast` (at the top and inside functions; `if TYPE_CHECKING:` blocks left out), form no cycle.

A loop that only works because one side imports inside a function is still a loop: the two modules know
each other's insides, and the order they are first imported in decides whether it breaks. Imports by a
computed name (cli's importlib.import_module of each command) are not seen.
"""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

from appliance.paths import REPO_ROOT

PACKAGE = "appliance"

Edges = dict[str, dict[str, int]]  # module -> {imported module: first line}

def module_files(root: Path = REPO_ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (a package is its __init__.py)."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom node, skipping the bodies of `if TYPE_CHECKING:` (not their else)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    base = parts[:len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> dict[str, int]:
    """The package's modules that `module` imports, with the line of the first import of each.

    `from a.b import c` names the module a.b.c when there is one (a submodule), else a.b (a name in it).
    """
    found: dict[str, int] = {}
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = _absolute(module, path.name == "__init__.py", node)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            if target in known and target != module:
                found[target] = min(found.get(target, node.lineno), node.lineno)
    return found


def import_graph(root: Path = REPO_ROOT) -> tuple[Edges, dict[str, Path]]:
    files = module_files(root)
    known = set(files)
    return {name: imports_of(name, path, known) for name, path in files.items()}, files


def find_cycles(graph: dict[str, dict[str, int]] | dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, as [a, b, ..., a]; [] for none.

    Tarjan's algorithm, without recursion; then a shortest way back to the component's first node.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    components.append(sorted(component))
    return [_cycle_through(graph, component) for component in components]


def _cycle_through(graph, component: list[str]) -> list[str]:
    """The shortest path from the component's first node back to itself, inside the component."""
    first, members = component[0], set(component)
    came_from: dict[str, str] = {}
    frontier = [first]
    while frontier:
        next_frontier = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == first:
                    path = [node]
                    while path[-1] != first:
                        path.append(came_from[path[-1]])
                    return [first, *reversed(path[:-1]), first] if node != first else [first, first]
                if child in members and child not in came_from:
                    came_from[child] = node
                    next_frontier.append(child)
        frontier = next_frontier
    raise AssertionError(f"no cycle through {first} in its own component")  # Tarjan guarantees one


def describe(cycle: list[str], graph: Edges, files: dict[str, Path], root: Path = REPO_ROOT) -> str:
    """The loop, then each step as file:line imports module."""
    steps = [f"{files[a].relative_to(root)}:{graph[a][b]} imports {b}" for a, b in pairwise(cycle)]
    return " -> ".join(cycle) + "\n    " + "\n    ".join(steps)


def test_the_appliance_package_has_no_import_cycle():
    graph, files = import_graph()
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100, "the graph reader found too little"
    cycles = find_cycles(graph)
    assert not cycles, ("import loops (make one side stop importing the other, e.g. move what both need "
                        "into a third module):\n" + "\n".join(describe(c, graph, files) for c in cycles))


def test_the_cycle_finder_finds_loops_and_only_loops():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"a"}}) == [["a", "a"]]
    two = find_cycles({"a": {"b"}, "b": {"a"}, "x": {"y"}, "y": {"z"}, "z": {"y"}})
    assert sorted(two) == [["a", "b", "a"], ["y", "z", "y"]]
    # a component with a shortcut: the shortest loop through its first node is named
    assert find_cycles({"a": {"b", "d"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "d", "a"]]


def test_the_graph_reader_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    for name in ("__init__.py", "sub/__init__.py", "sub/leaf.py", "sub/other.py", "late.py", "typed.py"):
        (pkg / name).write_text("")
    (pkg / "top.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import os\n"
        "from appliance.sub import leaf, NAME\n"
        "from .sub.other import thing\n"
        "if TYPE_CHECKING:\n"
        "    from appliance import typed\n"
        "def f():\n"
        "    import appliance.late\n")
    (pkg / "sub" / "leaf.py").write_text("from . import other\nfrom .. import top\n")
    graph, files = import_graph(tmp_path)
    assert graph["appliance.top"] == {"appliance.sub.leaf": 3, "appliance.sub": 3, "appliance.sub.other": 4,
                                      "appliance.late": 8}
    assert graph["appliance.sub.leaf"] == {"appliance.sub.other": 1, "appliance.top": 2}
    assert find_cycles(graph) == [["appliance.sub.leaf", "appliance.top", "appliance.sub.leaf"]]
    assert "appliance/top.py:3 imports appliance.sub.leaf" in describe(
        ["appliance.top", "appliance.sub.leaf", "appliance.top"], graph, files, tmp_path)
