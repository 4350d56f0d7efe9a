"""Dropout and batch normalization compute PyTorch's values, not just the right shapes: forward,
backward, running statistics and evaluation mode, in float64 from the same inputs."""

import numpy as np
import pytest

from tests.experiments import single_layer

torch = pytest.importorskip("torch")  # in CI a skip fails the run (tests/conftest.py)


def rng_of(seed):
    return np.random.default_rng(seed)


def build(name, input_shape, seed=0, **hp):
    return single_layer(name, input_shape, seed, "zeros", **hp)


# ---------------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_scales_the_kept_units_as_pytorch_does(rate):
    """Training mode: a unit is 0 or x / (1 − p); PyTorch's factor, read from its own output."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 50)) + 3.0  # no exact zeros, so a zero output means dropped
    layer = build("dropout", (50,), rate=rate)
    y = layer.forward(x, training=True, rng=rng_of(5))
    kept = y != 0
    torch_y = torch.nn.functional.dropout(torch.ones(10_000, dtype=torch.float64), p=rate)
    factor = float(torch_y.max())  # every kept unit of PyTorch's ones is 1 / (1 - p)
    assert factor == pytest.approx(1.0 / (1.0 - rate), rel=1e-15)
    assert np.array_equal(y[kept], x[kept] * factor)
    # the dropped fraction is p, within 5 standard deviations of a Bernoulli count
    n = x.size
    assert abs((~kept).sum() - rate * n) < 5 * np.sqrt(n * rate * (1 - rate))
    # the gradient passes through the same mask, with the same factor
    dy = rng.normal(size=x.shape)
    dx = layer.backward(dy)
    assert np.array_equal(dx[kept], dy[kept] * factor)
    assert np.all(dx[~kept] == 0)


def test_dropout_keeps_the_expected_value_and_is_the_identity_in_evaluation():
    x = np.full((2000, 100), 2.0)
    layer = build("dropout", (100,), rate=0.3)
    assert layer.forward(x, training=True, rng=rng_of(6)).mean() == pytest.approx(2.0, rel=0.01)
    assert np.array_equal(layer.forward(x, training=False), x)
    assert np.array_equal(layer.backward(x), x)


# ---------------------------------------------------------------------------- batch norm


def torch_batch_norm(momentum, eps, gamma, beta, module=None):
    module = module or torch.nn.BatchNorm1d
    bn = module(len(gamma), momentum=momentum, eps=eps, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
    return bn


def same_step(layer, bn, x, dy, training):
    """One forward and backward of ours and of PyTorch's batch norm: the same outputs and
    gradients (the parameter gradients summed over the batch, so 1e-11 relative)."""
    y = layer.forward(x, training=training)
    dx = layer.backward(dy)
    bn.train(training)
    xt = torch.from_numpy(x).requires_grad_()
    yt = bn(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["gamma"], bn.weight.grad.numpy(), rtol=1e-11)
    np.testing.assert_allclose(layer.grads["beta"], bn.bias.grad.numpy(), rtol=1e-11)
    bn.zero_grad()


@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_batch_norm_training_steps_match_pytorch(momentum):
    """Five training batches: outputs, input and parameter gradients, running statistics."""
    rng = np.random.default_rng(2)
    features, eps = 4, 1e-5
    layer = build("batch_norm", (features,), momentum=momentum, eps=eps)
    gamma, beta = rng.normal(size=features), rng.normal(size=features)
    layer.params["gamma"][...] = gamma
    layer.params["beta"][...] = beta
    bn = torch_batch_norm(momentum, eps, gamma, beta)
    bn.train()
    for batch in range(5):
        x = rng.normal(loc=batch, scale=1 + batch, size=(16, features))
        dy = rng.normal(size=x.shape)
        same_step(layer, bn, x, dy, training=True)
        running_mean = bn.running_mean.numpy()
        running_var = bn.running_var.numpy()
        np.testing.assert_allclose(layer.state["running_mean"], running_mean, rtol=1e-14)
        np.testing.assert_allclose(layer.state["running_var"], running_var, rtol=1e-14)


def test_batch_norm_evaluation_uses_the_running_statistics_as_pytorch():
    rng = np.random.default_rng(3)
    features = 3
    layer = build("batch_norm", (features,))
    gamma, beta = rng.normal(size=features), rng.normal(size=features)
    layer.params["gamma"][...] = gamma
    layer.params["beta"][...] = beta
    bn = torch_batch_norm(0.1, 1e-5, gamma, beta)
    for _ in range(3):
        x = rng.normal(loc=2.0, scale=3.0, size=(8, features))
        layer.forward(x, training=True)
        bn.train()
        bn(torch.from_numpy(x))
    x = rng.normal(size=(5, features))
    dy = rng.normal(size=x.shape)
    running = {k: layer.state[k].copy() for k in ("running_mean", "running_var")}
    y = layer.forward(x, training=False)
    dx = layer.backward(dy)
    bn.eval()
    xt = torch.from_numpy(x).requires_grad_()
    yt = bn(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    # evaluation leaves the running statistics alone
    for key, before in running.items():
        assert np.array_equal(layer.state[key], before), key


def test_batch_norm_on_images_normalizes_each_channel_as_batchnorm2d():
    """Channels-first images (C, H, W): one mean and variance per channel over the batch and
    both image axes, in training and at evaluation."""
    rng = np.random.default_rng(4)
    channels = 3
    layer = build("batch_norm", (channels, 5, 4), momentum=0.2)
    gamma, beta = rng.normal(size=channels), rng.normal(size=channels)
    layer.params["gamma"][...] = gamma
    layer.params["beta"][...] = beta
    bn = torch_batch_norm(0.2, 1e-5, gamma, beta, torch.nn.BatchNorm2d)
    for training in (True, True, False):
        x = rng.normal(loc=1.0, scale=2.0, size=(6, channels, 5, 4))
        same_step(layer, bn, x, rng.normal(size=x.shape), training)
        np.testing.assert_allclose(layer.state["running_var"], bn.running_var.numpy(), rtol=1e-14)
