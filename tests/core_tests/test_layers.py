"""The house's floors hold: import-linter's contracts (pyproject.toml) pass on the tree, fail when a
deliberate upward import is added, and no module takes part in an import cycle."""

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]

# Run import-linter on the package found at the working directory (not the installed one: an editable
# install's finder would otherwise resolve `workbench` to this checkout whatever the path says).
LINT = """
import sys
sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]
sys.path.insert(0, '.')
from importlinter.cli import lint_imports
sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))
"""


def _lint(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LINT], cwd=folder, capture_output=True, text=True, timeout=120)


@pytest.fixture
def tree_copy(tmp_path):
    shutil.copytree(ROOT / "workbench", tmp_path / "workbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_contracts_kept():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("core/params.py", "from workbench.engine import runner", "Floors import downwards only"),
    ("models/zoo.py", "from workbench.methods import get_method", "Floors import downwards only"),
    ("data/tiny.py", "from workbench.models import zoo", "Floors import downwards only"),  # siblings
    ("methods/dns.py", "import PySide6", "Qt only in the app"),
])
def test_contracts_catch_a_deliberate_break(tree_copy, module, line, contract):
    path = tree_copy / "workbench" / module
    path.write_text(path.read_text() + f"\n{line}  # deliberate break\n")
    proc = _lint(tree_copy)
    assert proc.returncode != 0
    assert f"{contract} BROKEN" in proc.stdout


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        component.append(m)
                        if m == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def test_no_module_is_in_an_import_cycle():
    graph = grimp.build_graph("workbench", cache_dir=None)
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    graph = grimp.build_graph("workbench", cache_dir=None)
    graph.add_import(importer="workbench.core.errors", imported="workbench.cli")
    found = _cycles(graph)
    assert any("workbench.core.errors" in c and "workbench.cli" in c for c in found)
