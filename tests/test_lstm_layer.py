"""The LSTM layer computes PyTorch's values: forward, backpropagation through time and whole
training runs, in float64 from the same weights; its compiled time loop agrees with the plain
NumPy one; and it builds, checks and trains like any other layer."""

import numpy as np
import pytest

from gradient_lab.engine.loading.conformance import check_plugin
from gradient_lab.engine.loading.discovery import default_registry
from gradient_lab.engine.model.model import Model
from gradient_lab.engine.model.single import SingleLayer
from gradient_lab.engine.plugin_api import Dataset, Initializer, Param, PluginError
from gradient_lab.engine.testing import registry_with
from gradient_lab.plugins import recurrent
from tests.experiments import dense, small_session

torch = pytest.importorskip("torch")  # in CI a skip fails the run (tests/conftest.py)

PARITY_RTOL = 1e-11  # one forward and backward against PyTorch
TRAINING_RTOL = 1e-10  # losses and weights after a training run against PyTorch's
KERNEL_RTOL = 1e-12  # the compiled time loop against the NumPy one


def assert_close(actual, expected, rtol, what=""):
    """Element by element within rtol, or within rtol of the largest magnitude (an element
    near zero is held to the precision of the whole array, not to its own)."""
    expected = np.asarray(expected)
    atol = rtol * float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def build(input_shape, seed=0, registry=None, dtype=np.float64, init="xavier_uniform", **hp):
    registry = registry or default_registry()
    return SingleLayer(
        registry.create("layer", "lstm", **hp),
        input_shape,
        registry.create,
        registry.create("initializer", init),
        np.random.default_rng(seed),
        dtype,
    )


def torch_lstm(w_ih, w_hh, b_ih, b_hh):
    """PyTorch's LSTM with our weights: its weight_ih_l0 (4H, F) is our W_ih (F, 4H) transposed,
    and its two biases add up to our one."""
    features, four = w_ih.shape
    lstm = torch.nn.LSTM(features, four // 4, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(w_ih.T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(w_hh.T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(b_ih))
        lstm.bias_hh_l0.copy_(torch.from_numpy(b_hh))
    return lstm


def random_weights(layer, rng, scale=0.6):
    """Weights larger than the initializer's, so the gates leave their linear range; returns
    PyTorch's two biases, whose sum is written to ours."""
    p = layer.params
    p["W_ih"][...] = rng.normal(scale=scale, size=p["W_ih"].shape)
    p["W_hh"][...] = rng.normal(scale=scale, size=p["W_hh"].shape)
    b_ih, b_hh = rng.normal(scale=0.5, size=(2, p["b"].size))
    p["b"][...] = b_ih + b_hh
    return b_ih, b_hh


def torch_gates(lstm, x, out):
    """i, f, g, o at every step, recomputed from PyTorch's weights and hidden states."""
    h_prev = torch.cat([torch.zeros_like(out[:, :1]), out[:, :-1]], dim=1)
    pre = x @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h_prev @ lstm.weight_hh_l0.T + lstm.bias_hh_l0
    i, f, g, o = pre.chunk(4, dim=-1)
    return torch.cat([torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)], -1)


# ------------------------------------------------------------------ one pass against PyTorch

