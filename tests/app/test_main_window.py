"""The main window on the default experiment: stepping phase by phase, playing, resetting,
editing a weight, the views drawing what the engine computed, and files that cannot open."""

from itertools import pairwise

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from gradient_lab.app.dock_turns import FEWEST
from gradient_lab.app.palette import NEGATIVE, POSITIVE, diverging_rgba
from gradient_lab.app.views.output_view import RESOLUTION
from gradient_lab.engine.cli.main import default_experiment_path
from gradient_lab.engine.training.experiment import load_experiment
from gradient_lab.engine.training.session import Session
from tests.app.conftest import screenshot

WAIT_MS = 60_000


def settle(qtbot, win, condition):
    """Wait for ``condition(snapshot)``, then for the window to draw that snapshot."""
    qtbot.waitUntil(lambda: win.latest is not None and condition(win.latest), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: win.rendered_version == win.latest.version, timeout=WAIT_MS)
    return win.latest


def test_the_window_opens_on_the_default_experiment_ready_to_play(window):
    win = window()
    assert win.windowTitle() == "Gradient Lab — default_experiment"
    assert all(a.isEnabled() for a in win.controls.actions())
    assert win.state_label.text().startswith("step 0")
    screenshot(win, "main_window_start")


def test_stepping_every_phase_highlights_it_and_ends_at_the_engine_s_step(window, qtbot):
    """→ runs one phase; the diagram highlights the phase just run; after the whole step the
    weights the views show are a headless session's after one step, bit for bit."""
    win = window()
    names = win.facts.phase_names
    seen = []
    for k in range(len(names)):
        qtbot.keyClick(win, QtCore.Qt.Key.Key_Right)
        snap = settle(
            qtbot, win, lambda s, k=k: (s.step, s.phase_index) == divmod(k + 1, len(names))
        )
        seen.append(win.network.highlighted)
        if names[k] == "forward 1":
            screenshot(win.network, "network_forward_1")
    assert seen == list(names)
    bare = Session(load_experiment(default_experiment_path()))
    bare.step_batch()
    assert snap.step == 1 and snap.theta.tobytes() == bare.model.theta.tobytes()


def test_edges_show_each_weight_s_sign_and_size(window):
    win = window()
    weights = win.latest.parameters()
    widths = []
    for edge in win.network.edges:
        w = weights[edge.key][edge.index]
        colour = np.array(edge.pen().color().getRgb()[:3])
        near, far = (POSITIVE, NEGATIVE) if w > 0 else (NEGATIVE, POSITIVE)
        assert np.abs(colour - near).sum() < 0.5 * np.abs(colour - far).sum()  # by its sign
        assert f"{w:+.4f}" in edge.describe()
        widths.append((abs(w), edge.pen().widthF()))
    widths.sort()
    assert all(a[1] <= b[1] for a, b in pairwise(widths))
    assert len(win.network.edges) == 2 * 4 + 4 * 4 + 4 * 1


def test_the_output_view_draws_the_engine_s_margin_over_the_plane(window, qtbot):
    win = window()
    win.service().run(200).result(WAIT_MS / 1000)
    snap = settle(qtbot, win, lambda s: s.step == 200)
    grid = snap.output_grid(RESOLUTION)
    np.testing.assert_array_equal(win.output.colours(), diverging_rgba(grid.margin))
    win.output.discretize.setChecked(True)
    np.testing.assert_array_equal(win.output.colours(), diverging_rgba(np.sign(grid.margin)))
    screenshot(win.output, "output_view")


def test_play_and_pause_with_the_space_bar_and_the_curves_keep_every_step(window, qtbot):
    win = window()
    win.controls.speed.setCurrentText("as fast as possible")
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    # while playing a newer snapshot is always on its way: wait for one drawn, not the last
    qtbot.waitUntil(
        lambda: win.latest is not None and win.latest.playing and win.latest.step > 400,
        timeout=WAIT_MS,
    )
    qtbot.waitUntil(lambda: win.controls.play.text() == "Pause", timeout=WAIT_MS)
    assert not win.controls.step_phase.isEnabled()
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    paused = settle(qtbot, win, lambda s: not s.playing)
    qtbot.wait(100)
    assert win.latest.step == paused.step and win.controls.play.text() == "Play"
    steps = win.curves.steps
    assert steps[:, 0].tolist() == list(range(paused.step))  # drained in batches, none lost
    assert steps[-1, 2] == paused.last_loss
    kept = win.service().call(lambda s: [r["epoch"] for r in s.history.epochs]).result()
    assert [r["epoch"] for r in win.curves.epochs] == kept  # what the engine kept, thinned
    assert kept[-1] == paused.epoch
    screenshot(win, "main_window_trained")


