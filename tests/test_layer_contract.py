"""The layer contract of plugin API 3: pure layers, per-call records, children by path, loss
terms of layers, and batch sizes a layer refuses."""

import numpy as np
import pytest

from gradient_lab.engine.loading.conformance import check_plugin
from gradient_lab.engine.model.calls import Runner
from gradient_lab.engine.plugin_api import Layer, Param
from gradient_lab.engine.testing import registry_with
from gradient_lab.engine.training.session import SessionError
from tests.experiments import central_differences, dense, single_layer, small_session

# a batch-norm network runs on the plugin path, phase by phase through the layers' own code
PLUGIN_PATH = [dense(6, "tanh"), '{ type = "batch_norm" }', dense(1, "tanh")]


def single(name, input_shape, seed=0, **hp):
    return single_layer(name, input_shape, seed, "xavier_uniform", **hp)


# ------------------------------------------------------------------- probes between phases


@pytest.mark.parametrize("probe_after", ["forward 1", "loss", "backward 1"])
def test_a_probe_between_two_phases_leaves_the_step_as_it_would_be(probe_after):
    """Before API 3, predict between forward and backward overwrote the layers' caches and
    the next backward failed (or silently used the probe's batch)."""
    plain = small_session(PLUGIN_PATH, dataset="circle")
    probed = small_session(PLUGIN_PATH, dataset="circle")
    assert plain.fused is None
    grid = np.random.default_rng(0).normal(size=(37, 2))
    plain.step_batch()
    while probed.next_phase != probe_after:
        probed.step_phase()
    before = probed.layer_values(1)
    probed.predict(grid)
    probed.evaluate("val")
    for key, value in before.items():
        assert np.array_equal(probed.layer_values(1)[key], value), key
    probed.step_batch()
    assert probed.model.theta.tobytes() == plain.model.theta.tobytes()
    for key, value in plain.model.state_arrays().items():
        assert np.array_equal(probed.model.state_arrays()[key], value), key


def test_the_same_layer_can_run_twice_before_its_backwards():
    """A GAN's discriminator sees real, then generated samples, and one backward follows each:
    the gradients add up, each call with its own inputs."""
    layer = single("dense", (3,), units=2, activation="tanh")
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    dy1, dy2 = rng.normal(size=(5, 2)), rng.normal(size=(4, 2))
    separate = []
    for x, dy in ((x1, dy1), (x2, dy2)):
        layer.forward(x, training=True)
        dx = layer.backward(dy)
        separate.append((dx, layer.grad.copy()))
    grad = np.zeros_like(layer.theta)
    runner = Runner(layer.theta, grad, True, None)
    _, first = runner.forward(layer.node, (x1,))
    _, second = runner.forward(layer.node, (x2,))
    dx2 = runner.backward(second, dy2)
    dx1 = runner.backward(first, dy1)
    assert np.array_equal(dx1, separate[0][0])
    assert np.array_equal(dx2, separate[1][0])
    assert np.array_equal(grad, separate[1][1] + separate[0][1])


def test_a_layer_runs_at_any_theta_without_touching_the_model():
    session = small_session(PLUGIN_PATH, dataset="circle")
    session.run_steps(3)
    theta, state = session.model.theta.copy(), session.model.state_arrays()
    state = {k: v.copy() for k, v in state.items()}
    other = theta + 0.1
    x = session.x_train[:7]
    moved = session.model.forward(x, theta=other)
    assert not np.allclose(moved, session.predict(x))
    assert session.model.theta.tobytes() == theta.tobytes()
    for key, value in state.items():
        assert np.array_equal(session.model.state_arrays()[key], value), key


# ------------------------------------------------------------------- composites by path


RESIDUAL = [dense(4, "tanh"), '{ type = "residual", hidden = 3, activation = "relu" }', dense(1)]


