"""A recorded run (the app's autosave) rebuilds the run it was written from, bit for bit, and a
damaged record names the file and the field instead of recovering something else."""

import json

import pytest

from gradient_lab.engine.training.errors import ExperimentError
from gradient_lab.engine.training.recorded_run import read_recorded_run, write_recorded_run
from gradient_lab.engine.training.session import Session
from tests.experiments import dense, small_session


def trained_with_edits():
    s = small_session([dense(5, "tanh"), dense(1, "tanh")], dataset="circle", data="n = 80")
    s.run_steps(7)
    s.set_weight("layers.1.W", (2, 0), 0.9)
    s.set_hyperparameter("optimizer", "lr", 0.02)
    s.run_steps(12)
    return s


def test_a_recorded_run_replays_to_the_same_weights(tmp_path):
    s = trained_with_edits()
    path = tmp_path / "run.json"
    write_recorded_run(s, path, source="mine.toml", saved_at=1234.5)
    run = read_recorded_run(path)
    assert (run.step, run.source, run.saved_at) == (19, "mine.toml", 1234.5)
    assert run.experiment == s.experiment and run.edits == s.edits.edits
    again = Session(run.experiment)
    again.replay(run.edits, run.step)
    assert again.model.theta.tobytes() == s.model.theta.tobytes()


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda r: r.update(schema=7), "schema: expected 1"),
        (lambda r: r.update(step="x"), "step = 'x'"),
        (lambda r: r.update(edits={}), "edits: expected a list"),
        (lambda r: r["edits"][0].update(kind="paint"), "edits[0].kind = 'paint'"),
        (lambda r: r.update(experiment=r["experiment"].replace("lr = ", "lr = -")), "lr"),
    ],
)
def test_a_damaged_record_names_the_file_and_the_field(tmp_path, change, needle):
    path = tmp_path / "run.json"
    write_recorded_run(trained_with_edits(), path, source="", saved_at=0.0)
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))
    with pytest.raises(ExperimentError) as info:
        read_recorded_run(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_a_truncated_record_is_not_a_run(tmp_path):
    path = tmp_path / "run.json"
    write_recorded_run(trained_with_edits(), path, source="", saved_at=0.0)
    path.write_text(path.read_text()[:40])
    with pytest.raises(ExperimentError, match="not a recorded run"):
        read_recorded_run(path)
