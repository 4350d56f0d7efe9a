"""Built-in layers: dense, activation, dropout, batch normalization and a residual block.

Shapes are (batch, *sample_shape); each backward sits next to its forward.
"""

import math

import numpy as np

from gradient_lab.engine.plugin_api import ActivationFusion, DenseFusion, Layer, Param, PluginError

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
        "activation. W has one row per input and one column per unit."
    )

    def build(self, input_shape, ctx):
        super().build(input_shape, ctx)
        if len(input_shape) != 1:
            raise PluginError(
                f"dense expects flat samples, got shape {tuple(input_shape)}; add a flatten layer"
            )
        fan_in, units = input_shape[0], self.hp["units"]
        self.act = ctx.make("activation", self.hp["activation"], **self.hp["activation_params"])
        self.weights = {"W": ctx.weight((fan_in, units), fan_in, units)}
        if self.hp["use_bias"]:
            self.weights["b"] = ctx.zeros((units,))
        self.trainable = tuple(self.weights)

    def output_shape(self, input_shape):
        return (self.hp["units"],)

    def forward(self, x, training):
        z = x @ self.weights["W"]
        if self.hp["use_bias"]:
            z = z + self.weights["b"]
        y = self.act.apply(z)
        self.cache = {"x": x, "z": z, "y": y}
        self.observed = {"pre_activation": z, "activation": y}
        return y

    def backward(self, dy):
        x, z, y = self.cache["x"], self.cache["z"], self.cache["y"]
        dz = self.act.gradient(z, y, dy)
        self.grads = {"W": x.T @ dz}
        if self.hp["use_bias"]:
            self.grads["b"] = dz.sum(axis=0)
        return dz @ self.weights["W"].T

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
        super().build(input_shape, ctx)
        self.act = ctx.make("activation", self.hp["activation"], **self.hp["activation_params"])

    def forward(self, x, training):
        y = self.act.apply(x)
        self.cache = {"x": x, "y": y}
        self.observed = {"pre_activation": x, "activation": y}
        return y

    def backward(self, dy):
        return self.act.gradient(self.cache["x"], self.cache["y"], dy)

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

    def build(self, input_shape, ctx):
        super().build(input_shape, ctx)
        self.rng = ctx.rng

    def forward(self, x, training):
        rate = self.hp["rate"]
        if not training or rate == 0.0:
            self.cache = {"scale": None}
            self.observed = {"activation": x}
            return x
        scale = (self.rng.random(x.shape) >= rate) / (1.0 - rate)
        scale = scale.astype(x.dtype)
        self.cache = {"scale": scale}
        y = x * scale
        self.observed = {"mask": scale != 0, "activation": y}
        return y

    def backward(self, dy):
        scale = self.cache["scale"]
        return dy if scale is None else dy * scale


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
        "Normalizes each feature over the batch while training (running averages at evaluation), "
        "then rescales with learned gamma and beta: as PyTorch's BatchNorm1d."
    )

    def build(self, input_shape, ctx):
        super().build(input_shape, ctx)
        features = input_shape[-1]
        self.weights = {
            "gamma": np.ones(features, dtype=ctx.dtype),
            "beta": ctx.zeros((features,)),
            "running_mean": ctx.zeros((features,)),
            "running_var": np.ones(features, dtype=ctx.dtype),
        }
        self.trainable = ("gamma", "beta")

    def forward(self, x, training):
        w = self.weights
        axes = tuple(range(x.ndim - 1))
        if training:
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            count = x.size // x.shape[-1]
            m = self.hp["momentum"]
            unbiased = var * count / max(count - 1, 1)
            w["running_mean"][...] = (1 - m) * w["running_mean"] + m * mean
            w["running_var"][...] = (1 - m) * w["running_var"] + m * unbiased
        else:
            mean, var = w["running_mean"], w["running_var"]
        inv_std = 1.0 / np.sqrt(var + self.hp["eps"])
        x_hat = (x - mean) * inv_std
        y = w["gamma"] * x_hat + w["beta"]
        self.cache = {"x_hat": x_hat, "inv_std": inv_std, "training": training}
        self.observed = {"pre_activation": x_hat, "activation": y}
        return y

    def backward(self, dy):
        x_hat, inv_std = self.cache["x_hat"], self.cache["inv_std"]
        axes = tuple(range(dy.ndim - 1))
        self.grads = {"gamma": (dy * x_hat).sum(axis=axes), "beta": dy.sum(axis=axes)}
        dx_hat = dy * self.weights["gamma"]
        if not self.cache["training"]:
            return dx_hat * inv_std
        count = dy.size // dy.shape[-1]
        return (
            inv_std
            / count
            * (count * dx_hat - dx_hat.sum(axis=axes) - x_hat * (dx_hat * x_hat).sum(axis=axes))
        )


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
        super().build(input_shape, ctx)
        width = input_shape[-1]
        self.inner = ctx.make(
            "layer", "dense", units=self.hp["hidden"], activation=self.hp["activation"]
        )
        self.outer = ctx.make("layer", "dense", units=width)
        self.inner.build(input_shape, ctx)
        self.outer.build((self.hp["hidden"],), ctx)
        self.weights = {f"inner.{k}": v for k, v in self.inner.weights.items()}
        self.weights.update({f"outer.{k}": v for k, v in self.outer.weights.items()})
        self.trainable = tuple(self.weights)

    def _bind(self):
        """Let the children see the (possibly re-bound) arrays in ``self.weights``."""
        for prefix, child in (("inner.", self.inner), ("outer.", self.outer)):
            for k in child.weights:
                child.weights[k] = self.weights[prefix + k]

    def forward(self, x, training):
        self._bind()
        h = self.inner.forward(x, training)
        y = x + self.outer.forward(h, training)
        self.observed = {"activation": y}
        return y

    def backward(self, dy):
        dh = self.outer.backward(dy)
        dx = self.inner.backward(dh) + dy
        self.grads = {f"inner.{k}": v for k, v in self.inner.grads.items()}
        self.grads.update({f"outer.{k}": v for k, v in self.outer.grads.items()})
        return dx

    def sublayers(self):
        return [self.inner, self.outer]


class Flatten(Layer):
    name = "flatten"
    formula = r"y = \mathrm{reshape}(x, (B, -1))"
    teaching = "Turns each sample (an image, a sequence) into one long vector for dense layers."

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training):
        self.cache = {"shape": x.shape}
        return x.reshape(len(x), -1)

    def backward(self, dy):
        return dy.reshape(self.cache["shape"])


PLUGINS = [Dense, ActivationLayer, Dropout, BatchNorm, Residual, Flatten]
