"""Built-in layers: dense, activation, dropout, batch normalization and a residual block.

Shapes are (batch, *sample_shape); each backward sits next to its forward.
"""

import math

import numpy as np

from gradient_lab.engine.plugin_api import (
    ActivationFusion,
    ChannelAffineForm,
    DenseFusion,
    Layer,
    Param,
    PluginError,
    ReshapeForm,
    ResidualForm,
)

ACTIVATION = Param("activation", "str", "linear", "activation applied to the output")
ACTIVATION_PARAMS = Param("activation_params", "dict", {}, "the activation's own parameters")


class Dense(Layer):
    name = "dense"
    params = (
        Param("units", "int", 8, "number of output units (neurons)", low=1, high=100_000),
        ACTIVATION,
        ACTIVATION_PARAMS,
        Param("use_bias", "bool", True, "add a learned bias b"),
    )
    formula = r"z = x W + b, \quad y = f(z)"
    teaching = (
        "Every output unit is a weighted sum of all inputs plus a bias, passed through an "
        "activation. W has one row per input and one column per unit. On a sequence (T, F) "
        "the same weights act on every position."
    )

    def build(self, input_shape, ctx):
        if len(input_shape) not in (1, 2):
            raise PluginError(
                f"dense expects flat samples (F,) or sequences (T, F), got shape "
                f"{tuple(input_shape)}; add a flatten layer"
            )
        fan_in, units = input_shape[-1], self.hp["units"]
        self.act = ctx.make("activation", self.hp["activation"], **self.hp["activation_params"])
        ctx.add_weight("W", ctx.weight((fan_in, units), fan_in, units))
        if self.hp["use_bias"]:
            ctx.add_weight("b", ctx.zeros((units,)))

    def output_shape(self, input_shape):
        return (*input_shape[:-1], self.hp["units"])

    def forward(self, ctx, p, x):
        z = x @ p["W"]
        if self.hp["use_bias"]:
            z = z + p["b"]
        y = self.act.apply(z)
        ctx.save(x=x, z=z, y=y)
        ctx.observe(pre_activation=z, activation=y)
        return y

    def backward(self, ctx, p, dy):
        x, z, y = ctx.saved["x"], ctx.saved["z"], ctx.saved["y"]
        dz = self.act.gradient(z, y, dy)
        x_rows, dz_rows = x.reshape(-1, x.shape[-1]), dz.reshape(-1, dz.shape[-1])
        grads = {"W": x_rows.T @ dz_rows}
        if self.hp["use_bias"]:
            grads["b"] = dz_rows.sum(axis=0)
        return dz @ p["W"].T, grads

    def fusion(self):
        return DenseFusion(self.act, "W", "b" if self.hp["use_bias"] else "")

    def output_activation(self):
        return self.hp["activation"]


class ActivationLayer(Layer):
    name = "activation"
    params = (ACTIVATION, ACTIVATION_PARAMS)
    formula = r"y = f(x)"
    teaching = "Applies an activation on its own, so it can be placed and inspected separately."

    def build(self, input_shape, ctx):
        self.act = ctx.make("activation", self.hp["activation"], **self.hp["activation_params"])

    def forward(self, ctx, p, x):
        y = self.act.apply(x)
        ctx.save(x=x, y=y)
        ctx.observe(pre_activation=x, activation=y)
        return y

    def backward(self, ctx, p, dy):
        return self.act.gradient(ctx.saved["x"], ctx.saved["y"], dy), {}

    def fusion(self):
        return ActivationFusion(self.act)

    def output_activation(self):
        return self.hp["activation"]


class Dropout(Layer):
    name = "dropout"
    params = (
        Param("rate", "float", 0.5, "fraction of units zeroed while training", low=0.0, high=0.95),
    )
    formula = r"y = \frac{m \odot x}{1 - p}, \quad m_i \sim \mathrm{Bernoulli}(1 - p)"
    teaching = (
        "While training, zeroes each unit with probability p and scales the rest by 1/(1-p) so "
        "the expected output is unchanged; at evaluation it does nothing."
    )

    def forward(self, ctx, p, x):
        rate = self.hp["rate"]
        if not ctx.training or rate == 0.0:
            ctx.save(scale=None)
            ctx.observe(activation=x)
            return x
        scale = (ctx.rng.random(x.shape) >= rate) / (1.0 - rate)
        scale = scale.astype(x.dtype)
        ctx.save(scale=scale)
        y = x * scale
        ctx.observe(mask=scale != 0, activation=y)
        return y

    def backward(self, ctx, p, dy):
        scale = ctx.saved["scale"]
        return (dy if scale is None else dy * scale), {}

    def evaluation_form(self):
        return ReshapeForm()


