"""The package's shape holds: no import circles anywhere, and no layer imports a layer above it.

Every ``import`` is counted, wherever it is (module level, inside a function, under
``TYPE_CHECKING``): a circle hidden in a function is still a circle. The layers are the ones
``functions/spotline/__init__.py`` draws; the container may import only the config schema and
the metric names (the only control-plane code its image copies); the container toolkit, which
any image copies alone, imports nothing of ours but itself and nothing beyond the standard library
(torch only inside the functions of ``torch_state``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "spotline": ROOT / "functions" / "spotline",
    "handlers": ROOT / "functions" / "handlers",
    "spotline_container": ROOT / "container" / "spotline_container",
    "spotline_toolkit": ROOT / "container" / "spotline_toolkit",
    "spotline_local": ROOT / "local" / "spotline_local",
}
# spotline's folders, bottom to top; folders of one rank may not import each other.
RANKS = {
    # The metric lines the container prints: below the schema, which asks which of them a config's
    # run can produce (a promote gate or a tuning objective must be one of them).
    "spotline.metric_names": -1,
    "spotline.config": 0,
    "spotline.domain": 1,
    "spotline.adapters": 2,
    # Pages are pure rendering (inputs -> HTML): above the domain rules they word, beside the
    # adapters so they can reach no AWS, below the ledger and the flows that read their inputs.
    "spotline.reports": 2,
    "spotline.ledger": 3,
    "spotline.runs": 4,
    # Tuning runs: the tuner runs the trials, spotline records them and settles the run; below
    # training, whose launcher turns a config with a tuning: section into one.
    "spotline.tuning": 5,
    "spotline.training": 6,
    "spotline.inference": 6,
    "spotline.wiring": 7,
    # The notebook path launches and follows a run from outside the functions, on their wiring.
    "spotline.notebook": 8,
}
CONTAINER_MAY_IMPORT = ("spotline.config", "spotline.metric_names")
TOOLKIT = "spotline_toolkit"

Graph = Mapping[str, set[str]]


def module_names() -> dict[str, Path]:
    modules = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """``{module: modules of ours it imports}``; ``from pkg import name`` names a module when it is one."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                known = target
                while known and known not in modules:
                    known = known.rpartition(".")[0]
                if known and known != name:
                    edges.add(known)
        graph[name] = edges
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> str | None:
    return next((layer for layer in RANKS if module == layer or module.startswith(layer + ".")), None)


def layer_violations(graph: Graph) -> list[str]:
    """Imports that go up a layer, across sibling layers, or out of what the container may use."""
    problems = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if module.startswith(TOOLKIT):
                if not target.startswith(TOOLKIT):
                    problems.append(f"{module} -> {target}: the toolkit is copied alone into any image")
                continue
            if module.startswith("spotline_container"):
                if target.startswith("spotline.") and not target.startswith(CONTAINER_MAY_IMPORT):
                    problems.append(
                        f"{module} -> {target}: the container copies only config/ and metric_names"
                    )
                continue
            mine, theirs = layer_of(module), layer_of(target)
            if mine is None or theirs is None or mine == theirs:
                continue
            if RANKS[theirs] > RANKS[mine]:
                problems.append(f"{module} -> {target}: {mine} may not import the layer above it ({theirs})")
            elif RANKS[theirs] == RANKS[mine]:
                problems.append(f"{module} -> {target}: sibling layers {mine} and {theirs}")
    return problems


def test_no_import_circles_anywhere() -> None:
    assert cycles(import_graph(module_names())) == []


def test_no_layer_imports_a_layer_above_it_or_a_sibling() -> None:
    assert layer_violations(import_graph(module_names())) == []


def test_every_module_of_spotline_belongs_to_a_layer() -> None:
    outside = [m for m in module_names() if m.startswith("spotline.") and layer_of(m) is None]
    assert outside == []


def test_nothing_but_the_adapters_and_the_ledger_imports_boto3() -> None:
    holders = set()
    for name, path in module_names().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: Iterable[str] = ()
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] in ("boto3", "botocore") for n in names) and name.startswith("spotline."):
                holders.add(layer_of(name))
    assert holders <= {"spotline.adapters", "spotline.ledger"}


@pytest.mark.parametrize(
    ("graph", "expected_cycles", "expected_violations"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]], 0),
        ({"spotline.domain.x": {"spotline.runs.y"}, "spotline.runs.y": set()}, [], 1),
        ({"spotline.training.x": {"spotline.inference.y"}, "spotline.inference.y": set()}, [], 1),
        ({"spotline_container.x": {"spotline.domain.y"}, "spotline.domain.y": set()}, [], 1),
        ({"spotline.runs.x": {"spotline.domain.y"}, "spotline.domain.y": set()}, [], 0),
        ({"spotline_toolkit.x": {"spotline.metric_names"}, "spotline.metric_names": set()}, [], 1),
        ({"spotline_toolkit.x": {"spotline_container.y"}, "spotline_container.y": set()}, [], 1),
        ({"spotline_container.x": {"spotline_toolkit.y"}, "spotline_toolkit.y": set()}, [], 0),
    ],
)
def test_the_checks_see_what_they_are_for(
    graph: dict[str, set[str]], expected_cycles: list[list[str]], expected_violations: int
) -> None:
    assert cycles(graph) == expected_cycles
    assert len(layer_violations(graph)) == expected_violations


def test_the_toolkit_needs_nothing_beyond_the_standard_library() -> None:
    """An image of any framework copies it alone: module-level imports are the standard library's
    or the toolkit's own; torch is imported only inside the functions that use it."""
    import sys

    outside = {}
    for path in SOURCES[TOOLKIT].rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for top in (n.split(".")[0] for n in names):
                if top not in sys.stdlib_module_names and top not in (TOOLKIT, "__future__"):
                    outside[path.name] = top
    assert outside == {}
