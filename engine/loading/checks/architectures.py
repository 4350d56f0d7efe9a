"""Architectures: the layer configs exist, or for one that owns its step, its networks
build and two steps run through the declared phases, updating every group."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gradient_lab.engine.loading.checks.common import Check, CheckFailed, seeded_rng
from gradient_lab.engine.loading.checks.layers import CheckInitializer
from gradient_lab.engine.loading.registry import Registry
from gradient_lab.engine.model import Model
from gradient_lab.engine.model.owned_step import Group, OwnedTrainer, network_index


def architecture_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    if cls.owns_step():
        return [
            ("networks build", lambda: _check_networks(cls, registry)),
            ("step runs its phases", lambda: _check_owned_step(cls, registry)),
        ]
    return [("layers exist", lambda: _check_architecture(cls, registry))]


def _check_architecture(cls: Any, registry: Registry) -> str:
    configs = cls().layers((2,), 1, "tanh")
    if not isinstance(configs, list) or not configs:
        raise CheckFailed("layers((2,), 1, 'tanh') must return a non-empty list of layer configs")
    known = registry.names("layer")
    for i, config in enumerate(configs):
        if not isinstance(config, dict) or config.get("type") not in known:
            raise CheckFailed(f"layer {i}: {config!r} has no known layer type")
        options = {k: v for k, v in config.items() if k != "type"}
        registry.create("layer", config["type"], **options)
    return f"layers((2,), 1, 'tanh') gives {len(configs)} valid layer configs"


ARCHITECTURE_INPUT = (2,)  # the sample shape an architecture that owns its step is checked on


def _owned_model(cls: Any, registry: Registry) -> Model:
    networks = cls().networks(ARCHITECTURE_INPUT)
    if not isinstance(networks, dict) or not networks:
        raise CheckFailed("networks((2,)) must return {name: (input shape, layer configs)}")
    in_groups = {n for nets in cls.groups.values() for n in nets}
    if set(networks) != in_groups:
        raise CheckFailed(
            f"groups train the networks {sorted(in_groups)}, networks() builds {sorted(networks)}"
        )
    return Model(
        {name: list(configs) for name, (_, configs) in networks.items()},
        {name: tuple(shape) for name, (shape, _) in networks.items()},
        registry.create,
        CheckInitializer(),
        seeded_rng(9),
    )


def _check_networks(cls: Any, registry: Registry) -> str:
    model = _owned_model(cls, registry)
    if not cls.phases or not cls.losses:
        raise CheckFailed("an architecture that owns its step declares phases and losses")
    sizes = ", ".join(f"{n} {model.network_slice(n).stop - model.network_slice(n).start}"
                      for n in model.networks)  # fmt: skip
    return f"networks build for samples {ARCHITECTURE_INPUT}: {sizes} weights"


def _check_owned_step(cls: Any, registry: Registry) -> str:
    """Two steps on random data with plain SGD per group: the phases come as declared, every
    component is declared and finite, and each group's update moves its own weights only."""
    model = _owned_model(cls, registry)
    loss = registry.create("loss", getattr(cls, "check_loss", "mse"))
    groups = []
    for name, networks in cls.groups.items():
        optimizer = registry.create("optimizer", "sgd", lr=0.01)
        index = network_index(model, tuple(networks))
        state = optimizer.init(model.theta[index])
        state.setdefault("step", np.zeros(1))
        groups.append(Group(name, tuple(networks), index, optimizer, None, 0.01, state))
    trainer = OwnedTrainer(
        cls(),
        model,
        groups,
        loss,
        seeded_rng(10),
        registry.create,
        [],
        1,
        np.zeros_like(model.theta),
    )
    x = seeded_rng(11).normal(size=(8, *ARCHITECTURE_INPUT))
    for step in range(2):
        start = model.theta.copy()
        trainer.begin(x, None, step)
        for phase in cls.phases:
            trainer.next_phase(phase)
        value = trainer.finish()
        assert trainer.context is not None
        components = trainer.context.components
        if set(components) != set(cls.losses) or not math.isfinite(value):
            raise CheckFailed(f"step {step} recorded {components}, declared {cls.losses}")
        for group in groups:
            if np.array_equal(model.theta[group.index], start[group.index]):
                raise CheckFailed(f"step {step}: group {group.name!r} was never updated")
    return f"two steps through {len(cls.phases)} phases; every group's weights moved"
