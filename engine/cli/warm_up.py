"""``gradient-lab warm-up``: compile the kernels once, at install, with a progress bar.

Numba compiles a kernel the first time it runs and caches it on disk; on a fresh machine the
default experiment alone waits about 19 s for that. The install command runs this, so a
classroom's first launch loads every kernel from the cache instead.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

Step = tuple[str, Callable[[], Any]]


def warm_up_steps(registry: Any) -> list[Step]:
    """Every compile: the fused training kernels (both precisions, with and without BLAS), the
    compiled activations, each built-in layer's own kernels (run once through forward and
    backward), and the training-health kernels."""
    from gradient_lab.engine.compute.fused import FusedNet

    steps: list[Step] = []
    for dtype in (np.float64, np.float32):
        for blas_above in (None, 1):
            variant = f"{np.dtype(dtype).name}{', BLAS' if blas_above else ''}"
            steps += [
                (f"{label} ({variant})", run)
                for label, run in FusedNet.warm_up_steps(dtype, blas_above)
            ]
    for record in registry.ok_records():
        if record.source != "builtin":
            continue
        if record.kind == "activation":
            steps.append((f"built-in activation {record.name}", _activation(record.cls)))
        elif record.kind == "layer":
            steps.append((f"built-in layer {record.name}", _layer(record.cls, registry)))
    steps.append(("training health", lambda: _health(registry)))
    return steps


def _activation(cls: Any) -> Callable[[], Any]:
    def run() -> None:
        act = cls()
        z = np.linspace(-1.0, 1.0, 4)
        act.gradient(z, act.apply(z), np.ones_like(z))

    return run


def _layer(cls: Any, registry: Any) -> Callable[[], Any]:
    def run() -> None:
        from gradient_lab.engine.loading.conformance import CheckInitializer, layer_input_shape
        from gradient_lab.engine.model.single import SingleLayer

        shape = layer_input_shape(cls)
        rng = np.random.default_rng(0)
        layer = SingleLayer(cls(), shape, registry.create, CheckInitializer(), rng)
        x = rng.normal(size=(3, *shape))
        for training in (True, False):
            y = layer.forward(x, training=training, rng=np.random.default_rng(1))
            layer.backward(np.ones_like(y))

    return run


HEALTH_EXPERIMENT = """
schema = 1
[data]
dataset = "circle"
n = 20
[model]
layers = [{ type = "dense", units = 4, activation = "tanh" }, { type = "dense", units = 1 }]
[training]
loss = "mse"
optimizer = { name = "sgd", lr = 0.1 }
"""


def _health(registry: Any) -> None:
    from gradient_lab.engine.instruments.diagnostics import HealthRecorder
    from gradient_lab.engine.training.experiment import parse_experiment
    from gradient_lab.engine.training.session import Session

    session = Session(parse_experiment(HEALTH_EXPERIMENT, registry), registry)
    HealthRecorder(session, every=1).record(0)


def command_warm_up(args: argparse.Namespace, registry: Any) -> int:
    steps = warm_up_steps(registry)
    started = time.perf_counter()
    width = 30
    for done, (label, run) in enumerate(steps):
        if not args.quiet:
            filled = width * done // len(steps)
            bar = "#" * filled + "-" * (width - filled)
            print(f"\rcompiling [{bar}] {done}/{len(steps)} {label:<40.40}", end="", flush=True)
        run()
    seconds = time.perf_counter() - started
    if not args.quiet:
        print(f"\rcompiled {len(steps)} kernels and layers in {seconds:.1f} s{' ' * 50}")
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    warm = sub.add_parser(
        "warm-up",
        parents=[common],
        help="compile every kernel now (the install command runs this)",
    )
    warm.add_argument("--quiet", action="store_true", help="no progress bar")
