"""The floors of the house hold: no module imports a floor above its own, and no file cycle.

The floors are the design's (docs/architecture.md), from the ground up. A module may import its
own floor and any floor below; every import counts, including those inside functions and under
``TYPE_CHECKING``, since a type-only import still ties the lower floor to the upper one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import bastion

SRC = Path(bastion.__file__).parent

FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "ground",
        (
            "bastion.errors",
            "bastion.clock",
            "bastion.events",
            "bastion.config",
            "bastion.agent",
            "bastion.market",
            "bastion.messages",
            "bastion.status",
            "bastion.sensitive",
            "bastion.lazy_names",
            "bastion.span_ids",
        ),
    ),
    ("records", ("bastion.store", "bastion.trace", "bastion.telemetry")),
    ("calls", ("bastion.resilience",)),
    ("adapters", ("bastion.exchange", "bastion.llm", "bastion.tools", "bastion.notify")),
    ("simulators", ("bastion.simulators",)),
    ("guard", ("bastion.guard",)),
    ("runtime", ("bastion.runtime",)),
    ("workloads", ("bastion.agents", "bastion.research")),
    ("ops", ("bastion.ops",)),
    ("top", ("bastion.build", "bastion.runner", "bastion.api", "bastion.cli", "bastion")),
)


def floor_of(module: str) -> int:
    """The floor index of ``module``: its longest matching prefix in :data:`FLOORS`."""
    best, best_len = -1, -1
    for index, (_, prefixes) in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best < 0:
        raise AssertionError(f"{module} is on no floor: add it to FLOORS and the map")
    return best


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    """The project modules ``path`` imports, resolved to files (``from a import b`` → ``a.b``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {name for name in found if name in known}


def graph(root: Path) -> dict[str, set[str]]:
    """Every module under ``root`` and the project modules it imports."""
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(paths)
    return {name: imports_of(path, name, known) - {name} for name, path in paths.items()}


def upward(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """``a -> b`` for every import of a higher floor, with both floors named."""
    found = []
    for source, targets in edges.items():
        for target in targets:
            if floor_of(target) > floor_of(source):
                found.append(
                    f"{source} ({FLOORS[floor_of(source)][0]}) -> "
                    f"{target} ({FLOORS[floor_of(target)][0]})"
                )
    return sorted(found)


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_no_module_imports_a_floor_above_its_own() -> None:
    """Vocabulary at the bottom, wiring at the top: every import runs down or sideways."""
    assert upward(graph(SRC)) == []


def test_no_two_files_import_each_other() -> None:
    """No import cycle between files, however long."""
    assert cycles(graph(SRC)) == []


def test_every_module_is_on_a_floor() -> None:
    """A new package must be placed on a floor (and on the map) before it can land."""
    for module in graph(SRC):
        floor_of(module)


@pytest.fixture
def house(tmp_path: Path) -> Path:
    root = tmp_path / "bastion"
    (root / "guard").mkdir(parents=True)
    (root / "runtime").mkdir()
    for init in (root, root / "guard", root / "runtime"):
        (init / "__init__.py").write_text("")
    (root / "errors.py").write_text("")
    (root / "runtime" / "loop.py").write_text("from bastion.guard import risk\n")
    return root


def test_the_check_catches_an_upward_import(house: Path) -> None:
    """The checker is not vacuous: guard importing runtime (even lazily) is reported."""
    (house / "guard" / "risk.py").write_text(
        "from bastion import errors\n\ndef f():\n    from bastion.runtime.loop import x\n"
    )
    assert upward(graph(house)) == ["bastion.guard.risk (guard) -> bastion.runtime.loop (runtime)"]


def test_the_check_catches_a_cycle(house: Path) -> None:
    """Two files of one floor importing each other are a cycle."""
    (house / "guard" / "risk.py").write_text("from . import halt\n")
    (house / "guard" / "halt.py").write_text("from bastion.guard.risk import review\n")
    assert cycles(graph(house)) == [["bastion.guard.halt", "bastion.guard.risk"]]