class BatchNorm(Layer):
    name = "batch_norm"
    decay_names = ()
    params = (
        Param(
            "momentum",
            "float",
            0.1,
            "weight of the newest batch in the running statistics",
            low=0.0,
            high=1.0,
        ),
        Param(
            "eps",
            "float",
            1e-5,
            "added to the variance before the square root",
            low=0.0,
            low_inclusive=False,
        ),
    )
    formula = (
        r"\hat x = \frac{x - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}}, \quad y = \gamma \hat x + \beta"
    )
    teaching = (
        "Normalizes each channel over the batch while training (running averages at "
        "evaluation), then rescales with learned gamma and beta. Channels are the first axis of "
        "a sample: features of a flat sample, C of an image (C, H, W), as PyTorch's BatchNorm1d "
        "and BatchNorm2d."
    )
    min_batch = 2

    def build(self, input_shape, ctx):
        channels = input_shape[0]
        ctx.add_weight("gamma", np.ones(channels))
        ctx.add_weight("beta", ctx.zeros((channels,)))
        ctx.add_weight("running_mean", ctx.zeros((channels,)), trainable=False)
        ctx.add_weight("running_var", np.ones(channels), trainable=False)

    def forward(self, ctx, p, x):
        axes, shape = _channel_axes(x)
        if ctx.training:
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            count = x.size // x.shape[1]
            m = self.hp["momentum"]
            unbiased = var * count / max(count - 1, 1)
            ctx.set_state("running_mean", (1 - m) * p["running_mean"] + m * mean)
            ctx.set_state("running_var", (1 - m) * p["running_var"] + m * unbiased)
        else:
            mean, var = p["running_mean"], p["running_var"]
        inv_std = (1.0 / np.sqrt(var + self.hp["eps"])).reshape(shape)
        x_hat = (x - mean.reshape(shape)) * inv_std
        y = p["gamma"].reshape(shape) * x_hat + p["beta"].reshape(shape)
        ctx.save(x_hat=x_hat, inv_std=inv_std)
        ctx.observe(pre_activation=x_hat, activation=y)
        return y

    def backward(self, ctx, p, dy):
        x_hat, inv_std = ctx.saved["x_hat"], ctx.saved["inv_std"]
        axes, shape = _channel_axes(dy)
        grads = {"gamma": (dy * x_hat).sum(axis=axes), "beta": dy.sum(axis=axes)}
        dx_hat = dy * p["gamma"].reshape(shape)
        if not ctx.training:
            return dx_hat * inv_std, grads
        count = dy.size // dy.shape[1]
        sum_dx_hat = dx_hat.sum(axis=axes, keepdims=True)
        sum_dx_hat_x_hat = (dx_hat * x_hat).sum(axis=axes, keepdims=True)
        dx = inv_std / count * (count * dx_hat - sum_dx_hat - x_hat * sum_dx_hat_x_hat)
        return dx, grads

    def evaluation_form(self):
        return ChannelAffineForm(self.hp["eps"])


def _channel_axes(x):
    """The axes batch norm averages over (all but the channel axis 1) and the shape that
    broadcasts a per-channel vector against x."""
    axes = (0, *range(2, x.ndim))
    return axes, (1, x.shape[1]) + (1,) * (x.ndim - 2)


class Residual(Layer):
    name = "residual"
    params = (
        Param("hidden", "int", 8, "units of the inner dense layer", low=1, high=100_000),
        Param("activation", "str", "relu", "activation between the two dense layers"),
    )
    formula = r"y = x + W_2\, f(x W_1 + b_1) + b_2"
    teaching = (
        "A skip connection around two dense layers: the block only has to learn a correction to "
        "its input, and gradients flow straight through the sum."
    )

    def build(self, input_shape, ctx):
        hidden, activation = self.hp["hidden"], self.hp["activation"]
        ctx.add_child("inner", "dense", input_shape, units=hidden, activation=activation)
        ctx.add_child("outer", "dense", (hidden,), units=input_shape[-1])

    def forward(self, ctx, p, x):
        h = ctx.forward("inner", x)
        y = x + ctx.forward("outer", h)
        ctx.observe(activation=y)
        return y

    def backward(self, ctx, p, dy):
        dh = ctx.backward("outer", dy)
        dx = ctx.backward("inner", dh) + dy
        return dx, {}

    def evaluation_form(self):
        return ResidualForm(("inner", "outer"))


class Flatten(Layer):
    name = "flatten"
    formula = r"y = \mathrm{reshape}(x, (B, -1))"
    teaching = "Turns each sample (an image, a sequence) into one long vector for dense layers."

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, ctx, p, x):
        ctx.save(shape=x.shape)
        return x.reshape(len(x), -1)

    def backward(self, ctx, p, dy):
        return dy.reshape(ctx.saved["shape"]), {}

    def evaluation_form(self):
        return ReshapeForm()


PLUGINS = [Dense, ActivationLayer, Dropout, BatchNorm, Residual, Flatten]
