"""Layers, built alone: output shapes as declared, backward against differences in both
modes, purity (nothing kept on the layer object), a fusion description that the fused
kernels agree with, and a rebuild from the configuration."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.compute.activations import activation_args
from gradient_lab.engine.loading.checks.common import (
    EXACT_RTOL,
    Check,
    CheckFailed,
    compare,
    compare_differences,
    norm_tol,
    seeded_rng,
)
from gradient_lab.engine.loading.registry import Registry
from gradient_lab.engine.model.calls import Runner, layer_losses
from gradient_lab.engine.model.single import SingleLayer
from gradient_lab.engine.plugin_api import ActivationFusion, Call, DenseFusion, Initializer, Layer

BATCH = 4  # samples in a layer's test batch
OTHER_BATCH = 3  # a second batch size: shapes must not depend on the check's
LAYER_INPUT_SHAPE = (5,)
# Built-in layers that need another sample shape than LAYER_INPUT_SHAPE; a plugin says so itself
# with a class attribute ``check_input_shape``.
SAMPLE_SHAPES: dict[str, tuple[int, ...]] = {"flatten": (2, 3, 4)}


class CheckInitializer(Initializer):
    """Xavier-uniform weights for the layers under test, independent of the initializer plugins."""

    name = "conformance_xavier"
    formula = r"W \sim \mathcal{U}(-a, a),\ a = \sqrt{6 / (n_{in} + n_{out})}"
    teaching = "The weights the conformance check builds layers with."

    def sample(
        self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        bound = math.sqrt(6.0 / max(1, fan_in + fan_out))
        return rng.uniform(-bound, bound, size=shape)


def layer_input_shape(cls: Any) -> tuple[int, ...]:
    """The sample shape a layer is checked with (``check_input_shape`` overrides the default)."""
    declared = getattr(cls, "check_input_shape", None)
    if declared is not None:
        return tuple(int(n) for n in declared)
    return SAMPLE_SHAPES.get(cls.name, LAYER_INPUT_SHAPE)


class _LayerRig:
    """A layer built alone, run purely at any theta: the same random draws (dropout masks) and
    the same starting state in every run, so differences are exact."""

    def __init__(
        self, cls: Any, registry: Registry, seed_offset: int = 0, layer: Layer | None = None
    ) -> None:
        self.shape = layer_input_shape(cls)
        self.single = SingleLayer(
            cls() if layer is None else layer,
            self.shape,
            registry.create,
            CheckInitializer(),
            seeded_rng(2 + seed_offset),
        )
        self.layer, self.node, self.theta = self.single.layer, self.single.node, self.single.theta
        self.nodes = self.single.nodes
        self.state = {k: v.copy() for k, v in self.single.state.items()}
        self.x = seeded_rng(3).normal(size=(BATCH, *self.shape))

    def run(
        self, x: np.ndarray, training: bool, theta: np.ndarray | None = None
    ) -> tuple[np.ndarray, Call, Runner]:
        for key, arr in self.single.state.items():
            arr[...] = self.state[key]
        runner = Runner(
            self.theta if theta is None else theta,
            np.zeros(self.theta.size),
            training,
            np.random.default_rng(7),
        )
        y, call = runner.forward(self.node, (x,))
        return np.asarray(y), call, runner

    def forward(self, x: np.ndarray, training: bool, theta: np.ndarray | None = None) -> np.ndarray:
        return self.run(x, training, theta)[0]

    def objective(
        self, x: np.ndarray, training: bool, r: np.ndarray, theta: np.ndarray | None = None
    ) -> float:
        """L = sum(forward(x) * r) plus the loss terms the layer (or a child) adds."""
        y, call, _ = self.run(x, training, theta)
        return float(np.sum(y * r)) + sum(layer_losses([call]).values())

    def gradients(
        self, x: np.ndarray, training: bool, r: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """dL/dx and dL/dtheta of L = sum(forward(x) * r)."""
        _, call, runner = self.run(x, training)
        dx = runner.backward(call, r)
        assert runner.grad is not None
        return np.asarray(dx), runner.grad

    def slots(self) -> list[Any]:
        return self.single.slots


def layer_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [
        ("output shape", lambda: _check_output_shape(cls, registry)),
        ("backward vs finite differences", lambda: _check_backward(cls, registry)),
        ("pure", lambda: _check_pure(cls, registry)),
        ("fused agrees", lambda: _check_fusion(cls, registry)),
        ("config rebuild", lambda: _check_rebuild(cls, registry)),
    ]


def _check_output_shape(cls: Any, registry: Registry) -> str:
    rig = _LayerRig(cls, registry)
    declared = tuple(rig.layer.output_shape(rig.shape))
    for batch in (BATCH, OTHER_BATCH):
        x = seeded_rng(6).normal(size=(batch, *rig.shape))
        for training in (False, True):
            mode = "training" if training else "evaluation"
            y = rig.forward(x, training)
            if y.shape != (batch, *declared):
                raise CheckFailed(
                    f"forward ({mode}, batch {batch}) gave {y.shape}, output_shape{rig.shape} "
                    f"says {(batch, *declared)}"
                )
            dx, _ = rig.gradients(x, training, np.ones(y.shape))
            if dx.shape != x.shape:
                raise CheckFailed(
                    f"backward ({mode}, batch {batch}) gave dL/dx shaped {dx.shape}, "
                    f"the input is {x.shape}"
                )
    return (
        f"input {rig.shape} -> output {declared}, as output_shape says, and dL/dx has the "
        f"input's shape, at batch sizes {BATCH} and {OTHER_BATCH}"
    )


def _check_backward(cls: Any, registry: Registry) -> str:
    return "; ".join(
        _backward_mode(_LayerRig(cls, registry), training) for training in (False, True)
    )


def _backward_mode(rig: _LayerRig, training: bool) -> str:
    """Input and weight gradients vs differences of L = sum(forward(x) * R) + the layer's own
    loss terms, in one mode."""
    mode = "training" if training else "evaluation"
    r = seeded_rng(4).normal(size=rig.forward(rig.x, training).shape)
    dx, grad = rig.gradients(rig.x, training, r)

    def loss_of_x(x: np.ndarray) -> float:
        return rig.objective(x, training, r)

    compare_differences(f"{mode}: dL/dx and differences", dx, loss_of_x, rig.x)
    slots = rig.slots()
    for slot in slots:
        compare_differences(
            f"{mode}: dL/d{slot.name} and differences",
            grad[slot.offset : slot.offset + slot.size].reshape(slot.shape),
            _weight_loss(rig, slot, r, training),
            rig.theta[slot.offset : slot.offset + slot.size].reshape(slot.shape),
        )
    return f"{mode}: input and {len(slots)} weight gradients match"


def _weight_loss(
    rig: _LayerRig, slot: Any, r: np.ndarray, training: bool
) -> Callable[[np.ndarray], float]:
    """L as a function of one weight array, at a copy of theta (the layer is pure)."""

    def loss(values: np.ndarray) -> float:
        theta = rig.theta.copy()
        theta[slot.offset : slot.offset + slot.size] = values.ravel()
        return rig.objective(rig.x, training, r, theta)

    return loss


def _fingerprint(layer: Layer) -> dict[str, Any]:
    """Every attribute of the layer object, down to the identity of a dict's or list's items
    and the bytes of an array: forward and backward must leave all of it as it was."""

    def of(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return (id(value), value.tobytes())
        if isinstance(value, dict):
            return (id(value), tuple((k, id(v)) for k, v in value.items()))
        if isinstance(value, list):
            return (id(value), tuple(id(v) for v in value))
        return id(value)

    return {name: of(value) for name, value in vars(layer).items()}


def _check_pure(cls: Any, registry: Registry) -> str:
    """Forward and backward keep nothing on the layer, and two calls in flight stay apart."""
    rig = _LayerRig(cls, registry)
    layers = [node.layer for node in rig.nodes]
    before = [_fingerprint(layer) for layer in layers]
    for training in (False, True):
        mode = "training" if training else "evaluation"
        r = seeded_rng(4).normal(size=rig.forward(rig.x, training).shape)
        alone, _ = rig.gradients(rig.x, training, r)
        other = seeded_rng(8).normal(size=rig.x.shape)
        _, first, runner = rig.run(rig.x, training)
        runner.forward(rig.node, (other,))  # a second call before the first one's backward
        both = np.asarray(runner.backward(first, r))
        changed = [
            f"{layer.name}.{name}"
            for layer, fingerprint in zip(layers, before, strict=True)
            for name in set(fingerprint) | set(_fingerprint(layer))
            if fingerprint.get(name) != _fingerprint(layer).get(name)
        ]
        if changed:
            raise CheckFailed(
                f"{mode}: forward or backward changed the layer's attribute "
                f"{sorted(changed)[0]!r}: keep what backward needs with ctx.save, values "
                "for the viewer with ctx.observe"
            )
        compare(
            f"{mode}: dL/dx with a second call in flight and alone",
            both,
            alone,
            EXACT_RTOL,
            norm_tol(alone, EXACT_RTOL),
        )
    return "forward and backward leave the layer unchanged; two calls in flight stay apart"


def _fused_net(rig: _LayerRig, fusion: Any, n_in: int, n_out: int) -> tuple[tuple[Any, ...], Any]:
    """The layer in the kernels' one-layer layout, and its weights packed into a flat theta."""
    w_off, b_off, parts = -1, -1, []
    params = rig.node.params(rig.theta)
    if isinstance(fusion, DenseFusion):
        missing = {fusion.weight, fusion.bias} - set(params) - {""}
        if missing:
            raise CheckFailed(f"fusion names weight {sorted(missing)[0]!r}, which it lacks")
        w = np.asarray(params[fusion.weight], dtype=np.float64)
        if w.shape != (n_in, n_out):
            raise CheckFailed(f"fused weight {fusion.weight!r} is {w.shape}, not {(n_in, n_out)}")
        w_off, parts = 0, [w.ravel()]
        if fusion.bias:
            b_off = w.size
            parts.append(np.asarray(params[fusion.bias], dtype=np.float64).ravel())
    elif n_in != n_out:
        raise CheckFailed(f"an activation fusion needs equal widths, got {n_in} -> {n_out}")
    code, a, b, fn, dfn = activation_args(fusion.activation)
    net = (
        np.array([w_off], dtype=np.int64),
        np.array([b_off], dtype=np.int64),
        np.array([n_in], dtype=np.int64),
        np.array([n_out], dtype=np.int64),
        np.array([code], dtype=np.int64),
        np.array([a]),
        np.array([b]),
    )
    theta = np.concatenate(parts) if parts else np.zeros(0)
    return net, (theta, fn, dfn)