SHAPES = [(3, 5, 2, 4), (1, 1, 3, 2), (6, 12, 4, 7)]  # (B, T, F, H)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-T{}-F{}-H{}".format(*s))
def test_forward_and_backward_through_time_match_pytorch(shape):
    """Every hidden state and, from an upstream gradient on every step's output, dL/dx and the
    gradients of both weight matrices and the bias (PyTorch's two bias gradients are equal,
    each the gradient of their sum)."""
    batch, steps, features, units = shape
    rng = np.random.default_rng(sum(shape))
    layer = build((steps, features), units=units)
    b_ih, b_hh = random_weights(layer, rng)
    x = rng.normal(size=(batch, steps, features))
    dy = rng.normal(size=(batch, steps, units))
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)

    lstm = torch_lstm(layer.params["W_ih"], layer.params["W_hh"], b_ih, b_hh)
    xt = torch.from_numpy(x).requires_grad_()
    out, (h_n, c_n) = lstm(xt)
    out.backward(torch.from_numpy(dy))
    assert_close(y, out.detach().numpy(), PARITY_RTOL)
    assert_close(dx, xt.grad.numpy(), PARITY_RTOL)
    assert_close(layer.grads["W_ih"], lstm.weight_ih_l0.grad.numpy().T, PARITY_RTOL)
    assert_close(layer.grads["W_hh"], lstm.weight_hh_l0.grad.numpy().T, PARITY_RTOL)
    assert_close(layer.grads["b"], lstm.bias_ih_l0.grad.numpy(), PARITY_RTOL)
    assert_close(layer.grads["b"], lstm.bias_hh_l0.grad.numpy(), PARITY_RTOL)

    # what the viewer is shown: hidden and cell states at every step, and the four gates
    seen = layer.last_call.observed
    assert seen["hidden"].shape == seen["cell"].shape == (batch, steps, units)
    assert seen["gates"].shape == (batch, steps, 4 * units)
    assert_close(seen["hidden"], out.detach().numpy(), PARITY_RTOL)
    assert_close(seen["hidden"][:, -1], h_n[0].detach().numpy(), PARITY_RTOL)
    assert_close(seen["cell"][:, -1], c_n[0].detach().numpy(), PARITY_RTOL)
    with torch.no_grad():
        gates = torch_gates(lstm, xt, out).numpy()
    assert_close(seen["gates"], gates, PARITY_RTOL)


@pytest.mark.parametrize("shape", SHAPES[::2], ids=lambda s: "B{}-T{}-F{}-H{}".format(*s))
def test_the_last_hidden_state_alone_matches_pytorch(shape):
    """return_sequences = false: the output is h_T (B, H) and the gradient enters at the last
    step only, as PyTorch's out[:, -1] (its h_n)."""
    batch, steps, features, units = shape
    rng = np.random.default_rng(sum(shape) + 1)
    layer = build((steps, features), units=units, return_sequences=False)
    assert layer.output_shape() == (units,)
    b_ih, b_hh = random_weights(layer, rng)
    x = rng.normal(size=(batch, steps, features))
    dy = rng.normal(size=(batch, units))
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)

    lstm = torch_lstm(layer.params["W_ih"], layer.params["W_hh"], b_ih, b_hh)
    xt = torch.from_numpy(x).requires_grad_()
    out, (h_n, _) = lstm(xt)
    out[:, -1].backward(torch.from_numpy(dy))
    assert y.shape == (batch, units)
    assert_close(y, h_n[0].detach().numpy(), PARITY_RTOL)
    assert_close(dx, xt.grad.numpy(), PARITY_RTOL)
    assert_close(layer.grads["W_ih"], lstm.weight_ih_l0.grad.numpy().T, PARITY_RTOL)
    assert_close(layer.grads["W_hh"], lstm.weight_hh_l0.grad.numpy().T, PARITY_RTOL)
    assert_close(layer.grads["b"], lstm.bias_ih_l0.grad.numpy(), PARITY_RTOL)
    assert layer.last_call.observed["hidden"].shape == (batch, steps, units)


# ------------------------------------------------------------------ training against PyTorch

BATCH, STEPS, FEATURES, UNITS, OUTPUTS = 8, 7, 2, 5, 2
TRAINING_STEPS = 20


def sequence_task(rng):
    """Per-step targets of two memory tasks: a scaled running sum of the first input and the
    second input delayed by two steps (0 before it arrives); a fresh batch for every step."""
    x = rng.normal(size=(TRAINING_STEPS, BATCH, STEPS, FEATURES))
    running = 0.3 * np.cumsum(x[..., 0], axis=-1)
    delayed = np.zeros_like(x[..., 1])
    delayed[..., 2:] = x[..., :-2, 1]
    return x, np.stack([running, delayed], axis=-1)


