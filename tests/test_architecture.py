"""The layers of docs/architecture.md hold.

* import-linter's contracts in pyproject.toml ([tool.importlinter]): each layer imports only the
  layers below it (common < random < executors < initializers < registry < torch | jax | keras <
  doctor | artifact < cli; siblings do not import each other), and the core never imports a framework;
  a copy of the package with one upward import breaks the contract, so the check can fail;
* no module below the CLI imports the root package ``weightinit`` (it imports everything);
* the import graph, function-local and ``TYPE_CHECKING`` imports included, has no cycle: a lazy
  import cannot hide one;
* the core's function-local imports are only of optional third-party packages (never a lazy
  import of a weightinit module).

The graph is grimp's (import-linter's engine), built from the source without importing it.
"""

from __future__ import annotations

import ast
import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "weightinit"
CORE = ("common", "random", "executors/reference.py", "executors/compiled.py", "initializers", "registry")
# Optional dependencies a core function may import when it needs them (scipy: window functions, erf).
CORE_LAZY_THIRD_PARTY = {"scipy"}

_LINT = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
)


def _lint(src_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src_dir), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", _LINT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("weightinit", cache_dir=None)


def test_import_linter_contracts_are_kept():
    proc = _lint(ROOT / "src")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "2 kept, 0 broken" in proc.stdout, proc.stdout[-3000:]


def test_import_linter_contracts_can_fail(tmp_path):
    """A copy of the package where the contract layer imports the registry (an upward import) fails."""
    copy = tmp_path / "weightinit"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "_core"))
    errors = copy / "common" / "errors.py"
    errors.write_text(
        errors.read_text() + "\n\ndef _upward():\n    from weightinit.registry.api import get\n\n    return get\n"
    )
    proc = _lint(tmp_path)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "weightinit.common is not allowed to import weightinit.registry" in proc.stdout, proc.stdout[-3000:]


def test_only_the_cli_imports_the_root_package(graph):
    importers = graph.find_modules_that_directly_import("weightinit")
    bad = sorted(m for m in importers if not (m == "weightinit.__main__" or m.startswith("weightinit.cli")))
    details = {m: [d["line_number"] for d in graph.get_import_details(importer=m, imported="weightinit")] for m in bad}
    assert bad == [], f"import the defining module instead of the root package: {details}"


# Imports that close a cycle and are accepted, each with its reason.  Keep this list short: a new
# entry needs a reason other than "it avoids an import error" (fix the dependency direction instead).
_ACCEPTED_CYCLE_EDGES = {
    # ``from weightinit.executors import _core_ext`` loads the C extension (not a Python module): grimp
    # records it as an import of the package that defines it.
    ("weightinit.executors.compiled", "weightinit.executors"): "the compiled extension lives in the package",
    # fingerprint(model, recipe, seed) loads the torch side on request (it imports torch); the
    # torch side builds on fingerprint's digests.  Cleaner: dispatch from a module above both.
    ("weightinit.artifact.fingerprint", "weightinit.artifact._torch"): "lazy torch backend of fingerprint()",
}


def test_no_import_cycles(graph):
    cycles = []
    for m in sorted(graph.modules):
        if m == "weightinit":
            continue
        for i in sorted(graph.find_modules_directly_imported_by(m)):
            if i == "weightinit" or (m, i) in _ACCEPTED_CYCLE_EDGES:
                continue
            back = graph.find_shortest_chain(importer=i, imported=m)
            if back and not any(e in _ACCEPTED_CYCLE_EDGES for e in itertools.pairwise(back)):
                cycles.append(f"{m} -> {' -> '.join(back)}")
    assert cycles == []


def _function_local_imports(path: Path):
    """(line, imported module) of each import inside a function or under ``if TYPE_CHECKING``."""
    found = []

    def walk(node, hidden):
        for child in ast.iter_child_nodes(node):
            inner = hidden or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = True
            if hidden and isinstance(child, ast.Import):
                found.extend((child.lineno, a.name) for a in child.names)
            elif hidden and isinstance(child, ast.ImportFrom):
                found.append((child.lineno, "." * child.level + (child.module or "")))
            walk(child, inner)

    walk(ast.parse(path.read_text()), False)
    return found


def _core_files():
    for part in CORE:
        p = SRC / part
        yield from sorted(p.rglob("*.py")) if p.is_dir() else [p]


def test_core_function_local_imports_are_only_optional_dependencies():
    files = list(_core_files())
    assert len(files) > 20
    bad = [
        f"{f.relative_to(ROOT)}:{line}: {mod}"
        for f in files
        for line, mod in _function_local_imports(f)
        if mod.split(".")[0] not in CORE_LAZY_THIRD_PARTY
    ]
    assert bad == [], "import at the top (a lazy import of weightinit in the core hides a cycle or a layer break)"


def test_function_local_import_finder_sees_hidden_imports(tmp_path):
    p = tmp_path / "m.py"
    p.write_text(
        "from typing import TYPE_CHECKING\nimport os\nif TYPE_CHECKING:\n    import a.b\n"
        "def f():\n    from weightinit.registry import api\n    return api\n"
    )
    assert _function_local_imports(p) == [(4, "a.b"), (6, "weightinit.registry")]


# ------------------------------------------------------------------------------------- docs/architecture.md

_DOC = ROOT / "docs" / "architecture.md"
_DOTTED = re.compile(r"(?<![\w.])weightinit(?:\.[A-Za-z_]\w*)+")
_PATH = re.compile(r"`([\w.-]+/[\w./-]+\.(?:py|md|json|toml|h|c))`")  # paths with a directory


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _module_file(dotted: str) -> Path | None:
    base = ROOT / "src" / Path(*dotted.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _missing_in_doc(text: str) -> list[str]:
    """The dotted weightinit names and file paths of ``text`` that do not exist in the tree."""
    missing = []
    for dotted in sorted(set(_DOTTED.findall(text))):
        parts = dotted.split(".")
        # The longest prefix that is a module; at most one attribute may follow, defined at its top level.
        for k in range(len(parts), 0, -1):
            f = _module_file(".".join(parts[:k]))
            if f is not None:
                break
        rest = parts[k:]
        if f is None or len(rest) > 1 or (rest and rest[0] not in _top_level_names(f)):
            missing.append(dotted)
    for rel in sorted(set(_PATH.findall(text))):
        if not ((ROOT / rel).exists() or (ROOT / "src" / rel).exists()):
            missing.append(rel)
    return missing


def test_architecture_map_names_only_modules_that_exist():
    text = _DOC.read_text()
    assert len(set(_DOTTED.findall(text))) > 40  # the map names the modules it describes
    assert _missing_in_doc(text) == []


def test_architecture_map_check_can_fail():
    fake = "`weightinit.random.nonexistent`, `weightinit.common.dtypes.no_such_function`, `tests/nowhere.py`"
    assert _missing_in_doc(fake) == [
        "weightinit.common.dtypes.no_such_function",
        "weightinit.random.nonexistent",
        "tests/nowhere.py",
    ]
    assert _missing_in_doc("`weightinit.common.dtypes.real_dtype_of`, `weightinit.random.sampling`") == []


def test_readme_links_the_architecture_map():
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text()
