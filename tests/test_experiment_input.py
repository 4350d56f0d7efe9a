"""Experiment files as users write them: a byte-order mark, a CSV path relative to the file's
folder, and input features checked when the file is read, naming the field."""

import numpy as np
import pytest

from gradient_lab.engine.training.experiment import (
    ExperimentError,
    experiment_to_toml,
    load_experiment,
    parse_experiment,
    save_experiment,
)
from gradient_lab.engine.training.session import Session
from tests.experiments import dense, experiment_text

CIRCLE = experiment_text([dense(3), dense(1)], dataset="circle", data="n = 40")
ROWS = "".join(f"{i / 10},{-i / 10},{i % 2}\n" for i in range(30))
CSV = experiment_text(
    [dense(3), dense(1, "sigmoid")], dataset="csv", data='path = "data.csv"', loss="bce"
)


def test_a_byte_order_mark_is_allowed_in_toml_as_in_csv(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_text(CIRCLE, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert load_experiment(path).data.dataset == "circle"
    assert parse_experiment("\ufeff" + CIRCLE).data.dataset == "circle"


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b,label\n" + ROWS)
    (folder / "exp.toml").write_text(CSV)
    return folder


def test_a_relative_csv_path_is_relative_to_the_experiment_file(project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not where the data is
    exp = load_experiment(project / "exp.toml")
    assert exp.data.options["path"] == str(project / "data.csv")
    session = Session(exp)
    assert session.data.n_train + session.data.n_val == 30
    np.testing.assert_array_equal(session.data.X_train.shape, (24, 2))


def test_saving_writes_the_path_as_written_or_relative_to_the_new_folder(project, tmp_path):
    exp = load_experiment(project / "exp.toml")
    assert 'path = "data.csv"' in experiment_to_toml(exp)
    save_experiment(exp, project / "copy.toml")
    assert 'path = "data.csv"' in (project / "copy.toml").read_text()
    (tmp_path / "runs").mkdir()
    save_experiment(exp, tmp_path / "runs" / "exp.toml")
    assert 'path = "../project/data.csv"' in (tmp_path / "runs" / "exp.toml").read_text()
    again = load_experiment(tmp_path / "runs" / "exp.toml")
    assert again.data.options["path"] == str(tmp_path / "runs" / "../project/data.csv")
    assert Session(again).data.n_train == 24


def field_error(text, tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(text)
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    assert str(path) in str(info.value)
    return info.value


@pytest.mark.parametrize(
    ("changes", "field", "needle"),
    [
        (dict(features=["x1", "x3"]), "data.features[1]", "'x3' is not allowed: expected one of"),
        (dict(features=["x1^2", "x1²"]), "data.features[1]", "listed twice"),
        (
            dict(dataset="sine", features=["x1"], layers=[dense(1, "linear")]),
            "data.features",
            "2D playground sets only",
        ),
    ],
    ids=["unknown", "twice", "not a 2D set"],
)
def test_input_feature_mistakes_name_the_file_and_the_field(tmp_path, changes, field, needle):
    options = {"layers": [dense(3), dense(1)], "dataset": "circle", "data": "n = 40", **changes}
    error = field_error(experiment_text(**options), tmp_path)
    assert error.field == field and needle in str(error) and field in str(error)


def test_a_split_without_training_rows_names_the_validation_fraction():
    exp = parse_experiment(
        experiment_text([dense(1)], dataset="circle", data="n = 2", validation=0.9)
    )
    with pytest.raises(ExperimentError) as info:
        Session(exp)
    assert info.value.field == "data.validation_fraction"
    assert "less than 0.75" in str(info.value)