def loss_and_gradient(layer, loss, theta, x, target):
    """MSE of a dense readout applied at every step (y_t = h_t V + c) over (batch, T, outputs),
    and its gradient in theta = [the LSTM's own theta, V, c]."""
    n = layer.theta.size
    v = theta[n : n + UNITS * OUTPUTS].reshape(UNITS, OUTPUTS)
    c = theta[n + UNITS * OUTPUTS :]
    h = layer.forward(x, training=True, theta=theta[:n])
    pred = h @ v + c
    # the loss plugin takes (rows, outputs): every (sample, step) is a row, mean over all
    flat_pred, flat_target = pred.reshape(-1, OUTPUTS), target.reshape(-1, OUTPUTS)
    value = loss.value(flat_pred, flat_target)
    dpred = loss.grad(flat_pred, flat_target).reshape(pred.shape)
    dh = dpred @ v.T
    dv = h.reshape(-1, UNITS).T @ dpred.reshape(-1, OUTPUTS)
    layer.backward(dh)
    return value, np.concatenate([layer.grad, dv.ravel(), dpred.sum(axis=(0, 1))])


@pytest.mark.parametrize(
    "optimizer, hp",
    [("sgd", {"lr": 0.3}), ("sgd", {"lr": 0.1, "momentum": 0.9}), ("adam", {"lr": 0.02})],
    ids=["sgd", "sgd-momentum", "adam"],
)
def test_a_training_run_with_per_step_targets_matches_pytorch(optimizer, hp):
    """20 steps from the same weights on the same batches: our optimizer plugin on the flat
    theta of the LSTM (a SingleLayer) plus the readout's V and c, against torch.optim on
    nn.LSTM and nn.Linear. PyTorch's second bias is held at zero: trained, its two biases would
    move their sum twice as far per step as our one bias."""
    registry = default_registry()
    rng = np.random.default_rng(21)
    layer = build((STEPS, FEATURES), seed=5, units=UNITS)
    v = rng.normal(scale=0.5, size=(UNITS, OUTPUTS))
    c = rng.normal(scale=0.1, size=OUTPUTS)
    theta = np.concatenate([layer.theta, v.ravel(), c])
    opt = registry.create("optimizer", optimizer, **hp)
    state = opt.init(theta)
    loss = registry.create("loss", "mse")

    p = layer.params
    lstm = torch_lstm(p["W_ih"], p["W_hh"], p["b"].copy(), np.zeros(p["b"].size))
    lstm.bias_hh_l0.requires_grad_(False)
    readout = torch.nn.Linear(UNITS, OUTPUTS, dtype=torch.float64)
    with torch.no_grad():
        readout.weight.copy_(torch.from_numpy(v.T.copy()))
        readout.bias.copy_(torch.from_numpy(c))
    trained = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, *readout.parameters()]
    torch_opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer](trained, **hp)

    xs, targets = sequence_task(np.random.default_rng(22))
    ours, theirs = [], []
    for x, target in zip(xs, targets, strict=True):
        value, grad = loss_and_gradient(layer, loss, theta, x, target)
        update, state = opt.update(grad, state, theta)
        theta += update
        ours.append(value)

        torch_opt.zero_grad()
        out, _ = lstm(torch.from_numpy(x))
        torch_loss = torch.nn.functional.mse_loss(readout(out), torch.from_numpy(target))
        torch_loss.backward()
        torch_opt.step()
        theirs.append(torch_loss.item())

    assert_close(ours, theirs, TRAINING_RTOL)
    assert ours[-1] < 0.8 * ours[0]  # it learns something, so the comparison means something
    layer.theta[...] = theta[: layer.theta.size]
    n = layer.theta.size
    final = {
        "W_ih": (p["W_ih"], lstm.weight_ih_l0.T),
        "W_hh": (p["W_hh"], lstm.weight_hh_l0.T),
        "b": (p["b"], lstm.bias_ih_l0),
        "V": (theta[n : n + UNITS * OUTPUTS].reshape(UNITS, OUTPUTS), readout.weight.T),
        "c": (theta[n + UNITS * OUTPUTS :], readout.bias),
    }
    for name, (mine, torch_value) in final.items():
        assert_close(mine, torch_value.detach().numpy(), TRAINING_RTOL, name)


# ------------------------------------------------------------------ the compiled time loop


