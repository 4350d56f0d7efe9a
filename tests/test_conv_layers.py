"""The image layers compute PyTorch's values: conv2d as F.conv2d and max_pool2d as F.max_pool2d,
forward and backward in float64, and a small CNN trains step for step as the same network in
PyTorch started from the same weights on the same batches."""

import dataclasses

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from gradient_lab.engine.loading.conformance import check_plugin
from gradient_lab.engine.loading.discovery import default_registry
from gradient_lab.engine.plugin_api import BuildContext, Initializer, PluginError
from tests.experiments import single_layer, small_session

torch = pytest.importorskip("torch")  # in CI a skip fails the run (tests/conftest.py)
F = torch.nn.functional

RTOL = 1e-12


def build(name, input_shape, seed=0, **hp):
    return single_layer(name, input_shape, seed, "xavier_uniform", **hp)


def assert_close(actual, expected, rtol=RTOL):
    """Equal within rtol of the largest expected magnitude (sums of products cancel, so an
    element near zero carries the rounding of its larger terms)."""
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def tensor(array, grad=False):
    return torch.tensor(np.array(array), dtype=torch.float64, requires_grad=grad)


# ------------------------------------------------------------------------------------ conv2d

TORCH_ACT = {"linear": lambda z: z, "tanh": torch.tanh, "relu": torch.relu}

# (kernel_size, kernel_width, stride, padding, activation, use_bias)
CONV_CASES = [
    (3, 0, 1, 0, "linear", True),
    (3, 0, 2, 1, "tanh", True),
    (2, 3, 1, 1, "linear", False),
    (3, 2, 2, 2, "tanh", True),
    (1, 0, 1, 0, "linear", True),
    (5, 0, 3, 2, "relu", True),
    (4, 1, 2, 0, "tanh", True),
    (2, 0, 2, 0, "linear", True),
]


@pytest.mark.parametrize(
    "kernel_size, kernel_width, stride, padding, activation, use_bias",
    CONV_CASES,
    ids=[f"k{c[0]}x{c[1] or c[0]}-s{c[2]}-p{c[3]}-{c[4]}" for c in CONV_CASES],
)
def test_conv2d_forward_and_backward_match_pytorch(
    kernel_size, kernel_width, stride, padding, activation, use_bias
):
    rng = np.random.default_rng(kernel_size * 100 + stride * 10 + padding)
    layer = build(
        "conv2d",
        (3, 7, 6),
        out_channels=4,
        kernel_size=kernel_size,
        kernel_width=kernel_width,
        stride=stride,
        padding=padding,
        activation=activation,
        use_bias=use_bias,
    )
    if use_bias:
        layer.params["b"][...] = rng.normal(size=4)
    x = rng.normal(size=(5, 3, 7, 6))
    y = layer.forward(x, training=True)
    assert y.shape == (5, *layer.output_shape())
    dy = rng.normal(size=y.shape)
    dx = layer.backward(dy)

    xt, w = tensor(x, True), tensor(layer.params["W"], True)
    b = tensor(layer.params["b"], True) if use_bias else None
    yt = TORCH_ACT[activation](F.conv2d(xt, w, b, stride=stride, padding=padding))
    yt.backward(tensor(dy))
    assert_close(y, yt.detach().numpy())
    assert_close(dx, xt.grad.numpy())
    assert_close(layer.grads["W"], w.grad.numpy())
    if use_bias:
        assert_close(layer.grads["b"], b.grad.numpy())
    else:
        assert "b" not in layer.params


def test_conv2d_weights_are_shaped_and_scaled_as_pytorch_s():
    """W is (out, in, kh, kw) and the initializer gets PyTorch's fans: in·kh·kw and out·kh·kw."""
    seen = []

    class Recording(Initializer):
        name = "recording"

        def sample(self, shape, fan_in, fan_out, rng):
            seen.append((shape, fan_in, fan_out))
            return np.zeros(shape)

    registry = default_registry()
    layer = registry.create("layer", "conv2d", out_channels=5, kernel_size=3, kernel_width=2)
    ctx = BuildContext(np.random.default_rng(0), Recording(), make=registry.create, path="conv")
    layer.build((2, 8, 8), ctx)
    [(shape, fan_in, fan_out)] = seen
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert shape == (5, 2, 3, 2)
    assert (fan_in, fan_out) == expected == (2 * 3 * 2, 5 * 3 * 2)
    assert ctx.weights["b"].shape == (5,)
    assert ctx.trainable == ["W", "b"]


