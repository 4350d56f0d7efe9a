"""The landscape dock: computes on a thread beside training, draws the engine's values and
the optimizer's path, follows training live, and says plainly where 3D cannot open."""

import numpy as np
import pytest

from gradient_lab.app.views.landscape_view import COLOURS, gl_unavailable
from gradient_lab.engine.instruments.landscape.trajectory import project
from tests.app.test_main_window import WAIT_MS, settle


def scan(win, qtbot, mode="random", size=21):
    view = win.landscape
    view.mode.setCurrentText(mode)
    view.grid_size.setCurrentIndex(view.grid_size.findData(size))
    view.compute.click()
    qtbot.waitUntil(lambda: view.result is not None and view.result.complete, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: view.line_result is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: view.compute.isEnabled(), timeout=WAIT_MS)
    return view


def test_the_landscape_computes_and_draws_the_path(window, qtbot):
    win = window()
    win.service().run(120).result(WAIT_MS / 1000)
    settle(qtbot, win, lambda s: s.step == 120)
    view = scan(win, qtbot)
    result = view.result
    assert result.loss.shape == (21, 21) and result.done.all()
    assert result.origin_loss == pytest.approx(float(np.nanmin(result.loss)), rel=0.5)
    path_x, path_y = view.path.getData()
    np.testing.assert_array_equal(path_x, result.trajectory[:, 0])
    np.testing.assert_array_equal(path_y, result.trajectory[:, 1])
    shown = np.log10(result.loss)
    low, high = shown.min(), shown.max()
    expected = COLOURS.map((shown - low) / (high - low), mode="byte")
    np.testing.assert_array_equal(view.image.image, expected)
    line = view.line_result
    assert line.alpha[0] == -0.5 and line.alpha[-1] == 1.5
    assert line.loss[np.flatnonzero(line.alpha == 1.0)[0]] == result.origin_loss
    assert "loss here" in view.status.text()


def test_the_path_grows_live_as_training_goes_on(window, qtbot):
    win = window()
    win.service().run(40).result(WAIT_MS / 1000)
    settle(qtbot, win, lambda s: s.step == 40)
    view = scan(win, qtbot)
    win.service().run(30).result(WAIT_MS / 1000)
    snap = settle(qtbot, win, lambda s: s.step == 70)
    d = view.result.directions
    expected = project(np.asarray(snap.theta)[None, :], view.result.center, d.d1, d.d2)[0]
    x, y = view.live_path.getData()
    assert (x[-1], y[-1]) == (expected[0], expected[1])


def test_two_chosen_weights_give_an_exact_slice(window, qtbot):
    win = window()
    view = win.landscape
    view.first.setCurrentIndex(0)
    view.second.setCurrentIndex(3)
    view = scan(win, qtbot, mode="weights", size=21)
    labels = view.result.directions.labels
    assert labels == (view.first.currentText(), view.second.currentText())


def test_pca_without_a_path_says_why(window, qtbot):
    win = window()
    view = win.landscape
    view.mode.setCurrentText("pca")
    view.compute.click()
    qtbot.waitUntil(lambda: view.compute.isEnabled(), timeout=WAIT_MS)
    assert view.status.text().startswith("Cannot scan:")


def test_3d_says_why_it_cannot_open_offscreen(window):
    win = window()
    reason = gl_unavailable()
    assert reason is not None and "offscreen" in reason
    win.landscape.open_surface()
    assert win.landscape.status.text() == reason and win.landscape.surface is None