@pytest.mark.parametrize(
    "shape", [*SHAPES, (4, 30, 3, 16)], ids=lambda s: "B{}-T{}-F{}-H{}".format(*s)
)
@pytest.mark.parametrize("scale", [0.3, 5.0], ids=["linear-range", "saturated"])
def test_the_compiled_time_loop_matches_the_numpy_one(shape, scale):
    """Forward and backward, with the gates in their linear range and saturated. The recurrent
    weights stay small: with large ones the recurrence is chaotic and any two summation orders
    drift apart step after step, however exact each step is."""
    batch, steps, _, units = shape
    rng = np.random.default_rng(sum(shape))
    xw = rng.normal(scale=scale, size=(batch, steps, 4 * units))
    w_hh = rng.normal(scale=0.5 / np.sqrt(units), size=(units, 4 * units))
    expected = recurrent.lstm_steps_numpy(xw, w_hh)
    compiled = [np.empty_like(a) for a in expected]
    recurrent.lstm_steps(xw, w_hh, *compiled)
    names = ("gates", "cells", "hidden", "tanh cells")
    for name, mine, reference in zip(names, compiled, expected, strict=True):
        assert_close(mine, reference, KERNEL_RTOL, name)

    gates, cells, _, tanh_cells = expected
    dhidden = rng.normal(size=(batch, steps, units))
    reference = recurrent.lstm_steps_backward_numpy(dhidden, gates, cells, tanh_cells, w_hh)
    dgates = np.empty_like(gates)
    recurrent.lstm_steps_backward(
        dhidden, gates, cells, tanh_cells, np.ascontiguousarray(w_hh.T), dgates
    )
    assert_close(dgates, reference, KERNEL_RTOL)


def test_the_compiled_gate_functions_match_numpy_s():
    """sigma and tanh as the kernels compute them, to a few units in the last place, from tiny
    arguments (no cancellation) to saturation; NaN stays NaN so divergence shows."""
    x = np.concatenate([np.linspace(-30.0, 30.0, 60_001), np.geomspace(1e-300, 1e-3, 200), [0.0]])
    x = np.concatenate([x, -x])
    sigmoid = 1.0 / (1.0 + np.exp(-x))
    np.testing.assert_allclose(recurrent.gate_functions(x, 0), sigmoid, rtol=2e-15, atol=0)
    np.testing.assert_allclose(recurrent.gate_functions(x, 1), np.tanh(x), rtol=2e-15, atol=0)
    # far out, sigma(-|x|) stays at sigma(-80) = 1.8e-35 instead of going on to zero
    far = recurrent.gate_functions(np.array([-80.0, -85.0, -1e6]), 0)
    np.testing.assert_allclose(far, 1.0 / (1.0 + np.exp(80.0)), rtol=2e-15)
    special = np.array([np.inf, -np.inf, np.nan])
    assert np.array_equal(recurrent.gate_functions(special, 1), [1.0, -1.0, np.nan], equal_nan=True)
    sig = recurrent.gate_functions(special, 0)
    assert sig[0] == 1.0 and 0.0 <= sig[1] < 1e-34 and np.isnan(sig[2])


def test_a_float32_model_runs_in_float32():
    rng = np.random.default_rng(3)
    wide = build((6, 3), seed=1, units=4)
    narrow = build((6, 3), seed=1, units=4, dtype=np.float32)
    assert narrow.theta.dtype == np.float32
    np.testing.assert_array_equal(narrow.theta, wide.theta.astype(np.float32))
    x, dy = rng.normal(size=(5, 6, 3)), rng.normal(size=(5, 6, 4))
    wide.theta[...] = narrow.theta  # the same weights, exactly
    y = narrow.forward(x.astype(np.float32))
    dx = narrow.backward(dy.astype(np.float32))
    assert y.dtype == dx.dtype == narrow.grad.dtype == np.float32
    np.testing.assert_allclose(y, wide.forward(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, wide.backward(dy), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(narrow.grad, wide.grad, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ the layer in the engine


def test_the_lstm_passes_the_conformance_check():
    report = check_plugin(default_registry().get("layer", "lstm"), default_registry())
    assert report.passed, report.describe(only_failures=True)
    backward = next(i for i in report.items if i.name == "backward vs finite differences")
    assert "3 weight gradients" in backward.message
    shape = next(i for i in report.items if i.name == "output shape")
    assert "input (4, 3) -> output (4, 8)" in shape.message


class RecordingInitializer(Initializer):
    name = "recording"
    formula = r"W = 0.1"
    teaching = "Records the fans it is asked for."

    def __init__(self, **hp):
        super().__init__(**hp)
        self.calls = []

    def sample(self, shape, fan_in, fan_out, rng):
        self.calls.append((tuple(shape), fan_in, fan_out))
        return np.full(shape, 0.1)


def test_weights_fans_initial_bias_and_weight_decay():
    """Each gate's block is drawn as the weight of a dense layer of its own (in W_ih F -> H,
    in W_hh H -> H); the bias is zero but for the forget gate's; weight decay falls on the
    matrices."""
    registry = default_registry()
    init = RecordingInitializer()
    model = Model(
        [{"type": "lstm", "units": 3, "forget_bias": 0.5}],
        (4, 2),
        registry.create,
        init,
        np.random.default_rng(0),
    )
    assert init.calls == [((2, 3), 2, 3)] * 4 + [((3, 3), 3, 3)] * 4
    params = model.get_params()
    assert list(params) == ["layers.0.W_ih", "layers.0.W_hh", "layers.0.b"]
    np.testing.assert_array_equal(params["layers.0.b"], np.repeat([0.0, 0.5, 0.0, 0.0], 3))
    decayed = {s.key: set(np.unique(model.view(model.decay_mask, s))) for s in model.slots}
    assert decayed == {"layers.0.W_ih": {1.0}, "layers.0.W_hh": {1.0}, "layers.0.b": {0.0}}
    assert model.output_shape == (4, 3)


def test_an_orthogonal_initializer_makes_each_gate_s_recurrent_matrix_orthogonal():
    w_hh = build((4, 2), init="orthogonal", units=5).params["W_hh"]
    for gate in range(4):
        block = w_hh[:, 5 * gate : 5 * (gate + 1)]
        np.testing.assert_allclose(block.T @ block, np.eye(5), atol=1e-14)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), (0, 3), (4, 0)])