def test_a_composite_s_children_are_found_by_path():
    session = small_session(RESIDUAL, dataset="circle")
    model = session.model
    assert model.paths() == ["layers.0", "layers.1", "layers.1.inner", "layers.1.outer", "layers.2"]
    assert model.node("layers.1.inner").layer.name == "dense"
    keys = list(session.parameters())
    assert keys == [
        "layers.0.W",
        "layers.0.b",
        "layers.1.inner.W",
        "layers.1.inner.b",
        "layers.1.outer.W",
        "layers.1.outer.b",
        "layers.2.W",
        "layers.2.b",
    ]
    assert model.node("layers.1.inner").slots["W"].shape == (4, 3)
    with pytest.raises(ValueError, match=r"no layer at 'layers\.1\.attn'"):
        model.node("layers.1.attn")


def test_phase_values_descend_into_a_composite_s_children():
    session = small_session(
        [*RESIDUAL[:2], '{ type = "batch_norm" }', RESIDUAL[2]], dataset="circle"
    )
    assert session.fused is None
    while session.next_phase != "forward 2":
        session.step_phase()
    inner = session.layer_values("layers.1.inner")
    outer = session.layer_values("layers.1.outer")
    x = session.layer_values(1)["input"]
    params = session.parameters()
    z = x @ params["layers.1.inner.W"] + params["layers.1.inner.b"]
    np.testing.assert_allclose(inner["pre_activation"], z, rtol=1e-13)
    np.testing.assert_allclose(inner["activation"], np.maximum(z, 0.0), rtol=1e-13)
    np.testing.assert_allclose(outer["input"], inner["activation"], rtol=0)
    y = x + outer["activation"]
    np.testing.assert_allclose(session.layer_values(1)["activation"], y, rtol=1e-13)


# ------------------------------------------------------------------- loss terms of layers


class ActivityPenalty(Layer):
    """y = x, and a loss term λ·mean(x²) of its own, as a VAE adds its KL divergence."""

    name = "activity_penalty"
    params = (Param("strength", "float", 0.3, "λ", low=0.0),)
    formula = r"y = x, \quad L_{act} = \lambda \overline{x^2}"
    teaching = "Adds a penalty on its input to the loss."

    def forward(self, ctx, p, x):
        ctx.save(x=x)
        ctx.add_loss("activity", self.hp["strength"] * float(np.mean(x * x)))
        return x

    def backward(self, ctx, p, dy):
        x = ctx.saved["x"]
        return dy + self.hp["strength"] * 2.0 * x / x.size, {}


PENALIZED = [dense(5, "tanh"), '{ type = "activity_penalty" }', '{ type = "batch_norm" }', dense(1)]


def test_a_layer_s_loss_term_enters_the_loss_and_its_gradient():
    registry = registry_with(ActivityPenalty)
    assert check_plugin(ActivityPenalty, registry).passed
    session = small_session(PENALIZED, dataset="circle", registry=registry, batch_size=48)
    data_only = small_session(
        [PENALIZED[0], *PENALIZED[2:]], dataset="circle", registry=registry, batch_size=48
    )
    data_only.model.theta[...] = session.model.theta
    loss = session.step_batch()
    data_loss = data_only.step_batch()
    term = session.last_loss_terms["activity"]
    assert term > 0.0
    assert loss == pytest.approx(data_loss + term, rel=1e-12)
    # one SGD step moved theta by -lr times the gradient of data loss + term
    assert not np.allclose(session.model.theta, data_only.model.theta)


def test_the_gradient_of_a_loss_term_matches_differences():
    registry = registry_with(ActivityPenalty)
    session = small_session(PENALIZED, dataset="circle", registry=registry, batch_size=48)
    model, x = session.model, session.x_train[:48]
    t = session.targets_train[:48]

    def total(theta):
        pred, calls = model.trace(x, training=False, theta=theta)
        penalty = sum(c.losses.get("activity", 0.0) for c in calls)
        return float(session.loss.value(pred, t)) + penalty

    pred, calls = model.trace(x, training=False)
    grad = np.zeros_like(model.theta)
    model.backward(calls, session.loss.grad(pred, t), grad)
    numeric = central_differences(total, model.theta.copy())
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------- purity is checked


