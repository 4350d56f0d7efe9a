"""The suite's own rules (tests/conftest.py): no test reads the user's plugins or writes into the
checkout, and no subprocess can hang a run."""

import ast
import os
from pathlib import Path

import numba.core.config
from hypothesis import settings

from gradient_lab.engine.loading.discovery import discover
from gradient_lab.engine.loading.registry import plugin_folders

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SUBPROCESS_CALLS = {"run", "call", "check_call", "check_output", "Popen"}


def test_the_users_plugin_folder_and_variable_are_never_read():
    folders = plugin_folders(None)
    assert len(folders) == 1 and folders[0].name.startswith("gradient-lab-no-dropins-")
    assert list(folders[0].iterdir()) == []
    assert all(r.source != "folder" for r in discover().records)


def test_caches_and_databases_live_outside_the_checkout():
    cache = Path(numba.core.config.CACHE_DIR).resolve()
    assert cache == Path(os.environ["NUMBA_CACHE_DIR"]).resolve()  # subprocesses inherit it
    assert not cache.is_relative_to(ROOT)
    assert settings().database is None
    assert not Path(os.environ["HYPOTHESIS_STORAGE_DIRECTORY"]).resolve().is_relative_to(ROOT)


def subprocess_calls_without_timeout(path: Path) -> list[tuple[int, str]]:
    """(line, function) of the `subprocess.X(...)` calls in a file that pass no timeout=
    (Popen may not be used at all: its waits are elsewhere)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner, name = node.func.value, node.func.attr
        if not (isinstance(owner, ast.Name) and owner.id == "subprocess"):
            continue
        has_timeout = any(k.arg == "timeout" for k in node.keywords)
        if name == "Popen" or (name in SUBPROCESS_CALLS and not has_timeout):
            found.append((node.lineno, name))
    return found


def test_every_subprocess_in_a_test_has_a_timeout():
    found = [
        f"{path.relative_to(ROOT)}:{line} subprocess.{name}"
        for path in sorted(TESTS.rglob("*.py"))
        if path != TESTS / "mutation" / "run.py"  # a command that runs the suite, not a test
        for line, name in subprocess_calls_without_timeout(path)
    ]
    assert found == []


def test_the_timeout_scan_sees_a_missing_timeout(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import subprocess\n"
        "subprocess.run(['true'], timeout=5)\n"
        "subprocess.run(['true'])\n"
        "subprocess.Popen(['true'])\n"
    )
    assert subprocess_calls_without_timeout(sample) == [(3, "run"), (4, "Popen")]
