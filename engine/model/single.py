"""One layer on its own, packed as a model packs it: for the conformance check, tests and
notebooks that want to poke at a layer (set its weights, run it, read its gradients)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gradient_lab.engine.model.calls import Runner
from gradient_lab.engine.model.tree import Node, Slot, pack_node
from gradient_lab.engine.plugin_api import BuildContext, Call, Initializer, Layer


class SingleLayer:
    """A built layer (and its children) with its weights in ``theta``; ``params`` and ``grads``
    are writable views by name relative to the layer (``W``, ``inner.W``)."""

    def __init__(
        self,
        layer: Layer,
        input_shape: Any,
        make: Any,
        initializer: Initializer,
        rng: np.random.Generator,
        dtype: Any = np.float64,
    ) -> None:
        self.layer, self.input_shape = layer, input_shape
        ctx = BuildContext(rng, initializer, dtype, make, "layer")
        layer.build(input_shape, ctx)
        values: list[np.ndarray] = []
        self.node, _ = pack_node(layer, ctx, input_shape, "layer", 0, 0, values)
        self.theta = np.concatenate(values) if values else np.zeros(0, dtype)
        self.grad = np.zeros_like(self.theta)
        self.nodes: list[Node] = self.node.walk()
        self.slots: list[Slot] = sorted(
            (s for n in self.nodes for s in n.slots.values()), key=lambda s: s.offset
        )
        self.last_call: Call | None = None

    def _views(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        return {s.name: vector[s.offset : s.offset + s.size].reshape(s.shape) for s in self.slots}

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self._views(self.theta)

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self._views(self.grad)

    @property
    def state(self) -> dict[str, np.ndarray]:
        """Every state array (running statistics) by name relative to the layer."""
        return {f"{n.path}.{k}".split(".", 1)[1]: v for n in self.nodes for k, v in n.state.items()}

    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.layer.output_shape(self.input_shape))

    def forward(
        self,
        *inputs: Any,
        training: bool = False,
        rng: np.random.Generator | None = None,
        theta: np.ndarray | None = None,
    ) -> Any:
        """The layer's output; the call's record is kept for ``backward``."""
        runner = Runner(self.theta if theta is None else theta, self.grad, training, rng)
        out, self.last_call = runner.forward(self.node, inputs)
        return out

    def backward(self, dy: Any, call: Call | None = None) -> Any:
        """dL/dx for the last forward call (or ``call``); ``grads`` holds dL/dweights after."""
        call = self.last_call if call is None else call
        assert call is not None, "run forward first"
        self.grad[...] = 0.0
        return Runner(self.theta, self.grad, call.training, None).backward(call, dy)
