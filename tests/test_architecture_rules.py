"""The import rules of the design guide, all in this file: the engine's layers import only
downwards and never the app or Qt (import-linter contracts in pyproject.toml, checked here), the
plugins use only the public plugin API, NumPy, Numba, math and the few standard modules datasets
need, and the package installs under the single import name gradient_lab."""

import ast
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
GUI_MODULES = ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "qtpy", "pyqtgraph")
PLUGIN_ALLOWED = (
    "gradient_lab.engine.plugin_api",
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
    return sorted((ROOT / folder).rglob("*.py"))


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


def plugin_violations(path: Path) -> list[str]:
    found = []
    for line, module, names, _ in imports(path):
        if is_within(module, PLUGIN_ALLOWED):
            continue
        if names and all(is_within(f"{module}.{n}", PLUGIN_ALLOWED) for n in names):
            continue  # from importlib import resources; from engine import plugin_api
        found.append(f"{rel(path)}:{line} imports {module}")
    return found


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
    assert [m for m in found if not is_within(m, PLUGIN_ALLOWED)] == ["engine", "pyqtgraph", "."]


IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys
import gradient_lab.engine, gradient_lab.plugins
failed = {}
for package in (gradient_lab.engine, gradient_lab.plugins):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.endswith(".__main__"):
            continue  # runs the command line
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed[info.name] = f"{type(exc).__name__}: {exc}"
gui = sorted(m for m in sys.modules if m.split(".")[0] in GUI or m.startswith("gradient_lab.app"))
print(json.dumps({"failed": failed, "gui": gui}))
"""


def test_importing_engine_and_plugins_loads_no_qt():
    code = f"GUI = {GUI_MODULES!r}\n" + IMPORT_EVERYTHING
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failed"] == {}
    assert result["gui"] == []


def test_the_engines_layers_and_the_app_boundary_hold():
    """import-linter's contracts (pyproject.toml): layers import downwards only, no cycles between
    sibling modules, and the engine never imports the app, Qt or pyqtgraph."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    kept = re.search(r"Contracts: (\d+) kept, (\d+) broken", done.stdout)
    assert kept and int(kept.group(1)) >= 3 and kept.group(2) == "0", done.stdout


def test_every_package_folder_installs_under_gradient_lab():
    """Each folder with an __init__.py is listed in pyproject.toml as gradient_lab.<folder path>,
    so an installed copy has every module and no top-level engine, app or plugins."""
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]
    folders = {"engine", "plugins", "app", "assets"}
    expected = {
        "gradient_lab." + init.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for top in folders
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert set(config["packages"]) == expected
    assert config["package-dir"] == {f"gradient_lab.{top}": top for top in folders}


@pytest.mark.parametrize("folder", ["engine", "plugins", "app", "assets"])
def test_a_folder_imported_under_its_bare_name_says_which_name_to_use(folder):
    done = subprocess.run(
        [sys.executable, "-c", f"import {folder}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"write `import gradient_lab.{folder}`" in done.stderr.strip().splitlines()[-1]