def _check_fusion(cls: Any, registry: Registry) -> str | None:
    rig = _LayerRig(cls, registry)
    layer = rig.layer
    fusion = layer.fusion()
    out_shape = tuple(layer.output_shape(rig.shape))
    if not isinstance(fusion, (DenseFusion, ActivationFusion)):
        return None
    if len(rig.shape) != 1 or len(out_shape) != 1:
        return None  # the fused kernels only take flat samples
    n_in, n_out = rig.shape[0], out_shape[0]
    net, (theta, fn, dfn) = _fused_net(rig, fusion, n_in, n_out)
    x = np.ascontiguousarray(rig.x)
    z, y = np.empty((BATCH, n_out)), np.empty((BATCH, n_out))
    flat = np.ravel  # the kernels take flat blocks; these views write through to z, y, dz, dx
    n = len(x)
    spec = kernels.layer_spec(net, 0, kernels.SMALL_MATMUL)
    kernels.forward_layer(spec, theta, flat(x), 0, flat(z), 0, flat(y), 0, n, fn)
    expected = rig.forward(x, False)
    compare("fused and plugin outputs", y, expected, EXACT_RTOL, norm_tol(expected, EXACT_RTOL))
    r = seeded_rng(4).normal(size=(BATCH, n_out))
    dz, dx, grad = np.empty_like(z), np.empty_like(x), np.zeros(theta.size)
    kernels.backward_layer(
        spec, theta, flat(x), 0, flat(z), 0, flat(y), 0, flat(r), 0, flat(dz), 0, flat(dx), 0,
        n, grad, dfn, True, True,
    )  # fmt: skip
    expected_dx, expected_grad = rig.gradients(x, False, r)
    compare(
        "fused and plugin input gradients",
        dx,
        expected_dx,
        EXACT_RTOL,
        norm_tol(expected_dx, EXACT_RTOL),
    )
    _compare_fused_grads(rig, fusion, grad, expected_grad)
    return f"{type(fusion).__name__}: the fused kernels give the same forward and backward"


