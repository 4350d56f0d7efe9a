"""A loss, a metric or an optimizer that does not suit the targets is refused before training,
naming the field, instead of training to a meaningless number (bce falling below zero on
regression targets, cross_entropy at 0.0 on one output every step)."""

import numpy as np
import pytest

from gradient_lab.engine.training.checks import check_session
from gradient_lab.engine.training.experiment import ExperimentError, parse_experiment
from gradient_lab.engine.training.session import Session
from tests.experiments import dense, experiment_text

SINE = dict(dataset="sine", data="n = 40", layers=[dense(4), dense(1, "linear")])
CIRCLE = dict(dataset="circle", data="n = 40", layers=[dense(4), dense(1)])


def refused(**choices):
    """The ExperimentError of building and checking a session of these choices."""
    with pytest.raises(ExperimentError) as info:
        check_session(Session(parse_experiment(experiment_text(**choices))))
    return info.value


@pytest.mark.parametrize(
    ("choices", "field", "needles"),
    [
        (
            dict(SINE, loss="bce", layers=[dense(4), dense(1, "sigmoid")]),
            "training.loss",
            ["'bce' is not allowed", "targets in [0, 1]", "regression targets from"],
        ),
        (
            dict(SINE, loss="cross_entropy"),
            "training.loss",
            ["'cross_entropy' is not allowed", "needs class labels", "'sine'", "e.g. mse"],
        ),
        (dict(SINE, loss="hinge"), "training.loss", ["'hinge' is not allowed"]),
        (
            dict(CIRCLE, metrics=["accuracy", "r2"]),
            "training.metrics[1]",
            ["'r2' is not allowed", "regression metric", "class labels", "accuracy"],
        ),
        (
            dict(SINE, metrics=["mse", "f1"]),
            "training.metrics[1]",
            ["'f1' is not allowed", "classification metric", "expected one of: mae, mse, r2"],
        ),
        (
            dict(CIRCLE, layers=[dense(4), dense(3)]),
            "model.layers[1].units",
            ["units = 3 is not allowed", "expected units = 1"],
        ),
        (
            dict(CIRCLE, layers=[dense(4), dense(1, "linear")], loss="cross_entropy"),
            "model.layers[1].units",
            ["units = 1 is not allowed", "cross_entropy on 2 classes needs 2"],
        ),
        (
            dict(SINE, layers=[dense(4), dense(2, "linear"), '{ type = "dropout", rate = 0.1 }']),
            "model.layers[1].units",
            ["units = 2 is not allowed", "1 regression target(s) needs 1"],
        ),
        (
            dict(
                CIRCLE,
                layers=[dense(2, "linear")],
                loss="cross_entropy",
                optimizer="levenberg_marquardt",
            ),
            "training.optimizer",
            ["'levenberg_marquardt' is not allowed with training.loss = 'cross_entropy'"],
        ),
    ],
    ids=[
        "bce on regression",
        "cross_entropy on one regression output",
        "hinge on regression",
        "r2 on class labels",
        "f1 on regression",
        "too many outputs",
        "cross_entropy with one output",
        "width before a dropout layer",
        "levenberg_marquardt without residuals",
    ],
)
def test_a_mismatch_with_the_targets_names_the_field(choices, field, needles):
    error = refused(**choices)
    assert error.field == field and str(error).startswith(field)
    for needle in needles:
        assert needle in str(error)


def test_bce_on_regression_targets_in_0_1_passes(tmp_path):
    rows = "".join(f"{i},{i / 19}\n" for i in range(20))
    (tmp_path / "p.csv").write_text("x,p\n" + rows)
    data = f'path = "{tmp_path / "p.csv"}"\ntask = "regression"'
    choices = dict(dataset="csv", data=data, layers=[dense(4), dense(1, "sigmoid")], loss="bce")
    check_session(Session(parse_experiment(experiment_text(**choices))))


@pytest.mark.parametrize(
    "choices",
    [
        dict(CIRCLE, loss="bce", layers=[dense(4), dense(1, "sigmoid")], metrics=["roc_auc"]),
        dict(SINE, metrics=["r2", "mae"]),
    ],
    ids=["bce on classes", "regression metrics"],
)
def test_what_suits_the_targets_passes(choices):
    check_session(Session(parse_experiment(experiment_text(**choices))))


def test_a_loss_on_logits_splits_the_classes_at_zero():
    """bce_with_logits trains raw scores: a score of 0.3 is class 1 (sigmoid 0.57), not class 0
    as halfway between the 0/1 targets would say; and "auto" adds no sigmoid before it."""
    choices = dict(CIRCLE, loss="bce_with_logits", layers=[dense(4), dense(1, "linear")])
    coding = Session(parse_experiment(experiment_text(**choices))).coding
    labels, _ = coding.decode(np.array([[-0.3], [0.3], [0.7]]))
    assert labels.tolist() == [0, 1, 1]
    mlp = Session(
        parse_experiment(
            experiment_text(
                dataset="circle", data="n = 40", architecture="mlp", loss="bce_with_logits"
            )
        )
    )
    assert mlp.model.output_activation() == "linear"
