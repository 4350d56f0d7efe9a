"""Running a training step an architecture owns (a GAN, a VAE) over a model of named networks.

The architecture writes its step as a generator that yields the name of each phase as it ends;
the session advances it one phase at a time, or runs it through for a whole step. Each
parameter group (the networks it trains) has its own optimizer, learning rate schedule and
optimizer state; the state of every group is part of the session's checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradient_lab.engine.model import Model
from gradient_lab.engine.model.calls import Runner, layer_losses
from gradient_lab.engine.model.chain import chained_update
from gradient_lab.engine.plugin_api import Architecture, Call, PluginError, StepContext


@dataclass
class Group:
    """One parameter group: where its weights lie in theta and how they are optimized."""

    name: str
    networks: tuple[str, ...]
    index: np.ndarray  # positions in theta
    optimizer: Any
    schedule: Any
    base_lr: float
    state: dict[str, np.ndarray]


@dataclass
class Record:
    """One network's forward pass inside an owned step: its calls, for the backward."""

    network: str
    calls: list[Call]


class OwnedStepContext(StepContext):
    """The session's side of an architecture's step, for one minibatch."""

    def __init__(self, trainer: OwnedTrainer, x: np.ndarray, targets: Any, step: int) -> None:
        self.trainer, self.x, self.targets, self.step = trainer, x, targets, step
        self.rng = trainer.noise
        self.loss = trainer.loss
        self.components: dict[str, float] = {}
        self.calls: list[Call] = []
        self._runner = Runner(trainer.model.theta, trainer.model.grad, True, trainer.noise)

    def forward(self, network: str, x: np.ndarray) -> tuple[np.ndarray, Record]:
        model = self.trainer.model
        calls = []
        for k in model.network(network):
            x, call = model.forward_layer(k, x, self._runner)
            calls.append(call)
        self.calls.extend(calls)
        return x, Record(network, calls)

    def backward(self, record: Any, dy: np.ndarray) -> np.ndarray:
        if not isinstance(record, Record):
            raise PluginError("backward needs the record that forward returned")
        for call in reversed(record.calls):
            dy = self._runner.backward(call, dy)
        return dy

    def zero_grad(self, group: str) -> None:
        self.trainer.model.grad[self.trainer.group(group).index] = 0.0

    def update(self, group: str) -> None:
        self.trainer.update(self.trainer.group(group), self.step)

    def record(self, name: str, value: float) -> None:
        if name not in self.trainer.architecture.losses:
            declared = ", ".join(self.trainer.architecture.losses)
            raise PluginError(f"record({name!r}): the architecture declares losses {declared}")
        self.components[name] = self.components.get(name, 0.0) + float(value)

    def make(self, kind: str, name: str, **hp: Any) -> Any:
        return self.trainer.make(kind, name, **hp)


class OwnedTrainer:
    """Drives an architecture's own step over a model of named networks."""

    def __init__(
        self,
        architecture: Architecture,
        model: Model,
        groups: list[Group],
        loss: Any,
        noise: np.random.Generator,
        make: Any,
        regularizers: list[Any],
        steps_per_epoch: int,
        last_update: np.ndarray,
    ) -> None:
        self.architecture, self.model, self.groups = architecture, model, groups
        self.loss, self.noise, self.make, self.regularizers = loss, noise, make, regularizers
        self.steps_per_epoch, self.last_update = steps_per_epoch, last_update
        self.context: OwnedStepContext | None = None
        self._phases: Iterator[str] | None = None

    def group(self, name: str) -> Group:
        for g in self.groups:
            if g.name == name:
                return g
        known = ", ".join(g.name for g in self.groups)
        raise PluginError(f"no parameter group {name!r} (groups: {known})")

    def lr_at(self, group: Group, step: int) -> float:
        if group.schedule is None:
            return group.base_lr
        per = group.schedule.hp.get("per", "epoch")
        t = step if per == "step" else step // self.steps_per_epoch
        return float(group.schedule.lr(group.base_lr, t))

    # ------------------------------------------------------------------ one step
    def begin(self, x: np.ndarray, targets: Any, step: int) -> None:
        self.context = OwnedStepContext(self, x, targets, step)
        self._phases = iter(self.architecture.train_step(self.context))

    def next_phase(self, expected: str) -> None:
        """Run the step up to the end of phase ``expected`` (the declared next one)."""
        assert self._phases is not None
        try:
            name = next(self._phases)
        except StopIteration:
            raise PluginError(
                f"{self.architecture.name}: train_step ended before phase {expected!r}"
            ) from None
        if name != expected:
            raise PluginError(
                f"{self.architecture.name}: train_step yielded {name!r} where its declared "
                f"phases have {expected!r}"
            )

    def finish(self) -> float:
        """End the step: the generator must be done; returns the step's loss (the sum of the
        recorded components)."""
        assert self._phases is not None and self.context is not None
        for name, value in layer_losses(self.context.calls).items():
            self.context.record(name, value)
        extra = next(self._phases, None)
        if extra is not None:
            raise PluginError(
                f"{self.architecture.name}: train_step yielded {extra!r} after its last "
                "declared phase"
            )
        self._phases = None
        return float(sum(self.context.components.values()))

    def update(self, group: Group, step: int) -> None:
        """One optimizer step on the group's weights: regularizers, then its optimizer."""
        theta, grad, mask = self.model.theta, self.model.grad, self.model.decay_mask
        idx = group.index
        lr = self.lr_at(group, step)
        if "lr" in group.optimizer.hp:
            group.optimizer.hp["lr"] = lr
        w = theta[idx]
        update, state, seen = chained_update(
            self.regularizers, group.optimizer, grad[idx], group.state, w, mask[idx], lr
        )
        grad[idx] = seen  # views show the gradient the optimizer used
        for key, value in state.items():
            if key in group.state and group.state[key] is not value:
                group.state[key][...] = value
            else:
                group.state[key] = value
        theta[idx] = w + update
        self.last_update[idx] = update

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """Every group's optimizer arrays under ``group.name``: the live arrays."""
        return {f"{g.name}.{k}": v for g in self.groups for k, v in g.state.items()}


def network_index(model: Model, networks: tuple[str, ...]) -> np.ndarray:
    """The positions in theta of the weights of these networks."""
    parts = [np.arange(model.network_slice(n).start, model.network_slice(n).stop) for n in networks]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