# -------------------------------------------------------------------------------- max_pool2d

# (kernel_size, kernel_width, stride, padding); stride 0 is the kernel size, as PyTorch's None
POOL_CASES = [
    (2, 0, 0, 0),
    (3, 0, 1, 1),
    (3, 0, 2, 1),
    (2, 3, 1, 1),
    (3, 2, 2, 1),
    (2, 0, 3, 0),
    (4, 0, 2, 2),
]


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize(
    "kernel_size, kernel_width, stride, padding",
    POOL_CASES,
    ids=[f"k{c[0]}x{c[1] or c[0]}-s{c[2] or 'k'}-p{c[3]}" for c in POOL_CASES],
)
def test_max_pool2d_forward_and_backward_match_pytorch(
    kernel_size, kernel_width, stride, padding, ties
):
    """With ties (small whole numbers: most windows hold the maximum twice or more) the
    gradient goes where PyTorch sends it; where windows overlap, gradients add up."""
    rng = np.random.default_rng(kernel_size * 100 + stride * 10 + padding)
    layer = build(
        "max_pool2d",
        (3, 7, 6),
        kernel_size=kernel_size,
        kernel_width=kernel_width,
        stride=stride,
        padding=padding,
    )
    shape = (5, 3, 7, 6)
    x = rng.integers(0, 3, size=shape).astype(float) if ties else rng.normal(size=shape)
    y = layer.forward(x, training=True)
    assert y.shape == (5, *layer.output_shape())
    dy = rng.normal(size=y.shape)
    dx = layer.backward(dy)

    kernel = (kernel_size, kernel_width or kernel_size)
    xt = tensor(x, True)
    yt = F.max_pool2d(xt, kernel, stride=stride or kernel, padding=padding)
    yt.backward(tensor(dy))
    assert np.array_equal(y, yt.detach().numpy())
    assert_close(dx, xt.grad.numpy(), rtol=1e-15)


def test_max_pool2d_sends_a_tie_s_gradient_to_the_first_input_in_reading_order():
    """The teaching text's promise, on a 3x3 window holding its maximum three times."""
    x = np.array([[[[0.0, 5.0, 1.0], [5.0, 2.0, 5.0], [1.0, 0.0, 3.0]]]])
    layer = build("max_pool2d", (1, 3, 3), kernel_size=3)
    assert layer.forward(x).item() == 5.0
    dx = layer.backward(np.ones((1, 1, 1, 1)))
    expected = np.zeros_like(x)
    expected[0, 0, 0, 1] = 1.0
    assert np.array_equal(dx, expected)
    xt = tensor(x, True)
    F.max_pool2d(xt, 3).backward(torch.ones(1, 1, 1, 1, dtype=torch.float64))
    assert np.array_equal(xt.grad.numpy(), expected)


def test_max_pool2d_lets_nan_win_as_pytorch():
    """A NaN takes its window and the window's gradient (of several NaNs, the last), as in
    PyTorch's CPU loop."""
    nan = np.nan
    x = np.array([[[[1, nan, 3, nan], [nan, 0, 2, 5], [1, 2, 3, 4], [4, 3, nan, 1]]]])
    layer = build("max_pool2d", (1, 4, 4), kernel_size=2, stride=1)
    y = layer.forward(x)
    dy = np.arange(1.0, 10.0).reshape(y.shape)
    dx = layer.backward(dy)
    xt = tensor(x, True)
    yt = F.max_pool2d(xt, 2, stride=1)
    yt.backward(tensor(dy))
    assert np.array_equal(y, yt.detach().numpy(), equal_nan=True)
    assert np.isnan(y).sum() == 6
    assert np.array_equal(dx, xt.grad.numpy())


