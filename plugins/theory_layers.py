"""Layers for theory experiments: the dense layer in the neural tangent kernel parameterization.

In the NTK parameterization the weights start as standard normals and the layer divides by
√fan_in in its forward pass, instead of drawing small weights. The function at initialization is
the same in distribution, but gradient descent moves each weight less as the width grows, so a
wide network trains like its linearization and its tangent kernel barely changes.
"""

import math

from gradient_lab.engine.plugin_api import Layer, Param, PluginError


class NTKDense(Layer):
    name = "ntk_dense"
    params = (
        Param("units", "int", 8, "number of output units (neurons)", low=1, high=100_000),
        Param("activation", "str", "linear", "activation applied to the output"),
        Param("activation_params", "dict", {}, "the activation's own parameters"),
        Param("use_bias", "bool", True, "add a learned bias"),
        Param(
            "weight_std",
            "float",
            1.0,
            "σ_w: the weights' scale in the forward pass (the weights start as N(0, 1))",
            low=0.0,
        ),
        Param(
            "bias_std",
            "float",
            0.1,
            "σ_b: the bias' scale in the forward pass (the biases start as N(0, 1))",
            low=0.0,
        ),
    )
    formula = (
        r"z = \frac{\sigma_w}{\sqrt{n_{in}}}\, x W + \sigma_b\, b,\quad y = f(z),\quad "
        r"W_{ij},\, b_j \sim \mathcal{N}(0, 1)"
    )
    teaching = (
        "A dense layer in the neural tangent kernel parameterization: standard normal weights, "
        "scaled by 1/√fan-in in the forward pass. As the width grows each weight moves less, so "
        "the tangent kernel stays nearly fixed during training (the 'lazy' regime). The weights "
        "are always standard normal: the experiment's initializer is not used."
    )

    def build(self, input_shape, ctx):
        if len(input_shape) != 1:
            raise PluginError(
                f"ntk_dense expects flat samples, got shape {tuple(input_shape)}; "
                "add a flatten layer"
            )
        fan_in, units = input_shape[0], self.hp["units"]
        self.act = ctx.make("activation", self.hp["activation"], **self.hp["activation_params"])
        self.scale = self.hp["weight_std"] / math.sqrt(fan_in)
        ctx.add_weight("W", ctx.rng.normal(size=(fan_in, units)))
        if self.hp["use_bias"]:
            ctx.add_weight("b", ctx.rng.normal(size=units))

    def output_shape(self, input_shape):
        return (self.hp["units"],)

    def forward(self, ctx, p, x):
        z = (x @ p["W"]) * self.scale
        if self.hp["use_bias"]:
            z = z + self.hp["bias_std"] * p["b"]
        y = self.act.apply(z)
        ctx.save(x=x, z=z, y=y)
        ctx.observe(pre_activation=z, activation=y)
        return y

    def backward(self, ctx, p, dy):
        x, z, y = ctx.saved["x"], ctx.saved["z"], ctx.saved["y"]
        dz = self.act.gradient(z, y, dy)
        grads = {"W": (x.T @ dz) * self.scale}
        if self.hp["use_bias"]:
            grads["b"] = self.hp["bias_std"] * dz.sum(axis=0)
        return (dz @ p["W"].T) * self.scale, grads

    def output_activation(self):
        return self.hp["activation"]


PLUGINS = [NTKDense]
