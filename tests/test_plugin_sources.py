"""Plugins from the three sources: drop-in folder, installed package, built-ins; and failures."""

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradient_lab.engine.loading.conformance import check_name, check_path, check_plugin
from gradient_lab.engine.loading.discovery import discover
from gradient_lab.engine.loading.registry import ENV_PLUGINS_DIR

HERE = Path(__file__).parent
DROPINS = HERE / "dropins"
BROKEN = HERE / "dropins_broken"
SAMPLE_DIST = "gradient-lab-sample-plugins"
ROOT = HERE.parent


def builtin_keys() -> set[tuple[str, str]]:
    return {(r.kind, r.name) for r in discover(safe_mode=True).ok_records()}


def ok_keys(registry) -> set[tuple[str, str]]:
    return {(r.kind, r.name) for r in registry.ok_records()}


def failed(registry) -> dict[str, str]:
    return {r.name: r.error for r in registry.failures()}


def test_dropin_folder_plugin_loads_and_passes():
    registry = discover(plugins_dir=DROPINS)
    record = registry.record("activation", "softsign")
    assert record.source == "folder"
    assert record.origin == str(DROPINS / "good_softsign.py")
    report = check_plugin(record.cls, registry)
    assert report.passed, report.describe(only_failures=True)


def test_check_path_on_a_dropin_file():
    [(record, report)] = check_path(DROPINS / "good_softsign.py")
    assert (record.kind, record.name, record.source) == ("activation", "softsign", "folder")
    assert report.passed, report.describe(only_failures=True)


CHECK_IN_NEW_PROCESS = """
import sys
from gradient_lab.engine.loading.conformance import check_path
[(record, report)] = check_path(sys.argv[1])
print(report.describe(only_failures=True))
sys.exit(0 if report.passed else 1)
"""


