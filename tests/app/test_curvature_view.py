"""The curvature dock measures sharpness when asked and draws it against 2/η, from the epoch
records the session keeps; a rewind and replay keeps one measurement per epoch."""

from tests.app.test_main_window import WAIT_MS, settle


def test_sharpness_against_the_stability_edge(window, qtbot):
    win = window()
    view = win.curvature
    view.start_button.click()
    assert view.measuring and not view.start_button.isEnabled()
    win.service().play(None, until_epoch=3).result(WAIT_MS / 1000)
    settle(qtbot, win, lambda s: s.epoch == 3 and not s.playing)
    qtbot.waitUntil(lambda: len(view.records) == 3, timeout=WAIT_MS)
    held = (
        win.service()
        .call(lambda s: [(r["step"], r["top_eigenvalue"]) for r in s.history.epochs])
        .result(WAIT_MS / 1000)
    )
    steps, values = view.sharpness.getOriginalDataset()
    assert [(int(a), float(b)) for a, b in zip(steps, values, strict=True)] == held
    assert set(view.edge.getOriginalDataset()[1]) == {2 / 0.1}
    assert "% of it" in view.status.text()
    win.timeline.slider.setValue(45)
    settle(qtbot, win, lambda s: s.step == 45)
    qtbot.waitUntil(lambda: len(view.records) == 1, timeout=WAIT_MS)
    win.timeline.slider.setValue(120)
    settle(qtbot, win, lambda s: s.step == 120)
    qtbot.waitUntil(lambda: len(view.records) == 3, timeout=WAIT_MS)
    assert [r["step"] for r in view.records] == [40, 80, 120]
    assert "top_eigenvalue" not in win.curves.metric_curves
