"""Drop-ins that misbehave at import or in their check: discovery records them and carries on.

Each hostile drop-in is written to tmp_path. The scan's time limits are cut short through the
environment (GRADIENT_LAB_SCAN_TIMEOUT, GRADIENT_LAB_CHECK_TIMEOUT) and each test keeps its own
manifest cache, so no test sees another's verdicts.
"""

import ast
import csv
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gradient_lab.engine.cli.main import main
from gradient_lab.engine.loading import scan as scan_module
from gradient_lab.engine.loading.discovery import discover
from gradient_lab.engine.loading.manifest import Entry, Item, PluginEntry, reusable
from gradient_lab.engine.loading.registry import third_party_items
from gradient_lab.engine.loading.scan import scan
from tests.experiments import dense, experiment_text

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "engine"
IMPORT_LIMIT = 2  # seconds: a drop-in here imports in milliseconds
CHECK_LIMIT = 20  # seconds: a check compiles its plugin's functions (cached after the first run)


def activation(name, body="", f="return x", df="return 1.0", before=""):
    """A drop-in activation module: ``before`` runs at import, ``body`` adds class lines."""
    return (
        f"{before}\n"
        "from gradient_lab.engine.plugin_api import Activation\n\n\n"
        f"class Plugin(Activation):\n"
        f"    name = {name!r}\n"
        '    formula = "f(x) = x"\n'
        '    teaching = "A drop-in of the hostile-plugin tests."\n'
        f"{body}\n"
        "    @staticmethod\n"
        "    def f(x, a, b):\n"
        f"        {f}\n\n"
        "    @staticmethod\n"
        "    def df(x, y, a, b):\n"
        f"        {df}\n\n\n"
        "PLUGINS = [Plugin]\n"
    )


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """An empty drop-in folder, short time limits and a manifest cache of this test's own."""
    monkeypatch.setenv("GRADIENT_LAB_SCAN_TIMEOUT", str(IMPORT_LIMIT))
    monkeypatch.setenv("GRADIENT_LAB_CHECK_TIMEOUT", str(CHECK_LIMIT))
    monkeypatch.setenv("GRADIENT_LAB_PLUGIN_CACHE", str(tmp_path / "cache"))
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "fine.py").write_text(activation("fine_identity"))
    return plugins


def failure(registry, origin):
    [record] = [r for r in registry.failures() if r.origin == str(origin)]
    return record.error


def real_process(*args, cwd):
    """``gradient-lab ARGS`` in a new process: (exit code, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "gradient_lab.engine.cli", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def test_a_dropin_that_loops_at_import_is_recorded_and_the_rest_loads(folder):
    (folder / "spin.py").write_text("while True:\n    pass\n")
    registry = discover(plugins_dir=folder)
    assert failure(registry, folder / "spin.py") == (
        f"did not finish importing within {IMPORT_LIMIT} s"
    )
    assert registry.record("activation", "fine_identity").source == "folder"
    assert "relu" in registry.names("activation")


def test_a_function_that_loops_in_the_check_fails_it_and_its_neighbour_passes(folder, monkeypatch):
    monkeypatch.setenv("GRADIENT_LAB_CHECK_TIMEOUT", "5")
    text = activation("spin_f", f="while True:\n            pass")
    text += "\n\n" + activation("calm").split("\n", 1)[1].replace("Plugin", "Calm")
    (folder / "spin_check.py").write_text(text + "PLUGINS = [Plugin, Calm]\n")
    registry = discover(plugins_dir=folder)
    [spin] = [r for r in registry.records if r.name == "spin_f"]
    assert spin.status == "failed"
    assert spin.error == "did not finish its conformance check within 5 s"
    calm = registry.record("activation", "calm")
    assert calm.ok and calm.check_verdict == ""
    assert registry.create("activation", "calm").f(2.0, 0.0, 0.0) == 2.0


def small_experiment(path, activation_name="tanh"):
    path.write_text(
        experiment_text(
            layers=[dense(3, activation_name), dense(1, "tanh")],
            dataset="circle",
            data="n = 40",
            init=None,
            optimizer='{ name = "sgd", lr = 0.1 }',
            batch_size=16,
            epochs=1,
        )
    )
    return path


def test_os_exit_at_import_ends_neither_listing_nor_run(folder, tmp_path, capsys):
    (folder / "quit.py").write_text("import os\n\nos._exit(3)\n")
    assert main(["plugins", "list", "--plugins-dir", str(folder)]) == 0
    listing = capsys.readouterr().out
    [line] = [line for line in listing.splitlines() if " quit " in line]
    assert line.split()[:3] == ["module", "quit", "folder"]
    assert line.endswith("failed: ended the process with exit code 3 at import")
    assert "fine_identity" in listing
    experiment = small_experiment(tmp_path / "exp.toml")
    out = tmp_path / "out"
    assert (
        main(["run", str(experiment), "--out", str(out), "--quiet", "--plugins-dir", str(folder)])
        == 0
    )
    assert (out / "history.csv").is_file() and (out / "summary.json").is_file()


def test_plugins_check_of_a_file_survives_what_the_scan_survives(folder, monkeypatch, capsys):
    """``plugins check FILE.py`` scans the file in a worker first: a loop or an exit at import,
    or a loop in one plugin's check, is reported from there; its neighbour gets the full check."""
    monkeypatch.setenv("GRADIENT_LAB_CHECK_TIMEOUT", "5")
    (folder / "spin.py").write_text("while True:\n    pass\n")
    (folder / "quit.py").write_text("import os\n\nos._exit(3)\n")
    text = activation("spin_f", f="while True:\n            pass")
    text += "\n\n" + activation("calm").split("\n", 1)[1].replace("Plugin", "Calm")
    (folder / "spin_check.py").write_text(text + "PLUGINS = [Plugin, Calm]\n")
    for name, reason in (
        ("spin.py", f"did not finish importing within {IMPORT_LIMIT} s"),
        ("quit.py", "ended the process with exit code 3 at import"),
    ):
        assert main(["plugins", "check", str(folder / name)]) == 1
        out = capsys.readouterr().out
        assert f"FAIL  import: {reason}" in out, out
    assert main(["plugins", "check", str(folder / "spin_check.py")]) == 1
    out = capsys.readouterr().out
    assert "activation calm (folder): PASS" in out
    assert "FAIL  check in a worker process: did not finish its conformance check within 5 s" in out
    assert out.rstrip().endswith("1 passed, 1 failed")


