"""A model: layer plugins in order, their trainable weights packed in one flat vector theta.

Packing lets optimizers, checkpoints, landscapes and Jacobians see one vector while each layer
reads its own named arrays (read-only views into theta, handed in at every call). The layers
are pure, so the model can run at any theta and any number of passes can be in flight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gradient_lab.engine.memory import available_bytes, size_text
from gradient_lab.engine.model.calls import Runner, walk_calls
from gradient_lab.engine.model.tree import Node, Slot, pack_node
from gradient_lab.engine.plugin_api import BuildContext, Call, Initializer, Layer, PluginError

Networks = dict[str, list[dict[str, Any]]]

TRAINING_COPIES = 8
"""Training keeps about this many copies of the weights (gradient, last update, optimizer state,
checkpoints): the weights may take this share of the free memory at most."""


class WeightBudget:
    """The memory a model's weights may still take; refuses a weight before it is allocated."""

    def __init__(self, free: int) -> None:
        self.left = free

    def __call__(self, size: int, commit: bool) -> None:
        if size > self.left:
            raise PluginError(
                f"a weight of {size_text(size)} does not fit: {size_text(self.left)} is left for "
                f"weights (1/{TRAINING_COPIES} of the memory free, as training keeps gradients, "
                "optimizer state and checkpoints too); choose fewer units or channels"
            )
        if commit:
            self.left -= size