@pytest.mark.parametrize("fill", [None, -np.inf], ids=["negative", "minus-infinity"])
def test_max_pool2d_padding_never_wins(fill):
    """-inf padding: a window over the border takes the largest real input, even when every
    real input in it is negative, and its gradient goes to a real input even when they are all
    -inf (to the first, as PyTorch)."""
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    if fill is not None:
        x[...] = fill
    layer = build("max_pool2d", (1, 3, 3), kernel_size=2, stride=2, padding=1)
    y = layer.forward(x)
    dy = np.arange(1.0, 5.0).reshape(y.shape)
    dx = layer.backward(dy)
    xt = tensor(x, True)
    yt = F.max_pool2d(xt, 2, 2, 1)
    yt.backward(tensor(dy))
    assert np.array_equal(y, yt.detach().numpy())
    assert np.array_equal(dx, xt.grad.numpy())
    assert dx.sum() == dy.sum()


# --------------------------------------------------------------------------- refused shapes


@pytest.mark.parametrize("name", ["conv2d", "max_pool2d"])
def test_an_image_layer_on_flat_samples_says_what_it_takes(name):
    with pytest.raises(PluginError) as caught:
        small_session(
            [f'{{ type = "{name}" }}', '{ type = "flatten" }', '{ type = "dense", units = 10 }'],
            dataset="digits",
            data='shape = "flat"',
            loss="cross_entropy",
        )
    message = str(caught.value)
    assert message.startswith(f"model.layers[0]: {name} takes images")
    assert "(channels, height, width), got (64,)" in message
    assert 'shape = "image"' in message


@pytest.mark.parametrize(
    "name, options, field, padded",
    [
        ("conv2d", {"kernel_size": 9}, "kernel_size", "height 8 + 2 * 0 = 8"),
        (
            "conv2d",
            {"kernel_size": 3, "kernel_width": 11, "padding": 1},
            "kernel_width",
            "width 8 + 2 * 1 = 10",
        ),
        ("max_pool2d", {"kernel_size": 9}, "kernel_size", "height 8 + 2 * 0 = 8"),
    ],
)
def test_a_kernel_larger_than_the_padded_image_is_refused_by_name(name, options, field, padded):
    with pytest.raises(PluginError) as caught:
        build(name, (1, 8, 8), **options)
    message = str(caught.value)
    size = options.get(field)
    assert message.startswith(f"{name}.{field} = {size} is not allowed")
    assert f"larger than the padded {padded}" in message
    assert f"allowed: {field} <= " in message


def test_max_pool2d_refuses_padding_beyond_half_the_kernel_as_pytorch():
    with pytest.raises(PluginError, match=r"max_pool2d\.padding = 2 is not allowed.*<= 1"):
        default_registry().create("layer", "max_pool2d", kernel_size=3, padding=2)
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        F.max_pool2d(torch.zeros(1, 1, 8, 8), 3, padding=2)
    default_registry().create("layer", "max_pool2d", kernel_size=3, padding=1)


def test_conv2d_refuses_a_row_wise_activation():
    with pytest.raises(PluginError, match=r"conv2d\.activation = 'softmax' is not allowed"):
        build("conv2d", (1, 8, 8), activation="softmax")


@pytest.mark.parametrize("name", ["conv2d", "max_pool2d"])
def test_a_gradient_of_another_shape_is_refused_before_the_compiled_loops(name):
    layer = build(name, (2, 6, 6))
    y = layer.forward(np.ones((3, 2, 6, 6)))
    with pytest.raises(PluginError, match=rf"{name}: backward got dL/dy shaped \(3, 2, 2, 2\)"):
        layer.backward(np.ones((3, 2, 2, 2)))
    assert y.shape != (3, 2, 2, 2)


# ------------------------------------------------------------------ the conformance check


def with_defaults(cls, **defaults):
    """The plugin class with other defaults: the check builds layers with their defaults."""
    params = tuple(
        dataclasses.replace(p, default=defaults[p.name]) if p.name in defaults else p
        for p in cls.params
    )
    return type(cls.__name__, (cls,), {"params": params})


