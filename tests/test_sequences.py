"""Sequences through the session: a target at every position, scored and measured per position."""

import numpy as np
import pytest

from gradient_lab.engine.plugin_api import PluginError
from tests.experiments import dense, small_session

SEQUENCE_MODEL = [dense(8, "tanh"), '{ type = "transformer_block", heads = 2 }', dense(4, "linear")]


def copy_session(**options):
    options.setdefault("data", "n = 40\nlength = 5")
    return small_session(
        SEQUENCE_MODEL, dataset="delayed_copy", loss="cross_entropy", validation=0.25, **options
    )


def test_per_position_labels_give_per_position_targets_and_metrics():
    session = copy_session()
    assert session.data.steps == 5 and session.model.output_shape == (5, 4)
    assert session.targets_train.shape == (30, 5, 4)
    out = session.predict(session.data.X_val)
    expected_accuracy = np.mean(out.argmax(axis=-1) == session.data.y_val)
    assert session.evaluate("val", with_loss=False)["accuracy"] == pytest.approx(expected_accuracy)
    shifted = out - out.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_p, session.data.y_val[..., None], axis=-1)
    assert session.evaluate("val")["loss"] == pytest.approx(-picked.mean(), rel=1e-12)


def test_regression_at_every_position():
    session = small_session(
        [dense(6, "tanh"), dense(1, "linear")], dataset="sine_sequence", data="n = 30\nlength = 7"
    )
    assert session.data.steps == 7 and session.targets_train.shape == (24, 7, 1)
    first = session.evaluate("train")["loss"]
    session.run_epochs(20)
    assert session.evaluate("train")["loss"] < first
    metrics = session.evaluate("val", with_loss=False)
    out = session.predict(session.data.X_val).reshape(-1)
    truth = session.data.y_val.reshape(-1)
    assert metrics["mse"] == pytest.approx(np.mean((out - truth) ** 2), rel=1e-12)


def test_a_model_without_per_position_outputs_is_told_what_shape_it_needs():
    layers = ['{ type = "flatten" }', dense(4, "linear")]
    with pytest.raises(PluginError) as caught:
        small_session(layers, dataset="delayed_copy", loss="cross_entropy", data="length = 5")
    message = str(caught.value)
    assert "target at each of 5 positions, which needs (5, 4)" in message
    assert "the model outputs samples of shape (4,)" in message


def test_an_lstm_with_a_readout_at_every_position_learns_the_next_value():
    layers = ['{ type = "lstm", units = 8 }', dense(1, "linear")]
    session = small_session(
        layers,
        dataset="sine_sequence",
        data="n = 64\nlength = 10",
        optimizer='{ name = "adam", lr = 0.02 }',
        batch_size=16,
    )
    assert session.model.output_shape == (10, 1)
    assert session.phase_names[1:3] == ["forward 0", "forward 1"]
    first = session.evaluate("train")["loss"]
    session.run_epochs(30)
    assert session.evaluate("train")["loss"] < 0.3 * first
