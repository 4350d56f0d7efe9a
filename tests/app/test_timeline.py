"""The timeline: scrub back and forth over the run (every view follows, the state is the run's
bit for bit), and an edit after going back forks the run there."""

from PySide6 import QtWidgets

from gradient_lab.engine.cli.main import default_experiment_path
from gradient_lab.engine.training.experiment import load_experiment
from gradient_lab.engine.training.session import Session
from tests.app.test_main_window import WAIT_MS, settle


def bare_theta(steps, edit=None):
    session = Session(load_experiment(default_experiment_path()))
    session.run_steps(steps)
    if edit is not None:
        session.set_weight(*edit)
    return session


def test_scrubbing_back_and_forth_shows_the_run_at_each_step(window, qtbot):
    win = window()
    win.service().run(120).result(WAIT_MS / 1000)
    settle(qtbot, win, lambda s: s.step == 120)
    slider = win.timeline.slider
    assert (slider.maximum(), slider.value()) == (120, 120)
    for step in (30, 90, 10, 120):
        slider.setValue(step)  # as a drag does, value by value
        snap = settle(qtbot, win, lambda s, step=step: s.step == step)
        assert snap.theta.tobytes() == bare_theta(step).model.theta.tobytes()
        assert slider.maximum() == 120 and win.timeline.label.text() == f"step {step} of 120"
        assert len(win.curves.steps) == step  # the curves follow: the run up to that step
        assert win.output.grid is not None and win.rendered_version == snap.version


def test_a_fast_drag_sends_one_command_at_a_time_and_ends_where_it_stopped(window, qtbot):
    win = window()
    win.service().run(200).result(WAIT_MS / 1000)
    settle(qtbot, win, lambda s: s.step == 200)
    sent, overlapping = [], []
    go_to = win.service().go_to

    def one_at_a_time(step):
        overlapping.extend(f for f in sent if not f.done())
        sent.append(go_to(step))
        sent[-1].step = step
        return sent[-1]

    win.service().go_to = one_at_a_time
    drag = list(range(200, 40, -7))
    for step in drag:
        win.timeline.slider.setValue(step)
    snap = settle(qtbot, win, lambda s: s.step == drag[-1] and win.timeline._busy is None)
    assert snap.theta.tobytes() == bare_theta(drag[-1]).model.theta.tobytes()
    assert sent[0].step == 200 - 7 and sent[-1].step == drag[-1] and not overlapping


def test_an_edit_after_going_back_forks_the_run(window, qtbot, monkeypatch):
    win = window()
    win.service().run(100).result(WAIT_MS / 1000)
    settle(qtbot, win, lambda s: s.step == 100)
    win.timeline.slider.setValue(40)
    settle(qtbot, win, lambda s: s.step == 40)
    monkeypatch.setattr(QtWidgets.QInputDialog, "getDouble", lambda *a: (1.5, True))
    edge = win.network.edges[0]
    win.edit_value(edge.key, edge.index)
    assert win.timeline.slider.maximum() == 40
    win.service().run(20).result(WAIT_MS / 1000)
    snap = settle(qtbot, win, lambda s: s.step == 60)
    forked = bare_theta(40, (edge.key, edge.index, 1.5))
    forked.run_steps(20)
    assert snap.theta.tobytes() == forked.model.theta.tobytes()
    assert snap.theta.tobytes() != bare_theta(60).model.theta.tobytes()
    assert win.timeline.slider.maximum() == 60
