"""The compiled path for stacks of dense and activation layers.

``FusedNet`` describes such a model to the kernels and owns the work buffers, so a session can
run one phase at a time or many steps in one compiled call with the same arithmetic; ``warm_up``
compiles them ahead with visible progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.compute.activations import activation_args
from gradient_lab.engine.model import Model
from gradient_lab.engine.plugin_api import (
    ActivationFusion,
    DenseFusion,
    Loss,
    Optimizer,
    Regularizer,
)


def inline_rules(
    loss: Loss, optimizer: Optimizer, regularizers: list[Regularizer]
) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """Kernel codes for the loss, optimizer and regularizers, or None if one has no fast path."""
    loss_code = kernels.LOSS_CODES.get(loss.inline_name())
    rule = kernels.OPTIMIZER_RULES.get(optimizer.inline)
    if loss_code is None or rule is None:
        return None
    codes, values = [], []
    for reg in regularizers:
        reg_rule = kernels.REGULARIZER_RULES.get(reg.inline)
        if reg_rule is None:
            return None
        codes.append(reg_rule[0])
        values.append(float(reg.hp[reg_rule[1]]))
    return loss_code, rule[0], np.array(codes, dtype=np.int64), np.array(values)


def optimizer_hp_vector(optimizer: Optimizer, dtype: Any) -> np.ndarray:
    """The optimizer's hyperparameters in the order its inline rule reads them."""
    names = kernels.OPTIMIZER_RULES[optimizer.inline][1]
    return np.array([float(optimizer.hp[n]) for n in names], dtype=np.float64)


def loss_hp(loss: Loss) -> float:
    """The one hyperparameter an inline loss reads (huber's delta, hinge margins)."""
    for name in ("delta", "margin"):
        if name in loss.hp:
            return float(loss.hp[name])
    return 0.0


def _entry_point(dispatcher: Any, args: tuple[Any, ...]) -> Any:
    """The compiled function a Numba dispatcher runs for these (already compiled) argument
    types, or the dispatcher itself: calling it skips the per-call type dispatch."""
    key = tuple(dispatcher.typeof_pyval(a) for a in args)
    overload = dispatcher.overloads.get(key)
    entry = getattr(overload, "entry_point", None)
    return entry if entry is not None else dispatcher


