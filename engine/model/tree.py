"""The layer tree: every layer and child layer at its path, and where its weights live in theta.

A path names a layer as PyTorch's ``named_parameters`` does: ``layers.3`` is the fourth top-level
layer, ``layers.3.attn`` its child ``attn``, and ``layers.3.attn.W_q`` one of that child's
weights. Trainable weights are slices of one flat vector theta; state (running statistics) is
kept apart, also by path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradient_lab.engine.plugin_api import BuildContext, Layer


@dataclass(frozen=True)
class Slot:
    """Where one trainable weight lives in theta: ``layer`` is the index of its top-level layer
    in the model, ``name`` is relative to that layer (``W``, or ``inner.W`` for a child's) and
    ``key`` the whole path (``layers.1.inner.W``, ``generator.layers.0.W``)."""

    layer: int
    name: str
    offset: int
    shape: tuple[int, ...]
    key: str

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))  # views ask it of every slot at every frame

    @property
    def weight_name(self) -> str:
        """The name the layer itself uses (the last part of the path)."""
        return self.name.rsplit(".", 1)[-1]


@dataclass
class Node:
    """One layer in the tree: its path, its own weights' slots and state, and its children."""

    path: str
    top: int
    layer: Layer
    input_shape: Any
    slots: dict[str, Slot] = field(default_factory=dict)
    state: dict[str, np.ndarray] = field(default_factory=dict)
    children: dict[str, Node] = field(default_factory=dict)

    def walk(self) -> list[Node]:
        """This node and every node below it, parents first."""
        out = [self]
        for child in self.children.values():
            out.extend(child.walk())
        return out

    def params(
        self, theta: np.ndarray, state: Mapping[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """The layer's weights (from ``theta``) and state (its own, or ``state`` by path, as a
        snapshot holds it) as read-only arrays, by name."""
        out: dict[str, np.ndarray] = {}
        for name, slot in self.slots.items():
            view = theta[slot.offset : slot.offset + slot.size].reshape(slot.shape)
            view.flags.writeable = False
            out[name] = view
        for name, arr in self.state.items():
            if state is not None:
                arr = state[f"{self.path}.{name}"]
            view = arr.view()
            view.flags.writeable = False
            out[name] = view
        return out


def pack_node(
    layer: Layer,
    ctx: BuildContext,
    input_shape: Any,
    path: str,
    top: int,
    offset: int,
    values: list[np.ndarray],
    top_path: str | None = None,
) -> tuple[Node, int]:
    """The node of a built layer, its trainable weights given offsets from ``offset`` on (their
    initial values appended to ``values``); children follow their parent in theta."""
    node = Node(path, top, layer, input_shape)
    top_path = path if top_path is None else top_path
    prefix = path[len(top_path) + 1 :] + "." if path != top_path else ""
    for name, value in ctx.weights.items():
        if name in ctx.trainable:
            slot = Slot(top, prefix + name, offset, tuple(value.shape), f"{path}.{name}")
            node.slots[name] = slot
            values.append(value.ravel())
            offset += value.size
        else:
            node.state[name] = np.array(value)
    for name, (child, child_ctx, child_shape) in ctx.children.items():
        node.children[name], offset = pack_node(
            child, child_ctx, child_shape, f"{path}.{name}", top, offset, values, top_path
        )
    return node, offset