def test_dropin_compile_cache_survives_a_restart(tmp_path):
    """The second process loads the first one's disk-cached cfuncs (string hashing differs)."""
    plugin = tmp_path / "good_softsign.py"
    shutil.copy(DROPINS / "good_softsign.py", plugin)
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
        done = subprocess.run(
            [sys.executable, "-c", CHECK_IN_NEW_PROCESS, str(plugin)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"run with PYTHONHASHSEED={seed}: {done.stdout}{done.stderr}"


def test_package_plugin_comes_from_its_distribution():
    try:
        importlib.metadata.distribution(SAMPLE_DIST)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{SAMPLE_DIST} is not installed (pip install ./tests/sample_plugin_pkg)")
    registry = discover(plugins_dir=DROPINS)
    record = registry.record("activation", "sample_swish_beta")
    assert record.source == f"package:{SAMPLE_DIST}"
    assert record.version == "0.1.0"
    report = check_plugin(record.cls, registry)
    assert report.passed, report.describe(only_failures=True)
    assert "sample_swish_beta" not in discover(safe_mode=True).names("activation")


def test_broken_dropins_are_recorded_and_the_rest_still_loads():
    registry = discover(plugins_dir=BROKEN)
    errors = failed(registry)
    assert set(errors) == {
        "broken_import",
        "from_the_future",
        "default_out_of_range",
        "wrong_slope",
    }
    assert "RuntimeError: this drop-in fails on purpose" in errors["broken_import"]
    assert "api_version 99" in errors["from_the_future"]
    assert "default of parameter 'slope'" in errors["default_out_of_range"]
    assert all(error and "\n" not in error for error in errors.values())
    assert all(r.source == "folder" for r in registry.failures())
    loaded = ok_keys(registry)
    assert ("activation", "fine_cube") in loaded
    assert builtin_keys() <= loaded


def test_check_path_reports_import_and_contract_failures():
    [(record, report)] = check_path(BROKEN / "broken_import.py")
    assert record.status == "failed"
    assert [(i.name, i.passed) for i in report.items] == [("import", False)]
    results = check_path(BROKEN / "broken_contract.py")
    assert {r.name for r, _ in results} == {"from_the_future", "default_out_of_range"}
    assert not any(report.passed for _, report in results)
    [(record, report)] = check_path(BROKEN / "fine_cube.py")
    assert report.passed, report.describe(only_failures=True)


def test_check_name_finds_every_kind_with_that_name():
    registry = discover(safe_mode=True)
    results = check_name("mse", registry)
    assert {record.kind for record, _ in results} == {"loss", "metric"}
    assert all(report.passed for _, report in results)
    assert check_name("no_such_plugin", registry) == []


def test_safe_mode_loads_builtins_only():
    registry = discover(plugins_dir=DROPINS, safe_mode=True)
    assert registry.records
    assert {r.source for r in registry.records} == {"builtin"}
    assert "softsign" not in registry.names("activation")


def test_name_clash_keeps_the_builtin(tmp_path):
    (tmp_path / "my_tanh.py").write_text(
        "from gradient_lab.engine.plugin_api import Activation\n\n\n"
        "class MyTanh(Activation):\n"
        '    name = "tanh"\n'
        '    formula = "f(x) = x"\n'
        '    teaching = "Pretends to be tanh."\n\n'
        "    @staticmethod\n"
        "    def f(x, a, b):\n"
        "        return x\n\n"
        "    @staticmethod\n"
        "    def df(x, y, a, b):\n"
        "        return 1.0\n\n\n"
        "PLUGINS = [MyTanh]\n"
    )
    registry = discover(plugins_dir=tmp_path)
    clash = [r for r in registry.failures() if r.name == "tanh"]
    assert len(clash) == 1 and clash[0].error.startswith("name clash")
    assert clash[0].source == "folder"
    assert registry.record("activation", "tanh").source == "builtin"
    results = check_name("tanh", registry)
    assert [(i.name, i.passed) for i in results[-1][1].items] == [("name clash", False)]


def test_environment_variable_names_the_folder(monkeypatch):
    monkeypatch.setenv(ENV_PLUGINS_DIR, str(DROPINS))
    registry = discover()
    assert registry.record("activation", "softsign").source == "folder"
    monkeypatch.setenv(ENV_PLUGINS_DIR, str(BROKEN))
    assert "softsign" not in discover().names("activation")
    assert "fine_cube" in discover().names("activation")


def test_a_dropin_that_fails_its_check_is_listed_and_skipped():
    registry = discover(plugins_dir=BROKEN)
    record = next(r for r in registry.records if r.name == "wrong_slope")
    assert record.status == "failed" and "failed its check: derivative" in record.error
    assert "wrong_slope" not in registry.names("activation")
    assert "fine_cube" in registry.names("activation")


def test_a_dropin_written_for_the_old_import_name_says_which_import_to_write(tmp_path):
    text = (DROPINS / "good_softsign.py").read_text()
    assert "from gradient_lab.engine.plugin_api import" in text
    (tmp_path / "old_style.py").write_text(text.replace("gradient_lab.engine.", "engine."))
    registry = discover(plugins_dir=tmp_path)
    [failed] = [r for r in registry.records if r.origin == str(tmp_path / "old_style.py")]
    assert failed.status == "failed"
    assert failed.error == (
        "written for plugin API 1 (imports 'engine'): write "
        "`from gradient_lab.engine.plugin_api import ...` instead of "
        "`from engine.plugin_api import ...` (plugin API 3)"
    )


OLD_STYLE_LAYER = """
from gradient_lab.engine.plugin_api import Layer


class Twice(Layer):
    name = "twice"
    formula = "y = 2x"
    teaching = "Written for plugin API 2: state kept on the layer."

    def forward(self, x, training):
        self.cache = {"x": x}
        return 2 * x

    def backward(self, dy):
        return 2 * dy


PLUGINS = [Twice]
"""


def test_a_layer_written_for_api_2_says_how_to_write_it_now(tmp_path):
    (tmp_path / "old_layer.py").write_text(OLD_STYLE_LAYER)
    registry = discover(plugins_dir=tmp_path)
    [failed] = [r for r in registry.records if r.name == "twice"]
    assert failed.status == "failed"
    assert "written for plugin API 2 (forward(x, training))" in failed.error
    assert "forward(self, ctx, p, x)" in failed.error