@pytest.mark.parametrize(
    "name, defaults",
    [
        ("conv2d", {}),
        ("conv2d", {"kernel_size": 2, "kernel_width": 3, "stride": 2, "padding": 1}),
        ("conv2d", {"activation": "tanh", "use_bias": False, "out_channels": 3}),
        ("max_pool2d", {}),
        ("max_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1}),
        ("max_pool2d", {"kernel_size": 2, "kernel_width": 3, "stride": 1}),
    ],
)
def test_the_image_layers_pass_the_conformance_check(name, defaults):
    registry = default_registry()
    cls = with_defaults(registry.get("layer", name), **defaults)
    report = check_plugin(cls, registry)
    # the parameters item tries each bound with the other defaults: with other defaults, a
    # bound may break a rule between parameters (pooling padding at most half the kernel)
    failed = [i for i in report.failures() if not (defaults and i.name == "parameters")]
    assert not failed, report.describe(only_failures=True)
    assert {"pure", "backward vs finite differences"} <= {i.name for i in report.items}


# ------------------------------------------------------------------- training vs PyTorch

CNN = [
    '{ type = "conv2d", out_channels = 6, kernel_size = 3, padding = 1, activation = "relu" }',
    '{ type = "max_pool2d", kernel_size = 3, stride = 2, padding = 1 }',
    '{ type = "flatten" }',
    '{ type = "dense", units = 10, activation = "linear" }',
]
STEPS, BATCH = 20, 32


def torch_cnn(x, w0, b0, w3, b3):
    h = torch.relu(F.conv2d(x, w0, b0, padding=1))
    h = F.max_pool2d(h, 3, stride=2, padding=1)
    return h.flatten(1) @ w3 + b3


@pytest.mark.parametrize(
    "optimizer, torch_optimizer",
    [
        ('{ name = "sgd", lr = 0.1 }', lambda params: torch.optim.SGD(params, lr=0.1)),
        ('{ name = "adam", lr = 0.01 }', lambda params: torch.optim.Adam(params, lr=0.01)),
    ],
    ids=["sgd", "adam"],
)
def test_a_small_cnn_trains_as_the_same_network_in_pytorch(optimizer, torch_optimizer):
    """cross_entropy on a linear last layer reads its outputs as logits: F.cross_entropy of the
    class index. The digit images have blank borders, so once the biases move, many pooling
    windows tie and the tie rule is exercised too."""
    session = small_session(
        CNN,
        dataset="digits",
        data='shape = "image"',
        loss="cross_entropy",
        optimizer=optimizer,
        batch_size=BATCH,
        shuffle=False,
    )
    assert session.loss.hp["input"] == "logits"
    assert len(session.x_train) >= STEPS * BATCH  # one epoch: batches in file order
    keys = ["layers.0.W", "layers.0.b", "layers.3.W", "layers.3.b"]
    init = session.parameters()
    assert list(init) == keys
    weights = [tensor(init[key], True) for key in keys]
    opt = torch_optimizer(weights)
    x, t = tensor(session.x_train), tensor(session.targets_train)
    theirs = []
    for step in range(STEPS):
        xb, tb = x[step * BATCH : (step + 1) * BATCH], t[step * BATCH : (step + 1) * BATCH]
        loss = F.cross_entropy(torch_cnn(xb, *weights), tb.argmax(dim=1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        theirs.append(loss.item())
    session.run_steps(STEPS)
    ours = session.history.steps.column("train_loss")
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    assert theirs[-1] < theirs[0]
    final = session.parameters()
    for key, weight in zip(keys, weights, strict=True):
        assert_close(final[key], weight.detach().numpy(), rtol=1e-10)
    _, calls = session.model.trace(session.x_train[:BATCH])
    assert tied_windows(calls[1].inputs[0], kernel=3, stride=2, padding=1) > 0


def tied_windows(x, kernel, stride, padding):
    """How many pooling windows hold their maximum, a positive one, more than once."""
    padded = np.pad(x, ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2), constant_values=-np.inf)
    windows = sliding_window_view(padded, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]
    windows = windows.reshape(*windows.shape[:4], -1)
    top = windows.max(axis=-1, keepdims=True)
    return int((((windows == top).sum(axis=-1) > 1) & (top[..., 0] > 0)).sum())