def test_an_input_that_is_not_a_sequence_is_refused_at_build(shape):
    with pytest.raises(PluginError, match=r"lstm expects sequences of shape \(T, F\) per sample"):
        build(shape)


def test_a_batch_with_the_wrong_features_is_refused():
    layer = build((4, 3), units=2)
    with pytest.raises(PluginError, match=r"lstm expects a batch of sequences \(B, T, 3\), got"):
        layer.forward(np.zeros((2, 4, 5)))
    with pytest.raises(PluginError, match=r"got shape \(2, 12\)"):
        layer.forward(np.zeros((2, 12)))


def test_a_flat_dataset_in_front_of_an_lstm_is_named():
    with pytest.raises(PluginError, match=r"model\.layers\[0\]: lstm expects sequences"):
        small_session(['{ type = "lstm", units = 3 }', dense(1)], dataset="circle")


class SequenceSums(Dataset):
    """Sequences of numbers; the target is their sum, read after the last step."""

    name = "sequence_sums"
    task = "regression"
    params = (
        Param("n", "int", 96, "number of sequences", low=1),
        Param("steps", "int", 6, "time steps per sequence", low=1),
    )
    formula = r"y = \tfrac{1}{2} \sum_t x_t,\quad x_t \sim \mathcal{N}(0, 1)"
    teaching = "A memory task: the network must add up what it has seen."

    def generate(self, rng):
        x = rng.normal(size=(self.hp["n"], self.hp["steps"], 1))
        return x, 0.5 * x.sum(axis=1)


def test_a_session_trains_an_lstm_and_shows_its_states_step_by_step():
    """An LSTM reading whole sequences, a dense layer on its last hidden state: the session
    runs it phase by phase and shows every step's hidden state, and the loss goes down."""
    registry = registry_with(SequenceSums)
    session = small_session(
        ['{ type = "lstm", units = 6, return_sequences = false }', dense(1, "linear")],
        dataset="sequence_sums",
        data="n = 96",
        registry=registry,
        batch_size=16,
        optimizer='{ name = "adam", lr = 0.02 }',
    )
    assert session.fused is None
    while session.next_phase != "forward 1":  # the LSTM (layer 0) has run its forward
        session.step_phase()
    values = session.layer_values(0)
    assert values["input"].shape == (16, 6, 1)
    assert values["hidden"].shape == values["cell"].shape == (16, 6, 6)
    assert values["gates"].shape == (16, 6, 24)
    np.testing.assert_array_equal(values["activation"], values["hidden"][:, -1])
    first = session.evaluate("train")["loss"]
    session.run_steps(150)
    assert session.evaluate("train")["loss"] < 0.3 * first
