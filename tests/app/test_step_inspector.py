"""The step inspector shows each phase's formula with the engine's numbers for the neuron
clicked in the diagram."""

from PySide6 import QtCore

from gradient_lab.app.views.step_inspector import num
from gradient_lab.engine.service.neuron_detail import neuron_detail
from tests.app.test_main_window import WAIT_MS, settle


def text_after(win, qtbot, phase):
    while win.latest.next_phase != phase:
        qtbot.keyClick(win, QtCore.Qt.Key.Key_Right)
        version = win.latest.version
        settle(qtbot, win, lambda s, v=version: s.version > v)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Right)
    settle(qtbot, win, lambda s: win.phase_done == phase)
    return win.inspector.text.toPlainText()


def test_clicking_a_neuron_explains_each_phase_with_the_real_numbers(window, qtbot):
    win = window()
    win.service().run(50).result(WAIT_MS / 1000)
    settle(qtbot, win, lambda s: s.step == 50)
    neuron = win.network.neurons[2][1]  # layer 1, unit 1
    view = win.network
    point = view.mapFromScene(neuron.sceneBoundingRect().center())
    qtbot.mouseClick(view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=point)
    assert (win.inspector.layer.currentData(), win.inspector.unit.value()) == (1, 1)
    assert win.inspector_dock.isVisible()

    forward = text_after(win, qtbot, "forward 1")
    detail = neuron_detail(win.latest, 1, 1, 0)
    assert f"= {num(detail.z)}" in forward and f"tanh(z1) = {num(detail.a)}" in forward

    backward = text_after(win, qtbot, "backward 1")
    detail = neuron_detail(win.latest, 1, 1, 0)
    assert f"= {num(detail.delta)}" in backward
    assert f"{num(detail.upstream)} × {num(detail.slope)}" in backward

    update = text_after(win, qtbot, "update")
    snap = win.latest
    new = snap.parameters()["layers.1.W"][0, 1]
    old = new - snap.updates()["layers.1.W"][0, 1]
    g = snap.gradients()["layers.1.W"][0, 1]
    assert f"w0,1 ← {num(old)} − {num(0.1)} × {num(g)} = {num(new)}" in update