class Model:
    """Layers built for a sample shape, their trainable weights packed into ``theta``.

    A model is one network (a list of layer configs), or several named ones (a GAN's
    ``generator`` and ``discriminator``: a dict of lists, with a dict of input shapes) sharing
    one theta; their paths start with the network's name (``generator.layers.0.W``)."""

    def __init__(
        self,
        layer_configs: list[dict[str, Any]] | Networks,
        input_shape: tuple[int, ...] | dict[str, tuple[int, ...]],
        make: Any,
        initializer: Initializer,
        rng: np.random.Generator,
        dtype: Any = np.float64,
    ) -> None:
        self.dtype = np.dtype(dtype)
        named = isinstance(layer_configs, dict)
        networks = layer_configs if isinstance(layer_configs, dict) else {"": layer_configs}
        shapes = input_shape if isinstance(input_shape, dict) else {"": input_shape}
        self.layers: list[Layer] = []
        self.nodes: list[Node] = []
        self.networks: dict[str, list[int]] = {}
        self.network_shapes: dict[str, list[tuple[int, ...]]] = {}
        values: list[np.ndarray] = []
        offset = 0
        budget = WeightBudget(available_bytes() // TRAINING_COPIES)
        for net, configs in networks.items():
            where = f"model.{net}" if named else "model"
            if net not in shapes:
                raise PluginError(f"{where}: no input shape given for this network")
            self.networks[net] = []
            net_shapes = self.network_shapes[net] = [tuple(shapes[net])]
            for i, config in enumerate(configs):
                options = {k: v for k, v in config.items() if k != "type"}
                path = f"{net}.layers.{i}" if named else f"layers.{i}"
                top = len(self.nodes)
                try:
                    layer = make("layer", config["type"], **options)
                    ctx = BuildContext(rng, initializer, self.dtype, make, path)
                    ctx.reserve = budget
                    layer.build(net_shapes[-1], ctx)
                    out_shape = tuple(layer.output_shape(net_shapes[-1]))
                except PluginError as exc:
                    raise PluginError(f"{where}.layers[{i}]: {exc}") from None
                node, offset = pack_node(layer, ctx, net_shapes[-1], path, top, offset, values)
                self.layers.append(layer)
                self.nodes.append(node)
                self.networks[net].append(top)
                net_shapes.append(out_shape)
        self.configs = [dict(c) for configs in networks.values() for c in configs]
        self.shapes: list[tuple[int, ...]] = next(iter(self.network_shapes.values()))
        self.theta = (
            np.concatenate(values).astype(self.dtype) if values else np.zeros(0, self.dtype)
        )
        self.grad = np.zeros_like(self.theta)
        self.slots: list[Slot] = [s for n in self.walk() for s in n.slots.values()]
        self.slots.sort(key=lambda s: s.offset)
        self.decay_mask = np.zeros_like(self.theta)
        for node in self.walk():
            for name, s in node.slots.items():
                if name in node.layer.decay_names:
                    self.decay_mask[s.offset : s.offset + s.size] = 1.0

    @staticmethod
    def view(vector: np.ndarray, slot: Slot) -> np.ndarray:
        return vector[slot.offset : slot.offset + slot.size].reshape(slot.shape)

    # ------------------------------------------------------------------ the tree
    def walk(self) -> list[Node]:
        """Every layer and child layer, in order, parents before their children."""
        return [n for top in self.nodes for n in top.walk()]

    def node(self, path: str | int) -> Node:
        """The layer at ``path`` (``layers.3.attn``), or top-level layer ``path`` given a number."""
        if isinstance(path, int):
            return self.nodes[path]
        for n in self.walk():
            if n.path == path:
                return n
        raise PluginError(f"no layer at {path!r}: choose one of {', '.join(self.paths())}")

    def paths(self) -> list[str]:
        return [n.path for n in self.walk()]

    # ------------------------------------------------------------------ shapes and names
    @property
    def n_params(self) -> int:
        return int(self.theta.size)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.shapes[-1]

    def output_activation(self) -> str:
        for layer in reversed(self.layers):
            name = layer.output_activation()
            if name:
                return name
        return "linear"

    def layer_slots(self, layer: int) -> list[Slot]:
        return [s for s in self.slots if s.layer == layer]

    # ------------------------------------------------------------------ passes
    def runner(
        self,
        training: bool,
        rng: np.random.Generator | None = None,
        theta: np.ndarray | None = None,
        grad: np.ndarray | None = None,
        state: Mapping[str, np.ndarray] | None = None,
    ) -> Runner:
        """A pass at ``theta`` and ``state`` (default: the model's own) adding gradients into
        ``grad``; with a given state, training passes leave the model's state alone."""
        theta = self.theta if theta is None else theta
        return Runner(theta, self.grad if grad is None else grad, training, rng, state)

    def forward_layer(self, k: int, x: Any, runner: Runner) -> tuple[Any, Call]:
        return runner.forward(self.nodes[k], (x,))

    def trace(
        self,
        x: np.ndarray,
        training: bool = False,
        rng: np.random.Generator | None = None,
        theta: np.ndarray | None = None,
        network: str | None = None,
        state: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, list[Call]]:
        """The output and every top-level layer's call record (for backward or for views), of
        the first network or of ``network``."""
        runner = self.runner(training, rng, theta, state=state)
        calls = []
        for k in self.network(network):
            x, call = self.forward_layer(k, x, runner)
            calls.append(call)
        return x, calls

    def network(self, name: str | None) -> list[int]:
        """The top-level layer indices of a network (the first one for None)."""
        if name is None:
            return next(iter(self.networks.values()))
        if name not in self.networks:
            known = ", ".join(self.networks)
            raise PluginError(f"no network {name!r} in this model (networks: {known})")
        return self.networks[name]

    def forward(
        self,
        x: np.ndarray,
        training: bool = False,
        rng: np.random.Generator | None = None,
        theta: np.ndarray | None = None,
        network: str | None = None,
        state: Mapping[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        return self.trace(x, training, rng, theta, network, state)[0]

    def network_slice(self, name: str) -> slice:
        """Where a network's weights lie in theta (contiguous: networks are packed in turn)."""
        slots = [s for k in self.network(name) for s in self.layer_slots(k)]
        if not slots:
            return slice(0, 0)
        return slice(slots[0].offset, slots[-1].offset + slots[-1].size)

    def backward(
        self, calls: Sequence[Call], dy: np.ndarray, grad: np.ndarray | None = None
    ) -> np.ndarray:
        """dL/dx from dL/dy through recorded calls; parameter gradients are written to ``grad``
        (default: the model's gradient buffer), which is zeroed first."""
        grad = self.grad if grad is None else grad
        grad[...] = 0.0
        runner = self.runner(calls[0].training if calls else False, grad=grad)
        for call in reversed(calls):
            dy = runner.backward(call, dy)
        return dy

    def loss_gradient(
        self, x: np.ndarray, loss: Any, target: np.ndarray, theta: np.ndarray | None = None
    ) -> tuple[float, np.ndarray]:
        """Loss and d loss / d theta in evaluation mode at ``theta``, on a fresh buffer."""
        pred, calls = self.trace(x, training=False, theta=theta)
        grad = np.zeros_like(self.theta)
        self.backward(calls, loss.grad(pred, target), grad)
        return float(loss.value(pred, target)), grad

    def output_jacobian(self, x: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
        """d outputs / d theta in evaluation mode: one row per (sample, output), sample-major,
        from one backward pass each with upstream gradient 1 (or ``scale[i, j]``)."""
        outputs = int(np.prod(self.output_shape))
        rows = np.zeros((len(x) * outputs, self.n_params), dtype=self.dtype)
        for i in range(len(x)):
            out, calls = self.trace(x[i : i + 1], training=False)
            for j in range(outputs):
                dy = np.zeros_like(out).reshape(1, -1)
                dy[0, j] = 1.0 if scale is None else scale[i, j]
                for call in calls:
                    _reopen(call)
                self.backward(calls, dy.reshape(out.shape), rows[i * outputs + j])
        return rows

    # ------------------------------------------------------------------ state in and out
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Non-trainable layer arrays (e.g. running statistics) by path: part of a checkpoint.
        The arrays are the live ones."""
        return {f"{n.path}.{name}": arr for n in self.walk() for name, arr in n.state.items()}

    def get_params(self) -> dict[str, np.ndarray]:
        """Copies of every weight under its path (trainable and state)."""
        params = {s.key: self.view(self.theta, s).copy() for s in self.slots}
        params.update({k: v.copy() for k, v in self.state_arrays().items()})
        return params

    def set_params(self, params: dict[str, np.ndarray], source: str = "parameters") -> None:
        """Load weights by key; a missing key or a shape mismatch is a clear error."""
        targets = {s.key: self.view(self.theta, s) for s in self.slots}
        targets.update(self.state_arrays())
        for key, target in targets.items():
            if key not in params:
                raise PluginError(
                    f"{source}: missing {key!r} (expected keys: {', '.join(targets)})"
                )
            value = np.asarray(params[key])
            if value.shape != target.shape:
                raise PluginError(
                    f"{source}: {key!r} has shape {value.shape}, the model needs {target.shape}"
                )
            target[...] = value
        extra = sorted(set(params) - set(targets))
        if extra:
            raise PluginError(f"{source}: unexpected key {extra[0]!r} for this model")


def _reopen(call: Call) -> None:
    """Let a recorded call (and its children's) run its backward again (one Jacobian row per
    output)."""
    for record in walk_calls([call]):
        record.backward_done = False
