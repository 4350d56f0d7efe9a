"""The numbers behind one neuron of a dense layer in the step in progress, for the step
inspector's formulas: its inputs, weights and bias for one sample of the minibatch, z and the
activation; on the way back dL/da, f'(z) and δ = dL/dz; and the gradient of its weights over
the minibatch. Computed from the snapshot's own parameters with a scratch gradient, so neither
the session nor the snapshot changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class NeuronDetail:
    layer: int
    unit: int
    sample: int
    batch_size: int
    activation: str
    inputs: np.ndarray  # the layer's inputs for the sample, (fan_in,)
    weights: np.ndarray  # W[:, unit]
    bias: float
    z: float  # Σ wᵢ xᵢ + b
    a: float  # f(z)
    upstream: float  # dL/da for the sample (the loss averages over the minibatch)
    slope: float  # f'(z)
    delta: float  # dL/dz = dL/da · f'(z)
    weight_grads: np.ndarray  # dL/dW[:, unit] = Σ over the minibatch of xᵢ δ
    bias_grad: float


def neuron_detail(snapshot: Any, layer: int, unit: int, sample: int = 0) -> NeuronDetail:
    """``unit`` of dense layer ``layer`` for ``sample`` of the step in progress."""
    facts = snapshot.facts
    model = facts.model
    if snapshot.batch_inputs is None:
        raise ValueError("no step in progress: step into one (select batch) to explain it")
    node = model.nodes[layer]
    w_slot, b_slot = node.slots.get("W"), node.slots.get("b")
    act = getattr(node.layer, "act", None)
    if w_slot is None or len(w_slot.shape) != 2 or act is None:
        raise ValueError(f"{node.path} is not a dense layer: its neurons have no single formula")
    x, targets = snapshot.batch_inputs, snapshot.batch_targets
    runner = model.runner(
        False, theta=snapshot.theta, grad=np.zeros_like(snapshot.theta), state=snapshot.state
    )
    values, calls = [np.asarray(x, dtype=model.dtype)], []
    for top in model.nodes:
        out, call = runner.forward(top, (values[-1],))
        values.append(out)
        calls.append(call)
    dy = facts.loss.grad(values[-1], targets)
    for k in range(len(model.nodes) - 1, layer, -1):
        dy = runner.backward(calls[k], dy)
    z, a = calls[layer].observed["pre_activation"], calls[layer].observed["activation"]
    slopes = act.gradient(z, a, np.ones_like(z))
    deltas = act.gradient(z, a, dy)[:, unit]
    params = snapshot.parameters()
    fan_in = values[layer]
    return NeuronDetail(
        layer=layer,
        unit=unit,
        sample=sample,
        batch_size=len(x),
        activation=act.name,
        inputs=fan_in[sample].copy(),
        weights=params[w_slot.key][:, unit].copy(),
        bias=float(params[b_slot.key][unit]) if b_slot is not None else 0.0,
        z=float(z[sample, unit]),
        a=float(a[sample, unit]),
        upstream=float(dy[sample, unit]),
        slope=float(slopes[sample, unit]),
        delta=float(deltas[sample]),
        weight_grads=fan_in.T @ deltas,
        bias_grad=float(deltas.sum()),
    )
