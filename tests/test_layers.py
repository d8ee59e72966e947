"""ml/ imports one way. The stage contract (pyproject.toml [tool.importlinter], checked by import-linter) and no
import cycle among ml's modules, both read by grimp from every import statement, inside functions too."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parent.parent


def import_cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each a cycle or several."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module) & modules:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return groups


def test_ml_has_no_import_cycle():
    graph = grimp.build_graph("ml")
    modules = set(graph.modules)
    assert len(modules) > 40  # every module was read, not an empty graph
    assert import_cycles(graph, modules) == []


def test_the_cycle_check_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.z")
    graph.add_import(importer="a.z", imported="a.x")
    assert import_cycles(graph, set(graph.modules)) == [["a.x", "a.y", "a.z"]]


def test_the_stage_contracts_hold():
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_a_stage_importing_a_later_one_breaks_the_contract(tmp_path):
    """The contract is live: a copy of ml/ where a data module imports the registry fails it."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(REPO / "ml", copy / "ml", ignore=shutil.ignore_patterns("__pycache__"))
    for package in ("orchestration", "serving"):
        shutil.copytree(REPO / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    windows = copy / "ml" / "data" / "windows.py"
    windows.write_text(windows.read_text() + "\n\ndef champion():\n    from ml.registry import champion_dir\n\n"
                       "    return champion_dir()\n")
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=copy,
                          capture_output=True, text=True, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done.stdout[-3000:]
    assert "ml.data.windows -> ml.registry" in done.stdout
