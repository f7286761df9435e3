"""The layers of docs/ARCHITECTURE.md hold: every import, lazy ones included, points down.

shared language (``recoworld.*``) < simulators, agents (never each other) < envs <
applications (``recoworld.apps``, ``recoworld.conf`` and the package root's lazy names).
Each module's imports are read from its source (``ast``), so an import inside a function
counts as much as one at the top. No module is exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: repository folder -> the package it is installed as (pyproject's package-dir).
FOLDERS = {"recoworld": "recoworld", "simulators": "recoworld.simulators", "agents": "recoworld.agents",
           "envs": "recoworld.envs", "conf": "recoworld.conf"}
SHARED, USERS_OR_AGENTS, ENVS, APPS = range(4)


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


MODULES = modules()


def layer(module: str) -> tuple[int, str]:
    """``(rank, side)`` of a module; the two sides of rank 1 must not import each other."""
    parts = module.split(".")
    if module == "recoworld" or parts[1] in ("apps", "conf"):
        return APPS, "apps"
    if parts[1] in ("simulators", "agents"):
        return USERS_OR_AGENTS, parts[1]
    if parts[1] == "envs":
        return ENVS, "envs"
    return SHARED, "shared"


def imported(module: str, path: Path) -> list[tuple[str, int]]:
    """The RecoWorld modules ``module`` imports, each the longest known prefix of the name."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
            names += [(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base, node.lineno)
                      for alias in node.names]
    found = []
    for name, line in names:
        if name.split(".")[0] != "recoworld":
            continue
        while name not in MODULES and "." in name:
            name = name.rpartition(".")[0]
        found.append((name, line))
    return found


GRAPH = {module: imported(module, path) for module, path in MODULES.items()}


def test_the_scan_sees_the_package():
    assert {"recoworld.types", "recoworld.simulators.statistical", "recoworld.agents.base",
            "recoworld.envs.slate", "recoworld.apps.cli"} <= set(MODULES)
    assert ("recoworld.catalog", ) in {(m,) for m, _ in GRAPH["recoworld.envs.world"]}


def test_every_import_points_down():
    wrong = []
    for module, targets in GRAPH.items():
        (rank, side) = layer(module)
        for target, line in targets:
            (target_rank, target_side) = layer(target)
            if target_rank > rank or (target_rank == rank == USERS_OR_AGENTS and target_side != side):
                wrong.append(f"{MODULES[module].relative_to(REPO)}:{line} imports {target} ({target_side} "
                             f"is above {side})" if target_rank > rank else
                             f"{MODULES[module].relative_to(REPO)}:{line} imports {target} ({side} and "
                             f"{target_side} never import each other)")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_cycle():
    # A package's __init__ importing its own submodules is how packages export; a cycle is
    # anything else that comes back to where it started.
    edges = {m: {t for t, _ in targets if t != m and not m.startswith(t + ".") and not t.startswith(m + ".")}
             for m, targets in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module):
        state[module] = 1
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("module", ["recoworld.types", "recoworld.agents.base"])
def test_a_known_violation_would_be_caught(module, tmp_path, monkeypatch):
    # The check itself can fail: an upward import planted in a copy of a module is reported.
    (rank, side) = layer(module)
    fake = tmp_path / "fake.py"
    fake.write_text(MODULES[module].read_text() + "\n\ndef late():\n    from recoworld.apps.cli import main\n")
    targets = dict(imported(module, fake))
    assert "recoworld.apps.cli" in targets
    assert layer("recoworld.apps.cli")[0] > rank
