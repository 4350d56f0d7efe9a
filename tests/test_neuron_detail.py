"""The step inspector's numbers: one neuron's forward and backward in the step in progress
agree with the closed forms and with the gradient the session itself computed."""

import numpy as np
import pytest

from gradient_lab.engine.service.neuron_detail import neuron_detail
from gradient_lab.engine.service.worker import SessionService
from gradient_lab.engine.training.experiment import parse_experiment
from tests.experiments import dense, experiment_text

WAIT = 120
LAYERS = [dense(5, "tanh"), dense(3, "sigmoid"), dense(1, "linear")]


@pytest.fixture
def service():
    svc = SessionService(
        parse_experiment(
            experiment_text(
                LAYERS, dataset="circle", data="n = 60", loss="bce_with_logits", batch_size=6
            )
        )
    ).start()
    svc.wait_built(WAIT)
    yield svc
    svc.close()


def step_to(svc, phase):
    while svc.snapshot.next_phase != phase:
        svc.step_phase().result(WAIT)
    return svc.snapshot


@pytest.mark.parametrize("layer, unit", [(0, 2), (1, 1), (2, 0)])
def test_a_neuron_s_numbers_match_its_formula_and_the_session_s_gradient(service, layer, unit):
    service.run(4).result(WAIT)
    snap = step_to(service, "update")  # every backward done, weights not yet updated
    d = neuron_detail(snap, layer, unit, sample=3)
    w = snap.parameters()[f"layers.{layer}.W"]
    assert d.batch_size == 6 and np.array_equal(d.weights, w[:, unit])
    assert d.z == pytest.approx(float(d.inputs @ d.weights + d.bias), rel=1e-13, abs=1e-15)
    f = {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "linear": lambda z: z}
    assert d.a == pytest.approx(f[d.activation](d.z), rel=1e-13, abs=1e-15)
    assert d.delta == pytest.approx(d.upstream * d.slope, rel=1e-12, abs=1e-17)
    grads = snap.gradients()
    np.testing.assert_allclose(d.weight_grads, grads[f"layers.{layer}.W"][:, unit], rtol=1e-10)
    assert d.bias_grad == pytest.approx(grads[f"layers.{layer}.b"][unit], rel=1e-10)


def test_the_output_delta_is_the_loss_derivative(service):
    snap = step_to(service, "loss")
    d = neuron_detail(snap, 2, 0, sample=1)
    target = snap.batch_targets[1, 0]
    sigmoid = 1 / (1 + np.exp(-d.z))
    assert d.upstream == pytest.approx((sigmoid - target) / 6, rel=1e-12)


def test_between_steps_there_is_nothing_to_explain(service):
    service.run(2).result(WAIT)
    assert service.snapshot.batch_inputs is None
    with pytest.raises(ValueError, match="no step in progress"):
        neuron_detail(service.snapshot, 0, 0)