def _compare_fused_grads(rig: _LayerRig, fusion: Any, grad: Any, plugin_grad: Any) -> None:
    if not isinstance(fusion, DenseFusion):
        return
    slots = rig.node.slots
    w_size = slots[fusion.weight].size
    names = [(fusion.weight, 0, w_size)]
    if fusion.bias:
        names.append((fusion.bias, w_size, grad.size))
    for name, start, stop in names:
        slot = slots[name]
        expected = plugin_grad[slot.offset : slot.offset + slot.size]
        compare(
            f"fused and plugin gradients of {name!r}",
            grad[start:stop],
            expected,
            EXACT_RTOL,
            norm_tol(expected, EXACT_RTOL),
        )


def _check_rebuild(cls: Any, registry: Registry) -> str:
    rig = _LayerRig(cls, registry)
    config = rig.layer.get_config()
    again = _LayerRig(cls, registry, seed_offset=3, layer=cls(**config))
    first, second = rig.layer.output_shape(rig.shape), again.layer.output_shape(rig.shape)
    if tuple(first) != tuple(second):
        raise CheckFailed(f"rebuilt from get_config the output shape is {second}, not {first}")
    y = again.forward(rig.x, False)
    if y.shape != (BATCH, *first):
        raise CheckFailed(f"the rebuilt layer's forward gave {y.shape}")
    return "a layer rebuilt from get_config builds and runs with the same output shape"
