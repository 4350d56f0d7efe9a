"""A model: layer plugins in order, with all trainable weights packed in one flat vector.

Packing lets optimizers, checkpoints, landscapes and Jacobians see one vector ``theta`` while each
layer keeps reading its own named arrays (which are views into ``theta``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gradient_lab.engine.plugin_api import BuildContext, Initializer, Layer, PluginError


@dataclass(frozen=True)
class Slot:
    """Where one named weight lives in theta."""

    layer: int
    name: str
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def key(self) -> str:
        return f"layers.{self.layer}.{self.name}"


class Model:
    """Layers built for a sample shape, their trainable weights packed into ``theta``."""

    def __init__(
        self,
        layer_configs: list[dict[str, Any]],
        input_shape: tuple[int, ...],
        make: Any,
        initializer: Initializer,
        rng: np.random.Generator,
        dtype: Any = np.float64,
    ) -> None:
        self.dtype = np.dtype(dtype)
        self.configs = [dict(c) for c in layer_configs]
        self.layers: list[Layer] = []
        self.shapes: list[tuple[int, ...]] = [tuple(input_shape)]
        ctx = BuildContext(rng=rng, initializer=initializer, dtype=self.dtype, make=make)
        for i, config in enumerate(self.configs):
            options = {k: v for k, v in config.items() if k != "type"}
            try:
                layer = make("layer", config["type"], **options)
                layer.build(self.shapes[-1], ctx)
                out_shape = tuple(layer.output_shape(self.shapes[-1]))
            except PluginError as exc:
                raise PluginError(f"model.layers[{i}]: {exc}") from None
            self.layers.append(layer)
            self.shapes.append(out_shape)
        self._pack()

    def _pack(self) -> None:
        slots, offset = [], 0
        for i, layer in enumerate(self.layers):
            for name in layer.trainable:
                shape = tuple(layer.weights[name].shape)
                slots.append(Slot(i, name, offset, shape))
                offset += int(np.prod(shape, dtype=np.int64))
        self.slots: list[Slot] = slots
        self.theta = np.zeros(offset, dtype=self.dtype)
        self.grad = np.zeros(offset, dtype=self.dtype)
        self.decay_mask = np.zeros(offset, dtype=self.dtype)
        for s in slots:
            layer = self.layers[s.layer]
            self.theta[s.offset : s.offset + s.size] = np.asarray(layer.weights[s.name]).ravel()
            layer.weights[s.name] = self.view(self.theta, s)
            if s.name in layer.decay_names:
                self.decay_mask[s.offset : s.offset + s.size] = 1.0

    @staticmethod
    def view(vector: np.ndarray, slot: Slot) -> np.ndarray:
        return vector[slot.offset : slot.offset + slot.size].reshape(slot.shape)

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

    # ------------------------------------------------------------------ generic passes
    def forward_layer(self, k: int, x: np.ndarray, training: bool) -> np.ndarray:
        return self.layers[k].forward(x, training)

    def backward_layer(self, k: int, dy: np.ndarray) -> np.ndarray:
        """Backward through layer k; its parameter gradients land in ``self.grad``."""
        layer = self.layers[k]
        dx = layer.backward(dy)
        for s in self.layer_slots(k):
            g = layer.grads[s.name]
            if g.shape != s.shape:
                raise PluginError(
                    f"layer {k} ({layer.name}) returned a gradient for {s.name!r} shaped "
                    f"{g.shape}, expected {s.shape}"
                )
            self.view(self.grad, s)[...] = g
        return dx

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        for k in range(len(self.layers)):
            x = self.forward_layer(k, x, training)
        return x

    def output_jacobian(self, x: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
        """d outputs / d theta in evaluation mode: one row per (sample, output), sample-major,
        from one backward pass each with upstream gradient 1 (or ``scale[i, j]``). Overwrites
        the gradient buffer and the layers' caches."""
        outputs = int(np.prod(self.output_shape))
        rows = np.zeros((len(x) * outputs, self.n_params), dtype=self.dtype)
        for i in range(len(x)):
            for j in range(outputs):
                out = self.forward(x[i : i + 1], training=False)
                dy = np.zeros_like(out).reshape(1, -1)
                dy[0, j] = 1.0 if scale is None else scale[i, j]
                grad = dy.reshape(out.shape)
                for k in range(len(self.layers) - 1, -1, -1):
                    grad = self.backward_layer(k, grad)
                rows[i * outputs + j] = self.grad
        return rows

    # ------------------------------------------------------------------ state in and out
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Non-trainable layer arrays (e.g. running statistics): part of a checkpoint."""
        out = {}
        for i, layer in enumerate(self.layers):
            for name, arr in layer.weights.items():
                if name not in layer.trainable:
                    out[f"layers.{i}.{name}"] = arr
        return out

    def get_params(self) -> dict[str, np.ndarray]:
        """Copies of every weight under ``layers.{i}.{name}`` (trainable and state)."""
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
