"""Attention: layer normalization, multi-head attention (self or cross, optional causal mask)
and a pre-norm transformer block built from them as a composite layer.

Sequences are (T, F) per sample, batches (B, T, F). Each backward sits next to its forward.
"""

import math
from typing import ClassVar

import numpy as np

from gradient_lab.engine.plugin_api import Layer, Param, PluginError


def _sequence_shape(name, input_shape):
    if len(input_shape) != 2:
        raise PluginError(
            f"{name} expects sequences of shape (T, F), got shape {tuple(input_shape)}"
        )
    return tuple(input_shape)


class LayerNorm(Layer):
    name = "layer_norm"
    decay_names = ()
    params = (
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
        r"\hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}},\ "
        r"\mu, \sigma^2 \text{ over the last axis},\quad y = \gamma \hat x + \beta"
    )
    teaching = (
        "Normalizes each position's feature vector on its own (not over the batch, unlike "
        "batch norm), then rescales with learned γ and β: as PyTorch's LayerNorm over the last "
        "axis. Transformers put it before attention and the MLP."
    )

    def build(self, input_shape, ctx):
        features = input_shape[-1]
        ctx.add_weight("gamma", np.ones(features))
        ctx.add_weight("beta", ctx.zeros((features,)))

    def forward(self, ctx, p, x):
        mean = x.mean(axis=-1, keepdims=True)
        var = x.var(axis=-1, keepdims=True)
        inv_std = 1.0 / np.sqrt(var + self.hp["eps"])
        x_hat = (x - mean) * inv_std
        y = p["gamma"] * x_hat + p["beta"]
        ctx.save(x_hat=x_hat, inv_std=inv_std)
        ctx.observe(pre_activation=x_hat, activation=y)
        return y

    def backward(self, ctx, p, dy):
        x_hat, inv_std = ctx.saved["x_hat"], ctx.saved["inv_std"]
        axes = tuple(range(dy.ndim - 1))
        grads = {"gamma": (dy * x_hat).sum(axis=axes), "beta": dy.sum(axis=axes)}
        g = dy * p["gamma"]
        n = dy.shape[-1]
        dx = (
            inv_std
            / n
            * (
                n * g
                - g.sum(axis=-1, keepdims=True)
                - x_hat * (g * x_hat).sum(axis=-1, keepdims=True)
            )
        )
        return dx, grads