LOUD = "import os\n\nprint('hello from a plugin')\nos.write(1, b'straight to fd 1\\n')\n"


def test_a_print_at_import_leaves_plugins_list_json_clean(folder, tmp_path):
    (folder / "loud.py").write_text(activation("loud", before=LOUD))
    code, out, err = real_process(
        "plugins", "list", "--json", "--plugins-dir", folder, cwd=tmp_path
    )
    assert code == 0, err
    listed = {r["name"]: r for r in json.loads(out)}
    assert listed["loud"]["status"] == "ok" and listed["fine_identity"]["status"] == "ok"


def test_a_print_at_import_here_is_captured_as_a_note(folder, capfd):
    (folder / "loud.py").write_text(activation("loud", before=LOUD))
    registry = discover(plugins_dir=folder)
    record = registry.record("activation", "loud")
    assert not record.loaded  # listed from the scan, not imported yet
    assert "hello from a plugin" in record.note  # what the scan's import printed
    capfd.readouterr()
    assert registry.create("activation", "loud").f(1.5, 0.0, 0.0) == 1.5
    assert capfd.readouterr() == ("", "")
    assert "straight to fd 1" in record.note.split("printed:")[-1]


def test_chdir_at_import_moves_neither_run_outputs_nor_the_working_directory(
    folder, tmp_path, monkeypatch
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = f"import os\n\nos.chdir({str(elsewhere)!r})\n"
    (folder / "mover.py").write_text(activation("mover", before=before))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    small_experiment(work / "exp.toml", "mover")
    args = ["run", "exp.toml", "--out", "out", "--quiet", "--plugins-dir", str(folder)]
    assert main(args) == 0
    assert Path.cwd() == work
    rows = list(csv.DictReader((work / "out" / "history.csv").open()))
    assert rows and list(elsewhere.iterdir()) == []
    registry = discover(plugins_dir=folder)
    registry.get("activation", "mover")
    assert Path.cwd() == work
    assert f"changed the working directory to {elsewhere} (restored)" in (
        registry.record("activation", "mover").note
    )


THREAD = (
    "import threading\nimport time\n\n\n"
    "def forever():\n    while True:\n        time.sleep(0.05)\n\n\n"
    "threading.Thread(target=forever, name='keeps-running').start()\n"
)


def test_a_thread_started_at_import_does_not_keep_the_program_alive(folder, tmp_path):
    (folder / "busy.py").write_text(activation("busy", before=THREAD))
    code, out, err = real_process("plugins", "list", "--plugins-dir", folder, cwd=tmp_path)
    assert code == 0, err
    [line] = [line for line in out.splitlines() if " busy " in line]
    assert "failed: started a thread at import that is still running ('keeps-running')" in line
    threads = threading.active_count()
    registry = discover(plugins_dir=folder)
    assert "busy" not in registry.names("activation")
    assert threading.active_count() == threads


@pytest.mark.skipif(sys.platform == "win32", reason="a crash is a signal on POSIX only")
def test_a_crash_at_import_is_recorded(folder):
    (folder / "crash.py").write_text("import ctypes\n\nctypes.string_at(0)\n")
    registry = discover(plugins_dir=folder)
    assert failure(registry, folder / "crash.py").startswith(
        "crashed the interpreter (SIGSEGV) at import"
    )
    assert "fine_identity" in registry.names("activation")


COUNTING = (
    "from pathlib import Path\n\nwith open({log!r}, 'a') as log:\n    log.write('import\\n')\n"
)


def test_a_second_listing_imports_nothing_and_a_changed_file_is_scanned_again(folder, tmp_path):
    log = tmp_path / "imports.log"
    plugin = folder / "counted.py"
    plugin.write_text(activation("counted", before=COUNTING.format(log=str(log))))

    def imports():
        return len(log.read_text().splitlines()) if log.exists() else 0

    discover(plugins_dir=folder)
    assert imports() == 1  # the scan's
    registry = discover(plugins_dir=folder)
    assert imports() == 1
    assert registry.record("activation", "counted").check_verdict == ""
    registry.get("activation", "counted")
    assert imports() == 2  # first use here
    discover(plugins_dir=folder).get("activation", "counted")
    assert imports() == 2
    plugin.write_text(plugin.read_text() + "# changed\n")
    discover(plugins_dir=folder)
    assert imports() == 3


def test_the_manifest_lists_each_plugin_with_its_status(folder):
    (folder / "broken.py").write_text("raise RuntimeError('no')\n")
    items = [i for i in third_party_items(folder) if i.type == "file"]
    rows = [row for item, entry in zip(items, scan(items), strict=True) for row in entry.rows(item)]
    assert rows == [
        {
            "kind": "module",
            "name": "broken",
            "version": "",
            "source": "folder",
            "file": str(folder / "broken.py"),
            "status": "failed",
            "reason": "RuntimeError: no",
        },
        {
            "kind": "activation",
            "name": "fine_identity",
            "version": "1.0",
            "source": "folder",
            "file": str(folder / "fine.py"),
            "status": "ok",
            "reason": "",
        },
    ]


def test_a_scan_that_cannot_run_fails_the_third_party_plugins_only(folder, monkeypatch):
    worker = scan_module.WORKER
    monkeypatch.setattr(scan_module, "WORKER", "no_such_scan_worker")
    registry = discover(plugins_dir=folder)
    error = failure(registry, folder / "fine.py")
    assert error.startswith("the plugin scan could not run: it ended the process with exit code 1")
    assert error.endswith("No module named no_such_scan_worker")
    assert "relu" in registry.names("activation")
    monkeypatch.setattr(scan_module, "WORKER", worker)
    assert discover(plugins_dir=folder).record("activation", "fine_identity").ok  # not cached


def test_a_cached_timeout_is_retried_under_a_longer_limit(tmp_path):
    path = tmp_path / "slow.py"
    path.write_text("x = 1\n")
    item = Item("file", "slow", "folder", str(path))
    timed_out = Entry(item.key, item.stamp(), "failed", "did not finish importing", budget=2.0)
    assert reusable(timed_out, item, item.stamp(), 2.0, 60.0)
    assert not reusable(timed_out, item, item.stamp(), 10.0, 60.0)
    slow_check = Entry(item.key, item.stamp(), plugins=[PluginEntry("a", "b", budget=5.0)])
    assert not reusable(slow_check, item, item.stamp(), 2.0, 60.0)
    path.write_text("x = 22\n")
    assert not reusable(Entry(item.key, {"mtime_ns": 0, "size": 6}), item, item.stamp(), 2, 60)


# ---------------------------------------------------------------- subprocesses in the engine


def calls_without_timeout(path: Path) -> list[tuple[int, str]]:
    """(line, call) of the engine's subprocess calls that could wait forever: `subprocess.X(...)`
    without timeout=, or a function starting a Popen that waits on it (wait, communicate)
    without a timeout."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
            continue
        calls = [n for n in ast.walk(function) if isinstance(n, ast.Call)]
        popen = False
        for call in calls:
            func = call.func
            if not isinstance(func, ast.Attribute):
                continue
            timeout = any(k.arg == "timeout" for k in call.keywords)
            if isinstance(func.value, ast.Name) and func.value.id == "subprocess":
                popen = popen or func.attr == "Popen"
                if func.attr in {"run", "call", "check_call", "check_output"} and not timeout:
                    found.append((call.lineno, f"subprocess.{func.attr}"))
        if popen and not isinstance(function, ast.Module):
            for call in calls:
                func = call.func
                waits = isinstance(func, ast.Attribute) and func.attr in {"wait", "communicate"}
                if waits and not any(k.arg == "timeout" for k in call.keywords) and not call.args:
                    found.append((call.lineno, f".{func.attr}() after a Popen"))
    return sorted(set(found))


def test_every_subprocess_the_engine_starts_has_a_timeout():
    found = [
        f"{path.relative_to(ROOT)}:{line} {call}"
        for path in sorted(ENGINE.rglob("*.py"))
        for line, call in calls_without_timeout(path)
    ]
    assert found == []
    assert any("subprocess.Popen" in p.read_text() for p in ENGINE.rglob("*.py"))


def test_the_engine_timeout_scan_sees_a_missing_timeout(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import subprocess\n"
        "subprocess.run(['true'], timeout=5)\n"
        "subprocess.check_output(['true'])\n"
        "def watch():\n"
        "    worker = subprocess.Popen(['true'])\n"
        "    worker.wait(timeout=1)\n"
        "    worker.wait()\n"
    )
    assert calls_without_timeout(sample) == [
        (3, "subprocess.check_output"),
        (7, ".wait() after a Popen"),
    ]
