"""Running layers: forward calls that leave a record, and backward passes that consume it.

The layers are pure, so everything one pass needs is here: the parameter vector it reads, the
gradient vector it adds into, whether it trains, and its random generator. Each forward call
returns a ``Call`` record; the backward of that call reads the record, so several forward calls
may happen before their backwards and a probe in between disturbs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gradient_lab.engine.model.tree import Node
from gradient_lab.engine.plugin_api import Call, PluginError

PROBE_SEED = 0
"""Layers that draw random numbers outside training get a generator seeded with this."""


class Runner:
    """One pass over the layer tree at ``theta``; gradients add into ``grad``."""

    def __init__(
        self,
        theta: np.ndarray,
        grad: np.ndarray | None,
        training: bool,
        rng: np.random.Generator | None,
        state: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.theta, self.grad, self.training = theta, grad, training
        self._rng = rng
        self.state = state  # layer state by path in place of the model's own (a snapshot's)
        # called with ("forward" or "backward", path) after each child call: phase stepping
        self.after_child: Callable[[str, str], None] | None = None
        self.active: list[Call] = []  # calls whose forward has begun and not yet returned

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = np.random.default_rng(PROBE_SEED)
        return self._rng

    # ------------------------------------------------------------------ forward
    def forward(self, node: Node, inputs: tuple[Any, ...]) -> tuple[Any, Call]:
        call = Call(node.path, self.training, self, inputs, node)
        call.params = node.params(self.theta, self.state)
        self.active.append(call)
        try:
            out = node.layer.forward(call, call.params, *inputs)
        except PluginError as exc:
            raise PluginError(f"{node.path} ({node.layer.name}): {exc}") from None
        finally:
            self.active.pop()
        call.output = out
        return out, call

    def forward_child(self, parent: Call, name: str, inputs: tuple[Any, ...]) -> Any:
        child = self._child(parent, name)
        out, call = self.forward(child, inputs)
        parent.children.setdefault(name, []).append(call)
        if self.after_child is not None:
            self.after_child("forward", child.path)
        return out

    def set_state(self, call: Call, name: str, value: np.ndarray) -> None:
        """Training passes update a layer's state (running statistics); probes never do."""
        node: Node = call.node
        if name not in node.state:
            raise PluginError(f"{node.path}: set_state({name!r}): not a state of this layer")
        if self.training and self.state is None:
            node.state[name][...] = value

    # ------------------------------------------------------------------ backward
    def backward(self, call: Call, dy: Any) -> Any:
        """Backward through one recorded call; its parameter gradients add into ``grad``."""
        node: Node = call.node
        if call.backward_done:
            raise PluginError(f"{node.path}: this call's backward already ran")
        call._runner = self  # children's backwards add into this pass's gradient
        result = node.layer.backward(call, call.params, dy)
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
            raise PluginError(
                f"{node.path} ({node.layer.name}): backward must return (dx, grads), "
                f"got {type(result).__name__}"
            )
        dx, grads = result
        self._add_gradients(node, grads)
        call.backward_done = True
        return dx

    def backward_child(self, parent: Call, name: str, dy: Any) -> Any:
        """Backward through the child's latest call that has not had its backward yet."""
        pending = [c for c in parent.children.get(name, []) if not c.backward_done]
        if not pending:
            raise PluginError(f"{parent.path}: backward({name!r}) without a forward call first")
        dx = self.backward(pending[-1], dy)
        if self.after_child is not None:
            self.after_child("backward", pending[-1].path)
        return dx

    def _add_gradients(self, node: Node, grads: dict[str, np.ndarray]) -> None:
        extra = sorted(set(grads) - set(node.slots))
        if extra:
            raise PluginError(
                f"{node.path} ({node.layer.name}) returned a gradient for {extra[0]!r}, "
                f"which is not one of its trainable weights ({', '.join(node.slots) or 'none'})"
            )
        for name, slot in node.slots.items():
            if name not in grads:
                raise PluginError(
                    f"{node.path} ({node.layer.name}) returned no gradient for {name!r}"
                )
            g = np.asarray(grads[name])
            if g.shape != slot.shape:
                raise PluginError(
                    f"{node.path} ({node.layer.name}) returned a gradient for {name!r} shaped "
                    f"{g.shape}, expected {slot.shape}"
                )
            if self.grad is not None:
                self.grad[slot.offset : slot.offset + slot.size] += g.ravel()

    @staticmethod
    def _child(parent: Call, name: str) -> Node:
        node: Node = parent.node
        if name not in node.children:
            known = ", ".join(node.children) or "none"
            raise PluginError(f"{node.path}: no child layer {name!r} (children: {known})")
        return node.children[name]


def walk_calls(calls: list[Call]) -> list[Call]:
    """Every record under these calls, parents first (a child called twice appears twice)."""
    out: list[Call] = []
    for call in calls:
        out.append(call)
        for children in call.children.values():
            out.extend(walk_calls(children))
    return out


def find_call(calls: list[Call], path: str) -> Call | None:
    """The latest record of the layer at ``path``, or None when it has not run."""
    found = [c for c in walk_calls(calls) if c.path == path]
    return found[-1] if found else None


def layer_losses(calls: list[Call]) -> dict[str, float]:
    """The loss terms layers added (a VAE's KL), summed by name over every record."""
    terms: dict[str, float] = {}
    for call in walk_calls(calls):
        for name, value in call.losses.items():
            terms[name] = terms.get(name, 0.0) + value
    return terms