class MultiHeadAttention(Layer):
    name = "multi_head_attention"
    decay_names = ("W_q", "W_k", "W_v", "W_o")
    inputs: ClassVar = ("x", "mask", "memory")
    check_input_shape = (4, 6)
    params = (
        Param("heads", "int", 2, "attention heads; they split the features evenly", low=1),
        Param("causal", "bool", False, "each position attends only to itself and earlier ones"),
        Param("use_bias", "bool", True, "learned biases on the four projections"),
    )
    formula = (
        r"\mathrm{head}_h = \mathrm{softmax}\!\left(\frac{Q_h K_h^\top}{\sqrt{d}} + M\right) V_h,"
        r"\quad Q = x W_q,\ K = m W_k,\ V = m W_v,\quad y = [\mathrm{head}_1 \dots] W_o"
    )
    teaching = (
        "Each position asks a question (its query) and every position offers a key and a value: "
        "the softmax of query-key products says how much of each value to take. Several heads "
        "look for different things at once. The keys and values come from the input itself "
        "(self-attention) or from a memory (cross-attention); a causal mask hides the future. "
        "An optional mask (T, T) or (B, T, T) says with True which positions may be attended."
    )

    def build(self, input_shape, ctx):
        _, features = _sequence_shape(self.name, input_shape)
        if features % self.hp["heads"]:
            raise PluginError(
                f"multi_head_attention.heads = {self.hp['heads']} is not allowed: expected a "
                f"divisor of the feature count {features}"
            )
        for name in ("q", "k", "v", "o"):
            ctx.add_weight(f"W_{name}", ctx.weight((features, features), features, features))
            if self.hp["use_bias"]:
                ctx.add_weight(f"b_{name}", ctx.zeros((features,)))

    def _project(self, p, x, name):
        y = x @ p[f"W_{name}"]
        return y + p[f"b_{name}"] if self.hp["use_bias"] else y

    def _split(self, x):
        """(B, T, F) -> (B, heads, T, d)."""
        b, t, f = x.shape
        heads = self.hp["heads"]
        return x.reshape(b, t, heads, f // heads).transpose(0, 2, 1, 3)

    @staticmethod
    def _merge(x):
        """(B, heads, T, d) -> (B, T, F)."""
        b, h, t, d = x.shape
        return x.transpose(0, 2, 1, 3).reshape(b, t, h * d)

    def _allowed(self, mask, t_q, t_k):
        allowed = np.ones((1, 1, t_q, t_k), dtype=bool)
        if self.hp["causal"]:
            allowed = allowed & np.tri(t_q, t_k, dtype=bool)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            allowed = allowed & (mask[:, None] if mask.ndim == 3 else mask)
        return allowed

    def forward(self, ctx, p, x, mask=None, memory=None):
        source = x if memory is None else memory
        q = self._split(self._project(p, x, "q"))
        k = self._split(self._project(p, source, "k"))
        v = self._split(self._project(p, source, "v"))
        scale = 1.0 / math.sqrt(q.shape[-1])
        allowed = self._allowed(mask, q.shape[2], k.shape[2])
        scores = np.where(allowed, q @ k.transpose(0, 1, 3, 2) * scale, -np.inf)
        scores = scores - scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights /= weights.sum(axis=-1, keepdims=True)
        heads = self._merge(weights @ v)
        y = self._project(p, heads, "o")
        ctx.save(x=x, source=source, q=q, k=k, v=v, weights=weights, heads=heads, scale=scale)
        ctx.observe(attention=weights, activation=y)
        return y

    def backward(self, ctx, p, dy):
        s = ctx.saved
        x, source, q, k, v, weights = s["x"], s["source"], s["q"], s["k"], s["v"], s["weights"]
        grads = {"W_o": _weight_grad(s["heads"], dy)}
        d_heads = self._split(dy @ p["W_o"].T)
        d_weights = d_heads @ v.transpose(0, 1, 3, 2)
        dv = weights.transpose(0, 1, 3, 2) @ d_heads
        d_scores = weights * (d_weights - (d_weights * weights).sum(axis=-1, keepdims=True))
        dq = d_scores @ k * s["scale"]
        dk = d_scores.transpose(0, 1, 3, 2) @ q * s["scale"]
        dq, dk, dv = self._merge(dq), self._merge(dk), self._merge(dv)
        for name, inp, d in (("q", x, dq), ("k", source, dk), ("v", source, dv)):
            grads[f"W_{name}"] = _weight_grad(inp, d)
        if self.hp["use_bias"]:
            for name, d in (("q", dq), ("k", dk), ("v", dv), ("o", dy)):
                grads[f"b_{name}"] = d.sum(axis=(0, 1))
        dx = dq @ p["W_q"].T
        d_source = dk @ p["W_k"].T + dv @ p["W_v"].T
        if len(ctx.inputs) == 1:
            return dx + d_source, grads
        if len(ctx.inputs) == 2:  # (x, mask): self-attention
            return (dx + d_source, None), grads
        return (dx, None, d_source), grads


def _weight_grad(inputs, d_outputs):
    """dL/dW of y = x W over every batch and time position."""
    return inputs.reshape(-1, inputs.shape[-1]).T @ d_outputs.reshape(-1, d_outputs.shape[-1])


class TransformerBlock(Layer):
    name = "transformer_block"
    inputs: ClassVar = ("x", "mask")
    check_input_shape = (4, 6)
    params = (
        Param("heads", "int", 2, "attention heads", low=1),
        Param("hidden", "int", 16, "units of the MLP's hidden layer", low=1, high=100_000),
        Param("activation", "str", "gelu", "activation of the MLP"),
        Param("causal", "bool", True, "each position sees only itself and earlier ones"),
    )
    formula = (
        r"h = x + \mathrm{MHA}(\mathrm{LN}_1(x)),\quad "
        r"y = h + W_2\, f(\mathrm{LN}_2(h) W_1 + b_1) + b_2"
    )
    teaching = (
        "The building block of GPT-style models, in the pre-norm form: attention over the "
        "normalized sequence, added back to the input, then a small MLP at every position, "
        "added back again. The residual paths let each block refine the sequence gently."
    )

    def build(self, input_shape, ctx):
        _, features = _sequence_shape(self.name, input_shape)
        heads, hidden = self.hp["heads"], self.hp["hidden"]
        ctx.add_child("ln1", "layer_norm", input_shape)
        ctx.add_child(
            "attn", "multi_head_attention", input_shape, heads=heads, causal=self.hp["causal"]
        )
        ctx.add_child("ln2", "layer_norm", input_shape)
        ctx.add_child("fc1", "dense", (features,), units=hidden, activation=self.hp["activation"])
        ctx.add_child("fc2", "dense", (hidden,), units=features)

    def forward(self, ctx, p, x, mask=None):
        h = x + ctx.forward("attn", ctx.forward("ln1", x), *ctx.inputs[1:])
        b, t, f = x.shape
        u = ctx.forward("ln2", h).reshape(b * t, f)  # the MLP sees every position as a sample
        y = h + ctx.forward("fc2", ctx.forward("fc1", u)).reshape(b, t, f)
        ctx.observe(activation=y)
        return y

    def backward(self, ctx, p, dy):
        b, t, f = dy.shape
        du = ctx.backward("fc1", ctx.backward("fc2", dy.reshape(b * t, f)))
        dh = dy + ctx.backward("ln2", du.reshape(b, t, f))
        d_attn = ctx.backward("attn", dh)
        if len(ctx.inputs) == 2:
            return (dh + ctx.backward("ln1", d_attn[0]), None), {}
        return dh + ctx.backward("ln1", d_attn), {}


PLUGINS = [LayerNorm, MultiHeadAttention, TransformerBlock]