class KeepsItsInput(Layer):
    name = "keeps_its_input"
    formula = r"y = x^2"
    teaching = "Right derivative, but keeps the input on the layer object between calls."

    def forward(self, ctx, p, x):
        self.x = x
        return x * x

    def backward(self, ctx, p, dy):
        return 2.0 * dy * self.x, {}


def test_the_check_rejects_a_layer_that_keeps_state_on_itself():
    report = check_plugin(KeepsItsInput, registry_with(KeepsItsInput))
    [pure] = [i for i in report.items if i.name == "pure"]
    assert not pure.passed
    assert "changed the layer's attribute 'keeps_its_input.x'" in pure.message
    assert not report.passed


# ------------------------------------------------------------------- batch sizes refused


@pytest.mark.parametrize("batch_size, smallest", [(1, 1), (47, 1)])
def test_batch_norm_refuses_a_training_batch_of_one(batch_size, smallest):
    """PyTorch raises 'Expected more than 1 value per channel when training'; here the session
    refuses at build, naming the field, instead of training on zero variance."""
    with pytest.raises(SessionError) as caught:
        small_session(PLUGIN_PATH, dataset="circle", data="n = 60", batch_size=batch_size)
    message = str(caught.value)
    assert message.startswith(f"training.batch_size = {batch_size}: layers.1 (batch_norm)")
    assert f"gives a batch of {smallest} (48 training samples)" in message


# ------------------------------------------------------------------- stepping into children

STEPPED = [dense(4, "tanh"), RESIDUAL[1], '{ type = "batch_norm" }', dense(1)]


def test_phases_descend_into_a_composite_in_the_order_its_code_calls_its_children():
    session = small_session(STEPPED, dataset="circle")
    names = session.phase_names
    start = names.index("forward 1.inner")
    assert names[start : start + 3] == ["forward 1.inner", "forward 1.outer", "forward 1"]
    start = names.index("backward 1.outer")
    assert names[start : start + 3] == ["backward 1.outer", "backward 1.inner", "backward 1"]


def test_a_composite_really_stops_between_its_children():
    """After the inner child's phase the outer child has not run: a weight changed then is the
    weight the outer child uses, as a teacher editing between two phases expects."""
    session = small_session(STEPPED, dataset="circle")
    while session.next_phase != "forward 1.outer":
        session.step_phase()
    assert session.layer_values("layers.1.inner")
    assert session.layer_values("layers.1.outer") == {}
    outer = session.model.node("layers.1.outer").slots["W"]
    session.model.view(session.model.theta, outer)[0, 0] += 0.5
    session.step_phase()
    values = session.layer_values("layers.1.outer")
    params = session.parameters()
    expected = values["input"] @ params["layers.1.outer.W"] + params["layers.1.outer.b"]
    np.testing.assert_allclose(values["activation"], expected, rtol=1e-13)


def test_stepping_through_children_gives_the_same_step_as_running_it():
    phased, whole = (
        small_session(STEPPED, dataset="circle"),
        small_session(STEPPED, dataset="circle"),
    )
    for _ in range(3 * len(phased.phase_names)):
        phased.step_phase()
    whole.run_steps(3)
    assert phased.model.theta.tobytes() == whole.model.theta.tobytes()


def test_rewinding_in_the_middle_of_a_composite_ends_its_helper_thread():
    import threading

    session = small_session(STEPPED, dataset="circle")
    session.run_steps(2)
    expected = session.model.theta.copy()
    threads = threading.active_count()
    while session.next_phase != "backward 1.inner":
        session.step_phase()
    assert threading.active_count() == threads + 1  # the residual's backward is paused
    session.rewind(2)
    assert threading.active_count() == threads
    assert session.model.theta.tobytes() == expected.tobytes()
    session.step_batch()
