"""The import rules of the design guide: engine/ and plugins/ stay free of Qt, and plugins/ use
only the public plugin API, NumPy, Numba, math and the few standard modules datasets need."""

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUI_MODULES = ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "qtpy", "pyqtgraph", "app")
# The command line opens the window when asked; it may do so with an import inside the function
# that launches it (never at module level), so importing the engine still pulls in no Qt.
LAZY_LAUNCHERS = {("engine/cli.py", "app.main")}
PLUGIN_ALLOWED = (
    "engine.plugin_api",
    "numpy",
    "numba",
    "math",
    "__future__",
    # needed by datasets (built-in files and the user's CSV):
    "csv",
    "functools",
    "gzip",
    "importlib.resources",
    "io",
    "pathlib",
    "typing",
)


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).glob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def imports(path: Path) -> Iterator[tuple[int, str, list[str], bool]]:
    """(line, module, names imported from it, at module level) for every import statement."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, [], id(node) in top
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            yield node.lineno, module, [a.name for a in node.names], id(node) in top


def is_within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def gui_violations(path: Path) -> list[str]:
    found = []
    for line, module, names, at_top in imports(path):
        targets = [module] + [f"{module}.{n}" for n in names]
        if not any(is_within(t, GUI_MODULES) for t in targets):
            continue
        if not at_top and (rel(path), module) in LAZY_LAUNCHERS:
            continue
        found.append(f"{rel(path)}:{line} imports {module}")
    return found


def plugin_violations(path: Path) -> list[str]:
    found = []
    for line, module, names, _ in imports(path):
        if is_within(module, PLUGIN_ALLOWED):
            continue
        if names and all(is_within(f"{module}.{n}", PLUGIN_ALLOWED) for n in names):
            continue  # from importlib import resources; from engine import plugin_api
        found.append(f"{rel(path)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("path", sources("engine") + sources("plugins"), ids=rel)
def test_no_gui_imports_in_engine_or_plugins(path):
    assert gui_violations(path) == []


@pytest.mark.parametrize("path", sources("plugins"), ids=rel)
def test_plugins_import_only_the_public_api(path):
    assert plugin_violations(path) == []


def test_the_rules_see_imports_anywhere(tmp_path):
    """The scanner finds imports inside functions and relative ones, not only at the top."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import numpy as np\n"
        "from engine import kernels\n"
        "def view():\n"
        "    import pyqtgraph\n"
        "    from . import helpers\n"
    )
    found = [module for _, module, _, _ in imports(sample)]
    assert found == ["numpy", "engine", "pyqtgraph", "."]
    assert is_within("PySide6.QtCore", GUI_MODULES) and not is_within("appdirs", GUI_MODULES)


IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys
import engine, plugins
failed = {}
for package in (engine, plugins):
    for info in pkgutil.iter_modules(package.__path__):
        name = f"{package.__name__}.{info.name}"
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
gui = sorted(m for m in sys.modules if m.split(".")[0] in GUI)
print(json.dumps({"failed": failed, "gui": gui}))
"""


def test_importing_engine_and_plugins_loads_no_qt():
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    code = f"GUI = {GUI_MODULES!r}\n" + IMPORT_EVERYTHING
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failed"] == {}
    assert result["gui"] == []
