"""The plugin manager dock against a plugin folder of the test's own: the table of every plugin,
broken drop-ins listed as failed while the rest works, New plugin writing a checked file that
the window is offered at once, saved edits (in place and atomic) picked up by the watcher, and
the curves drawn from the engine's values. Also: every template is a plugin that passes the
check once its name is filled in."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from gradient_lab.app.plugin_writer import TEMPLATE_KINDS, class_name, template_text, write_plugin
from gradient_lab.app.session_loader import PluginOptions
from gradient_lab.app.views.plugin_manager import COLUMNS, ESTIMATE_EVERY, PluginManagerView
from gradient_lab.engine.instruments.plugin_curves import (
    activation_curves,
    activation_sweep,
    loss_curves,
    loss_sweep,
)
from gradient_lab.engine.loading.conformance import check_path
from tests.app.conftest import screenshot

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
JOB_MS = 120_000  # a cold scan and check compile kernels
ASKED_KINDS = {"activation", "loss", "optimizer", "layer", "initializer", "regularizer"}
ASKED_KINDS |= {"dataset", "metric"}


@pytest.fixture
def opened(monkeypatch):
    """What the app asked the desktop to open (nothing opens during a test)."""
    urls = []

    def open_url(url):
        urls.append(Path(url.toLocalFile()))
        return True

    monkeypatch.setattr(QtGui.QDesktopServices, "openUrl", open_url)
    return urls


@pytest.fixture
def manager(qtbot, opened):
    """``open(folder)``: the dock's view on a plugins folder, shown, its plugins listed."""

    def open_view(folder):
        view = PluginManagerView(PluginOptions(plugins_dir=str(folder)))
        qtbot.addWidget(view)
        view.resize(1200, 520)
        view.show()
        with qtbot.waitSignal(view.registry_changed, timeout=JOB_MS):
            view.reload_button.click()
        settle(qtbot, view)
        return view

    return open_view


def settle(qtbot, view):
    qtbot.waitUntil(lambda: view.registry is not None and not view.busy, timeout=JOB_MS)


def cell(view, kind, name, column):
    """The text the table shows for plugin ``kind`` ``name`` in ``column`` (None: no row)."""
    row = view.row_of(kind, name)
    if row is None:
        return None
    return view.filter.index(row, COLUMNS.index(column)).data()


def shown_rows(view):
    return [
        {c: view.filter.index(row, i).data() for i, c in enumerate(COLUMNS)}
        for row in range(view.filter.rowCount())
    ]


def select(qtbot, view, kind, name):
    """Select one row whatever modifier key an earlier test's last key event left recorded
    (``selectRow`` under a remembered Ctrl adds to the selection instead)."""
    row = view.row_of(kind, name)
    flags = (
        QtCore.QItemSelectionModel.SelectionFlag.ClearAndSelect
        | QtCore.QItemSelectionModel.SelectionFlag.Rows
    )
    view.table.selectionModel().select(view.filter.index(row, 0), flags)
    view.table.scrollTo(view.filter.index(row, 0))
    settle(qtbot, view)


def visible_dialogs():
    return [
        w
        for w in QtWidgets.QApplication.topLevelWidgets()
        if w.isVisible() and isinstance(w, (QtWidgets.QDialog, QtWidgets.QMessageBox))
    ]


# ------------------------------------------------------------------ the table


def test_the_table_lists_every_plugin_with_kind_source_and_status(manager, tmp_path):
    view = manager(tmp_path)
    rows = shown_rows(view)
    assert len(rows) == len(view.registry.records) > 50
    tanh = next(r for r in rows if r["name"] == "tanh")
    assert (tanh["kind"], tanh["source"], tanh["status"], tanh["version"]) == (
        "activation",
        "builtin",
        "ok",
        "1.0",
    )
    assert {r["source"] for r in rows} >= {"builtin", "package"}  # the sample package too

    view.kind_box.setCurrentText("loss")
    losses = shown_rows(view)
    assert {r["kind"] for r in losses} == {"loss"}
    assert sorted(r["name"] for r in losses) == view.registry.names("loss")

    view.table.sortByColumn(COLUMNS.index("name"), QtCore.Qt.SortOrder.DescendingOrder)
    names = [r["name"] for r in shown_rows(view)]
    assert names == sorted(names, reverse=True)