def test_reset_goes_back_to_the_initial_weights(window, qtbot):
    win = window()
    initial = win.latest.theta
    win.service().run(50).result(WAIT_MS / 1000)
    settle(qtbot, win, lambda s: s.step == 50)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_R)
    snap = settle(qtbot, win, lambda s: s.step == 0)
    assert snap.theta.tobytes() == initial.tobytes()
    assert len(win.curves.steps) == 0


def test_clicking_a_weight_edits_it_in_the_session(window, qtbot, monkeypatch):
    win = window()
    asked = []

    def answer(parent, title, label, value, *limits):
        asked.append((label, value))
        return 0.75, True

    monkeypatch.setattr(QtWidgets.QInputDialog, "getDouble", answer)
    view = win.network
    edge = view.edges[-1]  # the last hidden unit to the output
    point = view.mapFromScene(edge.mapToScene(edge.line().pointAt(0.25)))
    assert view.itemAt(point) is edge
    qtbot.mouseClick(view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=point)
    snap = settle(qtbot, win, lambda s: s.parameters()[edge.key][edge.index] == 0.75)
    assert asked[0][0] == f"New value of {edge.key}[{edge.index[0]}, {edge.index[1]}]:"
    assert f"{0.75:+.4f}" in edge.describe() and snap.step == 0


def test_a_bad_file_gets_a_dialog_naming_the_field_and_the_session_goes_on(window, qtbot, tmp_path):
    win = window()
    bad = tmp_path / "bad.toml"
    text = default_experiment_path().read_text().replace("lr = 0.1", "lr = -1")
    bad.write_text(text)
    win.open_experiment(bad)
    qtbot.waitUntil(lambda: win.findChild(QtWidgets.QMessageBox, "error dialog") is not None)
    dialog = win.findChild(QtWidgets.QMessageBox, "error dialog")
    assert "training.optimizer.lr" in dialog.text() and dialog.isVisible()
    dialog.close()
    assert win.windowTitle() == "Gradient Lab — default_experiment"
    assert win.controls.play.isEnabled()


def test_the_help_dialog_lists_every_training_shortcut(window, qtbot):
    win = window()
    qtbot.keyClick(win, QtCore.Qt.Key.Key_F1)
    dialog = win.findChild(QtWidgets.QMessageBox, "shortcuts dialog")
    text = dialog.text()
    for action in win.controls.actions():
        assert action.shortcut().toString() in text and action.text() in text
    dialog.close()


@pytest.mark.parametrize(
    "name", ["digits_mlp", "blobs_softmax", "surface_regression", "sine_regression"]
)
def test_every_kind_of_example_opens_and_draws(window, qtbot, name):
    from gradient_lab.app.main_window import examples_folder

    win = window(examples_folder() / f"{name}.toml")
    win.service().run(5).result(WAIT_MS / 1000)
    snap = settle(qtbot, win, lambda s: s.step == 5)
    if name == "digits_mlp":  # no plane: layers as blocks of weights, no output plane
        assert win.network.columns is None and len(win.network.blocks) == 2
        assert not win.output.isVisible()
        assert all(not item.pixmap().isNull() for _, item in win.network.blocks)
    elif name == "sine_regression":  # one input: the fitted curve through the samples
        xs, ys = win.output.fitted.getData()
        expected_x, expected_y = snap.output_curve()
        np.testing.assert_array_equal(xs, expected_x)
        np.testing.assert_array_equal(ys, expected_y)
        assert win.output.curve_plot.isVisible() and not win.output.plot.isVisible()
    else:
        assert win.output.colours().shape == (RESOLUTION, RESOLUTION, 4)
    if name == "blobs_softmax":
        grid = snap.output_grid(RESOLUTION)
        assert set(np.unique(grid.labels)) <= {0, 1, 2}
    screenshot(win, f"example_{name}")


def test_run_to_epoch_stops_at_that_epoch_s_end(window, qtbot):
    win = window()
    win.controls.target_epoch.setValue(3)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_E, QtCore.Qt.KeyboardModifier.ControlModifier)
    snap = settle(qtbot, win, lambda s: s.step > 0 and not s.playing)
    per_epoch = Session(load_experiment(default_experiment_path())).steps_per_epoch
    assert (snap.epoch, snap.step) == (3, 3 * per_epoch)
    assert win.controls.play.text() == "Play" and win.controls.step_phase.isEnabled()
    assert [r["epoch"] for r in win.curves.epochs] == [1, 2, 3]


