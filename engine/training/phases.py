"""The phases of a training step, down into the children of composite layers.

A supervised step is: select a batch, forward through each layer, the loss, backward through
each layer in reverse, the update. A composite layer (a transformer block) adds a phase for
every child call, in the order its code makes them: the order is read once from a dry run on
one sample, and checked again at every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradient_lab.engine.model import Model


@dataclass(frozen=True)
class Phase:
    """``kind`` is "select batch", "forward", "loss", "backward", "update" or the name of a
    phase of an architecture's own step; ``layer`` the top-level layer of a forward or backward,
    ``path`` the child it ends with (None for the layer's own end)."""

    kind: str
    layer: int | None = None
    path: str | None = None

    @property
    def name(self) -> str:
        if self.layer is None:
            return self.kind
        where = str(self.layer) if self.path is None else self.path.split(".", 1)[1]
        return f"{self.kind} {where}"


def child_calls(model: Model, k: int, sample: np.ndarray) -> tuple[list[str], list[str]]:
    """The paths of layer k's child calls as they finish, in its forward and in its backward."""
    order: dict[str, list[str]] = {"forward": [], "backward": []}
    runner = model.runner(training=False, grad=np.zeros_like(model.theta))
    x = sample
    for j in range(k):
        x, _ = model.forward_layer(j, x, runner)
    runner.after_child = lambda direction, path: order[direction].append(path)
    y, call = model.forward_layer(k, x, runner)
    runner.backward(call, np.ones_like(y))
    return order["forward"], order["backward"]


def supervised_phases(model: Model, sample: np.ndarray) -> list[Phase]:
    """Every phase of the default step for this model; ``sample`` is one input (batch of 1)."""
    forward: list[Phase] = []
    backward: list[list[Phase]] = []
    for k, node in enumerate(model.nodes):
        if node.children:
            down, up = child_calls(model, k, sample)
        else:
            down, up = [], []
        forward += [Phase("forward", k, path) for path in down] + [Phase("forward", k)]
        backward.append([Phase("backward", k, path) for path in up] + [Phase("backward", k)])
    ordered_backward = [phase for layer in reversed(backward) for phase in layer]
    return [Phase("select batch"), *forward, Phase("loss"), *ordered_backward, Phase("update")]