def test_a_broken_dropin_shows_as_failed_and_the_rest_keeps_working(manager, tmp_path, qtbot):
    for name in ("broken_import.py", "wrong_derivative.py", "fine_cube.py"):
        shutil.copy(TESTS / "dropins_broken" / name, tmp_path / name)
    view = manager(tmp_path)
    assert cell(view, "module", "broken_import", "status") == "failed"
    assert "fails on purpose while importing" in cell(view, "module", "broken_import", "error")
    assert cell(view, "module", "broken_import", "source") == "user file"
    assert cell(view, "activation", "wrong_slope", "status") == "failed"
    assert "derivative" in cell(view, "activation", "wrong_slope", "error")
    assert cell(view, "activation", "fine_cube", "status") == "ok"
    assert cell(view, "activation", "tanh", "status") == "ok"

    select(qtbot, view, "module", "broken_import")
    view.check_button.click()
    settle(qtbot, view)
    report = view.report.toPlainText()
    assert "FAIL" in report and "fails on purpose" in report
    assert cell(view, "module", "broken_import", "check") == "failed"
    assert not visible_dialogs()
    view.failed_only.setChecked(True)
    assert {r["name"] for r in shown_rows(view)} == {"broken_import", "wrong_slope"}
    select(qtbot, view, "module", "broken_import")
    screenshot(view, "plugins_broken")

    view.failed_only.setChecked(False)
    view.search.setText("user file")  # Check all checks what the table shows: the drop-ins
    assert {r["name"] for r in shown_rows(view)} == {"broken_import", "wrong_slope", "fine_cube"}
    view.check_all_button.click()
    settle(qtbot, view)
    assert view.report.toPlainText().startswith("3 checked: 2 failed")
    assert "activation wrong_slope: FAIL" in view.report.toPlainText()
    assert cell(view, "activation", "fine_cube", "check") == "passed"
    assert cell(view, "activation", "tanh", "check") is None  # filtered out, so not checked
    view.search.clear()
    assert cell(view, "activation", "tanh", "check") == ""

    select(qtbot, view, "activation", "fine_cube")  # the good neighbour loads and draws
    z, f = view.curves.value_curve.getData()
    np.testing.assert_allclose(f, z**3 / 3.0, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(view.curves.slope_curve.getData()[1], z**2, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ writing plugins


def new_from_menu(view, kind):
    [action] = [a for a in view.new_menu.actions() if a.text() == kind.replace("_", " ")]
    action.trigger()


def test_new_plugin_writes_a_checked_file_and_offers_it(manager, tmp_path, opened, qtbot):
    folder = tmp_path / "plugins"  # not there yet: New plugin makes it
    view = manager(folder)
    assert view.watcher.watched() == []
    with qtbot.waitSignal(view.registry_changed, timeout=JOB_MS) as emitted:
        new_from_menu(view, "activation")
    path = folder / "my_activation.py"
    assert opened == [path]
    registry = emitted.args[0]
    record = registry.record("activation", "my_activation")
    assert record.ok and record.source == "folder" and Path(record.origin) == path
    settle(qtbot, view)
    assert view.registry is registry  # the table shows what the window was offered
    assert cell(view, "activation", "my_activation", "status") == "ok"
    assert cell(view, "activation", "my_activation", "check") == "passed"
    assert "activation my_activation: PASS" in view.report.toPlainText()
    assert [r.name for r in view.selected_records()] == ["my_activation"]

    first = path.read_text(encoding="utf-8")
    with qtbot.waitSignal(view.registry_changed, timeout=JOB_MS) as emitted:
        new_from_menu(view, "activation")
    assert opened[-1] == folder / "my_activation_2.py"
    assert path.read_text(encoding="utf-8") == first
    assert {"my_activation", "my_activation_2"} <= set(emitted.args[0].names("activation"))
    view.folder_button.click()
    assert opened[-1] == folder


WRONG_SLOPE = "return a * y  # wrong on purpose"


def test_saved_edits_are_checked_in_place_and_after_an_atomic_save(manager, tmp_path, qtbot):
    view = manager(tmp_path)
    path = view.new_plugin("activation")
    assert path == tmp_path / "my_activation.py"
    settle(qtbot, view)
    good = path.read_text(encoding="utf-8")
    assert "return a * (1.0 - y * y)" in good

    def status_is(status, version="1.0"):
        return (
            not view.busy
            and cell(view, "activation", "my_activation", "status") == status
            and cell(view, "activation", "my_activation", "version") == version
        )

    # written in place: the watcher's watch on the file sees it
    path.write_text(good.replace("return a * (1.0 - y * y)", WRONG_SLOPE), encoding="utf-8")
    qtbot.waitUntil(lambda: status_is("failed"), timeout=JOB_MS)
    assert "activation my_activation: FAIL" in view.report.toPlainText()
    assert "derivative" in cell(view, "activation", "my_activation", "error")
    qtbot.waitUntil(lambda: view.curves.isVisible(), timeout=JOB_MS)  # the mistake, drawn
    rings_z, rings = view.curves.estimate_points.getData()
    z, slope = view.curves.slope_curve.getData()
    np.testing.assert_allclose(rings, 1.0 - np.tanh(rings_z) ** 2, atol=1e-6)  # the true f′
    np.testing.assert_allclose(slope, np.tanh(z), atol=1e-12)  # what the plugin claims
    screenshot(view, "plugins_wrong_derivative")

    # saved atomically, as editors do: a new file renamed over the old one
    fixed = good.replace('version = "1.0"', 'version = "1.1"')
    temporary = tmp_path / ".my_activation.py.swp"
    temporary.write_text(fixed, encoding="utf-8")
    with qtbot.waitSignal(view.registry_changed, timeout=JOB_MS) as emitted:
        os.replace(temporary, path)
    assert emitted.args[0].record("activation", "my_activation").version == "1.1"
    qtbot.waitUntil(lambda: status_is("ok", "1.1"), timeout=JOB_MS)
    assert "activation my_activation: PASS" in view.report.toPlainText()
    assert str(path) in view.watcher.watched()  # the new file is watched in turn

    # and an edit in place after the rename is seen too (the watch was armed again)
    path.write_text(fixed.replace("return a * (1.0 - y * y)", WRONG_SLOPE), encoding="utf-8")
    qtbot.waitUntil(lambda: status_is("failed", "1.1"), timeout=JOB_MS)

    with qtbot.waitSignal(view.registry_changed, timeout=JOB_MS) as emitted:
        path.unlink()
    assert "my_activation" not in emitted.args[0].names("activation")
    qtbot.waitUntil(lambda: not view.busy, timeout=JOB_MS)
    assert view.row_of("activation", "my_activation") is None
    assert view.report.toPlainText() == "my_activation.py: removed"


def test_a_folder_that_cannot_be_written_is_said_so(manager, tmp_path, opened):
    blocked = tmp_path / "a file"
    blocked.write_text("not a folder", encoding="utf-8")
    view = manager(blocked)
    assert view.new_plugin("loss") is None
    assert view.status.text().startswith(f"cannot write a new loss into {blocked}")
    view.folder_button.click()
    assert view.status.text().startswith(f"cannot make {blocked}")
    assert opened == [] and not visible_dialogs()


# ------------------------------------------------------------------ curves


def test_the_curves_are_the_engine_s_values(manager, tmp_path, qtbot):
    view = manager(tmp_path)
    select(qtbot, view, "activation", "tanh")
    z = activation_sweep()
    f, df, df_fd = activation_curves(view.registry.get("activation", "tanh"), z)
    shown_z, shown_f = view.curves.value_curve.getData()
    np.testing.assert_array_equal(shown_z, z)
    np.testing.assert_array_equal(shown_f, f)
    np.testing.assert_array_equal(view.curves.slope_curve.getData()[1], df)
    rings_z, rings = view.curves.estimate_points.getData()
    np.testing.assert_array_equal(rings_z, z[::ESTIMATE_EVERY])
    np.testing.assert_array_equal(rings, df_fd[::ESTIMATE_EVERY])
    assert f"{np.abs(df - df_fd).max():.1e}" in view.curves.note.text()
    assert view.curves.isVisible()
    screenshot(view, "plugins_activation")

    select(qtbot, view, "loss", "bce")
    bce = view.registry.get("loss", "bce")
    pred, target = loss_sweep(bce)
    value, grad, _ = loss_curves(bce, pred, target)
    np.testing.assert_array_equal(view.curves.value_curve.getData()[1], value)
    np.testing.assert_array_equal(view.curves.slope_curve.getData()[1], grad)
    assert "target [1]" in view.curves.plot.getPlotItem().titleLabel.text
    screenshot(view, "plugins_loss")

    select(qtbot, view, "optimizer", "adam")  # no curves for other kinds
    assert not view.curves.isVisible()
    assert (
        view.curves.value_curve.getData()[0] is None
        or len(view.curves.value_curve.getData()[0]) == 0
    )


# ------------------------------------------------------------------ the templates


def test_a_template_for_every_kind_asked_for_and_no_stray_files():
    assert set(TEMPLATE_KINDS) >= ASKED_KINDS
    folder = ROOT / "assets" / "plugin_templates"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{k}.py.txt" for k in TEMPLATE_KINDS)


@pytest.mark.parametrize("kind", TEMPLATE_KINDS)
def test_every_template_passes_the_check_once_named(kind, tmp_path):
    text = template_text(kind)
    assert "{{name}}" in text and "{{Class}}" in text
    assert "Change me" in text  # it tells a student what to change
    path = write_plugin(kind, tmp_path)
    assert path.name == f"my_{kind}.py"
    written = path.read_text(encoding="utf-8")
    assert "{{" not in written and f"class {class_name(f'my_{kind}')}(" in written
    results = check_path(path)
    assert [(r.kind, r.name) for r, _ in results] == [(kind, f"my_{kind}")]
    for _, report in results:
        assert report.passed, report.describe(only_failures=True)


def test_the_command_line_check_passes_a_new_activation(tmp_path):
    path = write_plugin("activation", tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "gradient_lab.engine.cli", "plugins", "check", str(path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "activation my_activation (folder): PASS" in done.stdout


def test_a_new_plugin_never_overwrites_and_avoids_names_taken(tmp_path):
    (tmp_path / "my_loss.py").write_text("keep me", encoding="utf-8")
    assert write_plugin("loss", tmp_path, taken={"my_loss_2"}).name == "my_loss_3.py"
    assert (tmp_path / "my_loss.py").read_text(encoding="utf-8") == "keep me"
    assert write_plugin("loss", tmp_path).name == "my_loss_2.py"
    with pytest.raises(ValueError, match="no template"):
        write_plugin("gizmo", tmp_path)