def test_a_diverging_run_stops_and_says_where_on_the_window(window, qtbot, tmp_path):
    text = (
        default_experiment_path()
        .read_text()
        .replace("lr = 0.1", "lr = 1e6")
        .replace('"bce_with_logits"', '"mse"')
        .replace('activation = "tanh"', 'activation = "relu"')
    )
    path = tmp_path / "diverges.toml"
    path.write_text(text)
    win = window(path)
    win.controls.speed.setCurrentText("as fast as possible")
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    snap = settle(qtbot, win, lambda s: s.diverged is not None and not s.playing)
    assert win.notice.isVisible() and snap.diverged in win.notice.text()
    assert "training diverged at step" in win.notice.text() and "loss" in win.notice.text()
    assert win.controls.play.text() == "Play"


def count_draws(win):
    """Every dock shown at once, and the steps each view is asked to draw, by view."""
    from gradient_lab.app.bench import open_every_dock

    open_every_dock(win)
    drawn: dict[str, list[int]] = {}

    def counted(name, draw):
        def wrapper(snapshot, *args):
            drawn.setdefault(name, []).append(snapshot.step)
            return draw(snapshot, *args)

        return wrapper

    for name in ("network", "inspector", "weights", "gradients"):
        view = getattr(win, name)
        view.show_snapshot = counted(name, view.show_snapshot)
    clock = win.curves.history_clock
    curves_draw = clock.draw_pending
    clock.draw_pending = lambda: drawn.setdefault("curves", []).append(-1) or curves_draw()
    return drawn


def test_while_playing_the_docks_take_turns_and_a_pause_draws_every_view(window, qtbot):
    win = window()
    drawn = count_draws(win)
    win.controls.speed.setCurrentText("as fast as possible")
    win.controls.play.trigger()
    qtbot.waitUntil(lambda: len(drawn.get("network", [])) >= 40, timeout=WAIT_MS)
    smooth = QtGui.QPainter.RenderHint.Antialiasing
    assert not win.network.renderHints() & smooth  # plain edges while they race
    win.controls.play.trigger()
    paused = settle(qtbot, win, lambda s: not s.playing)
    assert win.network.renderHints() & smooth  # and smooth once they hold still
    frames = len(drawn["network"])
    for name in ("inspector", "weights", "gradients", "curves"):
        # in turn, as many a frame as there is time for: each now and then, and none more
        # often than the network, which draws every frame
        assert 40 * FEWEST / 4 <= len(drawn[name]) <= frames + 2
    for name in ("network", "inspector", "weights", "gradients"):
        assert drawn[name][-1] == paused.step  # paused: every view shows the same state
    assert win.weights.latest.step == paused.step


def test_at_a_teaching_speed_every_view_draws_every_step(window, qtbot):
    win = window()
    drawn = count_draws(win)
    win.controls.speed.setCurrentText("5 steps/s")
    win.controls.play.trigger()
    qtbot.waitUntil(lambda: win.latest.playing and win.latest.step >= 4, timeout=WAIT_MS)
    win.controls.play.trigger()
    settle(qtbot, win, lambda s: not s.playing)
    stepped = set(drawn["network"]) - {0}
    assert len(stepped) >= 3
    for name in ("inspector", "weights", "gradients"):
        assert stepped <= set(drawn[name])  # the same step everywhere, as a student reads it


def test_playing_lays_nothing_out_again(window, qtbot):
    """The step count and the training state change at every frame; the labels showing them
    keep their size, so the window is not laid out again (with its docks animated in place)."""
    win = window()
    layouts = []

    class Counter(QtCore.QObject):
        def eventFilter(self, obj, event):
            if event.type() == QtCore.QEvent.Type.LayoutRequest:
                layouts.append(obj)
            return False

    counter = Counter()
    win.installEventFilter(counter)
    win.controls.speed.setCurrentText("as fast as possible")
    win.controls.play.trigger()
    start = win.frames
    qtbot.waitUntil(lambda: win.frames >= start + 90 and win.latest.step > 1000, timeout=WAIT_MS)
    win.controls.play.trigger()
    settle(qtbot, win, lambda s: not s.playing)
    win.removeEventFilter(counter)
    assert len(layouts) <= 6  # Play and Pause, and a label widening now and then
    assert win.timeline.label.text() == f"step {win.latest.step:,} of {win.latest.step:,}"