class FusedNet:
    """A dense/activation stack in the kernels' layout, with buffers for batches up to a size."""

    def __init__(self, model: Model) -> None:
        n = len(model.layers)
        self.model = model
        self.w_off = np.full(n, -1, dtype=np.int64)
        self.b_off = np.full(n, -1, dtype=np.int64)
        self.n_in = np.zeros(n, dtype=np.int64)
        self.n_out = np.zeros(n, dtype=np.int64)
        self.act = np.zeros(n, dtype=np.int64)
        self.act_a = np.zeros(n)
        self.act_b = np.zeros(n)
        self.fn: Any = kernels.NO_FUNCTION
        self.dfn: Any = kernels.NO_DERIVATIVE
        for k, layer in enumerate(model.layers):
            fusion = layer.fusion()
            assert fusion is not None
            slots = {s.name: s for s in model.layer_slots(k)}
            self.n_in[k] = model.shapes[k][0]
            self.n_out[k] = model.shapes[k + 1][0]
            if isinstance(fusion, DenseFusion):
                self.w_off[k] = slots[fusion.weight].offset
                if fusion.bias:
                    self.b_off[k] = slots[fusion.bias].offset
            code, a, b, fn, dfn = activation_args(fusion.activation)
            self.act[k], self.act_a[k], self.act_b[k] = code, a, b
            if code == kernels.ACT_CUSTOM:
                self.fn, self.dfn = fn, dfn
        self.net = (self.w_off, self.b_off, self.n_in, self.n_out, self.act, self.act_a, self.act_b)
        self.blas_above: int | None = None
        self.capacity = 0
        self._entry: Any = None
        self._outputs_buffers: tuple[int, np.ndarray, np.ndarray] | None = None
        self._forward_all: Any = None

    @staticmethod
    def supports(model: Model) -> bool:
        """Flat input, every layer fusable, at most one custom (plugin) activation class."""
        customs = set()
        if len(model.shapes[0]) != 1 or not model.layers:
            return False
        for layer in model.layers:
            fusion = layer.fusion()
            if not isinstance(fusion, (DenseFusion, ActivationFusion)):
                return False
            act = fusion.activation
            if act.inline not in kernels.ACTIVATION_CODES:
                if not act.elementwise:
                    return False
                customs.add(type(act))
        return len(customs) <= 1

    def reserve(self, batch: int) -> None:
        """Work buffers for batches of up to ``batch`` samples (flat, one row of ``stride``
        values per layer: the layout of ``kernels.train_steps``)."""
        if batch <= self.capacity:
            return
        dtype = self.model.dtype
        self.stride = batch * int(max(self.n_out.max(), self.n_in.max()))
        layers = len(self.n_in)
        self.acts = np.zeros((layers + 1) * self.stride, dtype=dtype)
        self.pre = np.zeros(layers * self.stride, dtype=dtype)
        self.dacts = np.zeros((layers + 1) * self.stride, dtype=dtype)
        self.dz = np.zeros(self.stride, dtype=dtype)
        self.targets = np.zeros(batch * int(self.n_out[-1]), dtype=dtype)
        self.capacity = batch
        dense = self.w_off >= 0
        biggest = int((self.n_in * self.n_out)[dense].max(initial=0)) * batch
        self.blas_above = kernels.SMALL_MATMUL if biggest > kernels.SMALL_MATMUL else None
        self._entry = None  # the compiled loop differs with and without BLAS
        self._forward_all = None

    # --------------------------------------------------------------- views of one batch
    def _block(self, buffer: np.ndarray, row: int, bs: int, units: int) -> np.ndarray:
        start = row * self.stride
        return buffer[start : start + bs * units].reshape(bs, units)

    def z(self, k: int, bs: int) -> np.ndarray:
        return self._block(self.pre, k, bs, int(self.n_out[k]))

    def y(self, k: int, bs: int) -> np.ndarray:
        return self._block(self.acts, k + 1, bs, int(self.n_out[k]))

    def dy(self, k: int, bs: int) -> np.ndarray:
        return self._block(self.dacts, k + 1, bs, int(self.n_out[k]))

    def layer_input(self, k: int, bs: int) -> np.ndarray:
        return self._block(self.acts, k, bs, int(self.n_in[k]))

    def batch_targets(self, bs: int) -> np.ndarray:
        return self._block(self.targets, 0, bs, int(self.n_out[-1]))

    def spec(self, k: int) -> tuple[int, int, int, int, int, float, float, int | None]:
        """Layer k's numbers as the kernels' layer functions take them (``kernels.layer_spec``)."""
        return (
            int(self.w_off[k]), int(self.b_off[k]), int(self.n_in[k]), int(self.n_out[k]),
            int(self.act[k]), float(self.act_a[k]), float(self.act_b[k]), self.blas_above,
        )  # fmt: skip

    # --------------------------------------------------------------- phases
    def load_batch(
        self, x: np.ndarray, t: np.ndarray, order: np.ndarray, start: int, bs: int
    ) -> None:
        self.reserve(bs)
        kernels.gather_rows(x, order, start, bs, self.acts, 0)
        kernels.gather_rows(t, order, start, bs, self.targets, 0)

    def forward(self, k: int, bs: int) -> None:
        o = k * self.stride
        kernels.forward_layer(
            self.spec(k), self.model.theta, self.acts, o, self.pre, o, self.acts, o + self.stride,
            bs, self.fn,
        )  # fmt: skip

    def loss(self, loss_code: int, hp0: float, bs: int) -> float:
        last = len(self.n_in) - 1
        return float(
            kernels.loss_and_grad(
                loss_code, self.y(last, bs), self.batch_targets(bs), hp0, self.dy(last, bs)
            )
        )

    def backward(self, k: int, bs: int, fuse_softmax_ce: bool) -> None:
        last = len(self.n_in) - 1
        o = k * self.stride
        through = not (fuse_softmax_ce and k == last)
        kernels.backward_layer(
            self.spec(k), self.model.theta, self.acts, o, self.pre, o, self.acts, o + self.stride,
            self.dacts, o + self.stride, self.dz, 0, self.dacts, o, bs, self.model.grad,
            self.dfn, through, k > 0,
        )  # fmt: skip

    def outputs(self, x: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        """The network's outputs for every row of x at ``theta`` (default: the model's), in
        buffers of their own (the batch of a step in progress stays as it is): one compiled
        call."""
        n, layers = len(x), len(self.n_in)
        stride = n * int(max(self.n_out.max(), self.n_in.max()))
        if self._outputs_buffers is None or self._outputs_buffers[0] != stride:
            dtype = self.model.dtype
            acts = np.zeros((layers + 1) * stride, dtype=dtype)
            pre = np.zeros(layers * stride, dtype=dtype)
            self._outputs_buffers = (stride, acts, pre)
        _, acts, pre = self._outputs_buffers
        acts[: x.size] = x.ravel()
        theta = self.model.theta if theta is None else theta
        args = (self.net, theta, acts, pre, stride, n, self.fn, self.blas_above)
        if self._forward_all is None:
            kernels.forward_all(*args)  # compile or load from the disk cache
            self._forward_all = _entry_point(kernels.forward_all, args)
        self._forward_all(*args)
        width = int(self.n_out[-1])
        return acts[layers * stride : layers * stride + n * width].reshape(n, width).copy()

    def run(self, **kw: Any) -> int:
        """Whole steps in one compiled call (arguments as kernels.train_steps)."""
        self.reserve(int(kw["batch_size"].max()))
        args = (
            self.net, self.model.theta, self.model.grad, kw["update"],
            self.model.decay_mask, kw["x"], kw["t"], kw["order"], kw["batch_start"],
            kw["batch_size"], kw["lrs"], kw["loss_code"], kw["loss_hp"],
            kw["fuse_softmax_ce"], kw["opt_code"], kw["opt_hp"], kw["step"], kw["slots"],
            kw["reg_code"], kw["reg_val"], self.acts, self.pre, self.dacts, self.dz,
            self.targets, self.fn, self.dfn, kw["losses"], kw["outputs"], kw["snap_at"],
            kw["snaps"], self.blas_above,
        )  # fmt: skip
        return int(self._compiled_train_steps(args)(*args))

    def _compiled_train_steps(self, args: tuple[Any, ...]) -> Any:
        """The compiled training loop for these argument types, called without Numba's
        per-call type dispatch (about 13 µs a call, mostly typing the two function arguments;
        it matters when a recorder splits a run into short calls)."""
        if self._entry is None:
            no_steps = (*args[:8], args[8][:0], *args[9:])
            kernels.train_steps(*no_steps)  # compile or load from the disk cache
            self._entry = _entry_point(kernels.train_steps, args)
        return self._entry

    # --------------------------------------------------------------- compile ahead
    @staticmethod
    def warm_up_steps(dtype: Any, blas_above: int | None) -> list[tuple[str, Any]]:
        """Tiny calls that compile every kernel for ``dtype`` and ``blas_above`` (or load them
        from the disk cache); the first ``FIRST_NEEDED`` are what a fast run needs."""
        dt = np.dtype(dtype)
        theta = np.ones(4, dtype=dt)
        net = (
            np.array([0], dtype=np.int64),
            np.array([2], dtype=np.int64),
            np.array([2], dtype=np.int64),
            np.array([1], dtype=np.int64),
            np.array([kernels.ACT_TANH], dtype=np.int64),
            np.zeros(1),
            np.zeros(1),
        )
        x = np.ones((2, 2), dtype=dt)
        t = np.ones((2, 1), dtype=dt)
        buf = np.zeros(8, dtype=dt)
        no_regs = (np.zeros(0, dtype=np.int64), np.zeros(0))
        one = np.ones(1, dtype=np.int64)

        def train() -> None:
            kernels.train_steps(
                net,
                theta.copy(),
                np.zeros(4, dt),
                np.zeros(4, dt),
                np.ones(4, dt),
                x,
                t,
                np.zeros(2, dtype=np.int64),
                np.zeros(1, dtype=np.int64),
                one,
                np.ones(1),
                kernels.LOSS_MSE,
                0.0,
                False,
                kernels.OPT_SGD,
                np.zeros(5),
                np.zeros(1),
                np.zeros((3, 4), dt),
                *no_regs,
                buf.copy(),
                buf.copy(),
                buf.copy(),
                np.zeros(4, dt),
                np.zeros(2, dt),
                kernels.NO_FUNCTION,
                kernels.NO_DERIVATIVE,
                np.zeros(1),
                np.zeros(2, dt),
                np.zeros(0, dtype=np.int64),
                np.zeros((0, 3, 4), dt),
                blas_above,
            )

        def epoch_outputs() -> None:
            acts, pre = np.zeros(6, dt), np.zeros(4, dt)
            kernels.forward_all(net, theta, acts, pre, 2, 1, kernels.NO_FUNCTION, blas_above)

        def phases() -> None:
            acts, pre, d = np.zeros(6, dt), np.zeros(2, dt), np.zeros(6, dt)
            spec = kernels.layer_spec(net, 0, blas_above)
            kernels.forward_layer(spec, theta, acts, 0, pre, 0, acts, 4, 2, kernels.NO_FUNCTION)
            kernels.loss_and_grad(kernels.LOSS_MSE, t, t, 0.0, t.copy())
            kernels.backward_layer(
                spec, theta, acts, 0, pre, 0, acts, 4, d, 4, pre.copy(), 0, d, 0, 2,
                np.zeros(4, dt), kernels.NO_DERIVATIVE, True, False,
            )  # fmt: skip
            kernels.gather_rows(x, np.zeros(2, dtype=np.int64), 0, 1, acts, 0)

        def optimizer() -> None:
            kernels.transform_gradient(*no_regs, np.zeros(4, dt))
            kernels.add_penalties(*no_regs, theta, np.ones(4, dt), np.zeros(4, dt))
            kernels.optimizer_step(
                kernels.OPT_SGD,
                np.zeros(5),
                np.zeros(1),
                np.zeros((3, 4), dt),
                theta.copy(),
                np.zeros(4, dt),
                np.zeros(4, dt),
                np.ones(4, dt),
                *no_regs,
            )

        def activations() -> None:
            z = np.ones((1, 1), dt)
            kernels.apply_activation(kernels.ACT_TANH, 0.0, 0.0, kernels.NO_FUNCTION, z, z.copy())
            kernels.activation_backward(
                kernels.ACT_TANH, 0.0, 0.0, kernels.NO_DERIVATIVE, z, z.copy(), z.copy(), z.copy()
            )

        return [
            ("training step", train),
            ("epoch outputs", epoch_outputs),
            ("layer phases", phases),
            ("optimizer update", optimizer),
            ("activations", activations),
        ]


CompileProgress = Callable[[str, int, int], None]
# A fast run (``gradient-lab run``, playing) needs the first two kernels of warm_up_steps: the
# training loop and the forward pass of the epochs' validation; the rest serve stepping phase by
# phase. On a fresh machine the first two take about two thirds of the compile.
FIRST_NEEDED = 2


def warm_up(
    progress: CompileProgress | None = None,
    dtype: Any = np.float64,
    blas_above: int | None = None,
    part: slice = slice(None),
) -> float:
    """Compile (or load from the disk cache) the kernels for ``dtype``, in the variant with or
    without BLAS (``kernels.matmul``): ``part`` of ``FusedNet.warm_up_steps`` (default all;
    ``slice(FIRST_NEEDED)`` for a fast run); return the seconds taken.

    ``progress(kernel_name, done, total)`` is called before each kernel and once at the end."""
    started = time.perf_counter()
    steps = FusedNet.warm_up_steps(dtype, blas_above)[part]
    for done, (label, run) in enumerate(steps):
        if progress is not None:
            progress(label, done, len(steps))
        run()
    if progress is not None:
        progress("done", len(steps), len(steps))
    return time.perf_counter() - started
