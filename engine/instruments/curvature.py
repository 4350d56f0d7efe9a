"""Curvature of the loss: Hessian-vector products, eigenvalues, trace, spectral density, sharpness.

Everything is about the full-batch, evaluation-mode loss an ``Evaluator`` sees. The Hessian is
never formed unless asked for: an ``HessianOperator`` multiplies by it, exactly, with Pearlmutter's
R-operator (a forward pass of directional derivatives, then a backward pass of their gradients) for
models built from dense, activation, flatten, dropout, batch-normalization and residual layers and
the built-in losses. Any other layer or loss falls back to central differences of the gradient,
which is approximate, and says so (``hvp_method``).

Conventions: theta is the model's flat parameter vector (P values); a block of directions is an
array (k, P); eigenvalues "top" means largest by algebraic value, which is what sharpness means.
No function here changes the model: the exact path reads weights from theta without loading it,
and the finite-difference path goes through ``Evaluator``, which restores parameters bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from gradient_lab.engine.compute.array_math import sigmoid, softmax
from gradient_lab.engine.model import Model, Node, Slot
from gradient_lab.engine.plugin_api import Activation, ActivationFusion, DenseFusion, Loss
from gradient_lab.engine.training.evaluation import Evaluator, eval_data

EXACT = "exact"
FINITE_DIFFERENCES = "finite differences"
MAX_FULL_HESSIAN = 2000
# Central-difference step relative to max(1, |theta|): the cube root of float64's epsilon balances
# truncation (step squared) against rounding (epsilon / step).
FD_STEP = 6e-6

Array = np.ndarray
LossHessian = Callable[[Array], Array]


# ------------------------------------------------------------------------ second derivatives


def builtin_second_derivative(name: str, z: Array, y: Array, a: float, b: float) -> Array | None:
    """f''(z) of a built-in activation (by its ``inline`` name), or None for an unknown name.

    ``y = f(z)``; ``a`` and ``b`` are the activation's scalar parameters, as for ``df``."""
    if name in ("linear", "relu", "leaky_relu"):
        return np.zeros_like(z)  # piecewise linear: zero almost everywhere
    if name == "sigmoid":
        return y * (1.0 - y) * (1.0 - 2.0 * y)
    if name == "tanh":
        return -2.0 * y * (1.0 - y * y)
    if name == "elu":
        return np.where(z > 0.0, 0.0, a * np.exp(np.minimum(z, 0.0)))
    if name == "gelu":
        return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) * (2.0 - z * z)
    if name == "silu":
        s = sigmoid(z)
        return s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s))
    if name == "softplus":
        s = sigmoid(a * z)
        return np.where(a * z > b, 0.0, a * s * (1.0 - s))
    return None


def _first_derivative(act: Activation, z: Array) -> Array:
    return act.gradient(z, act.apply(z), np.ones_like(z))


def second_derivative(act: Activation, z: Array, y: Array) -> Array:
    """f''(z) for any element-wise activation.

    Built-ins use their closed forms; a plugin may define a static ``d2f(x, y, a, b)``; otherwise
    a central difference of the plugin's own ``df`` (error about 1e-10 relative), the best an
    activation that only declares f and f' allows."""
    a, b = act.scalar_args()
    known = builtin_second_derivative(act.inline, z, y, a, b)
    if known is not None:
        return known
    d2f = getattr(type(act), "d2f", None)
    if d2f is not None:
        return np.vectorize(d2f, otypes=[np.float64])(z, y, a, b)
    h = FD_STEP * np.maximum(1.0, np.abs(z))
    up, down = z + h, z - h
    return (_first_derivative(act, up) - _first_derivative(act, down)) / (up - down)


# ------------------------------------------------------------------------ loss curvature


def loss_hessian(loss: Loss, pred: Array, target: Array) -> LossHessian | None:
    """r -> (d²L/dpred²) r for a built-in loss (by ``inline_name``), None for an unknown one.

    PyTorch's ``mean`` reduction: over every element, or over rows for cross-entropy. Losses with
    kinks (mae, hinge, multi_margin) have zero curvature almost everywhere."""
    name = loss.inline_name()
    n, rows = pred.size, len(pred)
    if name == "mse":
        return lambda r: (2.0 / n) * r
    if name in ("mae", "hinge", "multi_margin"):
        return lambda r: np.zeros_like(r)
    weight: Array
    if name == "huber":
        weight = (np.abs(pred - target) < loss.hp["delta"]) / n
    elif name == "bce":
        weight = (target / pred**2 + (1.0 - target) / (1.0 - pred) ** 2) / n
    elif name == "bce_with_logits":
        s = sigmoid(pred)
        weight = s * (1.0 - s) / n
    elif name == "cross_entropy_probs":
        weight = target / pred**2 / rows
    elif name == "cross_entropy_logits":
        return _softmax_cross_entropy_hessian(pred, target)
    else:
        return None
    return lambda r: weight * r


def _softmax_cross_entropy_hessian(logits: Array, target: Array) -> LossHessian:
    """Per row (diag(p) - p pᵀ) times the row's target mass, over the batch size."""
    p = softmax(logits)
    scale = target.sum(axis=-1, keepdims=True) / len(logits)
    return lambda r: scale * p * (r - (p * r).sum(axis=-1, keepdims=True))


# ------------------------------------------------------------------------ R-operator pieces


class _Block:
    """k directions in parameter space and their Hessian products, addressed by slot."""

    def __init__(self, directions: Array) -> None:
        self.directions = directions
        self.out = np.zeros_like(directions)

    def direction(self, slot: Slot) -> Array:
        part = self.directions[:, slot.offset : slot.offset + slot.size]
        return part.reshape((len(part), *slot.shape))

    def put(self, slot: Slot, value: Array) -> None:
        self.out[:, slot.offset : slot.offset + slot.size] = value.reshape(len(value), -1)


def _param(theta: Array, slot: Slot) -> Array:
    return np.asarray(Model.view(theta, slot), dtype=np.float64)


def _lead(v: Array, ndim: int) -> Array:
    """A per-feature direction block (k, F) shaped to broadcast over (k, batch, ..., F)."""
    return v.reshape((len(v),) + (1,) * (ndim - 2) + v.shape[1:])


def _times(x: Array, m: Array) -> Array:
    """x (..., i) times each of m's k matrices (k, i, j): (k, ..., j)."""
    flat = x.reshape(-1, x.shape[-1]) @ m
    return flat.reshape((len(m), *x.shape[:-1], m.shape[-1]))


class _Op:
    """One differentiable step. The plain passes run once per theta and keep what the R-passes
    reuse for every block of directions. ``None`` stands for a zero R-value (nothing upstream
    depends on theta), so layers before the first weight cost nothing. The base is the identity
    (dropout in evaluation mode)."""

    has_params = False
    input_needed = True  # False for the first op with weights: nothing upstream to feed

    def forward(self, x: Array) -> Array:
        return x

    def backward(self, gy: Array) -> Array:
        return gy

    def rforward(self, rx: Array | None, d: _Block) -> Array | None:
        return rx

    def rbackward(self, rgy: Array, d: _Block) -> Array:
        return rgy

    def slots(self) -> list[Slot]:
        """The weights this op reads (so a layer with weights no op knows is refused)."""
        return []


class _Affine(_Op):
    """z = a W + b: R{z} = R{a} W + a V_W + V_b; R{g_W} = R{a}ᵀ g_z + aᵀ R{g_z}, R{g_b} = Σ R{g_z},
    R{g_a} = R{g_z} Wᵀ + g_z V_Wᵀ."""

    has_params = True

    def __init__(self, theta: Array, w: Slot, b: Slot | None) -> None:
        self.w_slot, self.b_slot = w, b
        self.W = _param(theta, w)
        self.b = None if b is None else _param(theta, b)

    def slots(self) -> list[Slot]:
        return [self.w_slot] if self.b_slot is None else [self.w_slot, self.b_slot]

    def forward(self, a: Array) -> Array:
        self.a = a
        z = a @ self.W
        return z if self.b is None else z + self.b

    def backward(self, gz: Array) -> Array:
        self.gz = gz
        return gz @ self.W.T

    def rforward(self, ra: Array | None, d: _Block) -> Array | None:
        self.ra = ra
        rz = _times(self.a, d.direction(self.w_slot))
        if self.b_slot is not None:
            rz = rz + _lead(d.direction(self.b_slot), rz.ndim)
        return rz if ra is None else rz + ra @ self.W

    def rbackward(self, rgz: Array, d: _Block) -> Array:
        n_in, n_out = self.W.shape
        rgz_rows = rgz.reshape(len(rgz), -1, n_out)
        rg_w = self.a.reshape(-1, n_in).T @ rgz_rows
        if self.ra is not None:
            ra_rows = self.ra.reshape(len(self.ra), -1, n_in)
            rg_w = rg_w + ra_rows.swapaxes(1, 2) @ self.gz.reshape(-1, n_out)
        d.put(self.w_slot, rg_w)
        if self.b_slot is not None:
            d.put(self.b_slot, rgz_rows.sum(axis=1))
        if not self.input_needed:
            return rgz
        return rgz @ self.W.T + _times(self.gz, d.direction(self.w_slot).swapaxes(1, 2))


class _Elementwise(_Op):
    """y = f(z): R{y} = f' R{z}; R{g_z} = f'' R{z} g_y + f' R{g_y}."""

    def __init__(self, act: Activation) -> None:
        self.act = act

    def forward(self, z: Array) -> Array:
        y = self.act.apply(z)
        self.d1 = self.act.gradient(z, y, np.ones_like(z))
        self.d2 = second_derivative(self.act, z, y)
        return y

    def backward(self, gy: Array) -> Array:
        self.gy = gy
        return self.d1 * gy

    def rforward(self, rz: Array | None, d: _Block) -> Array | None:
        self.rz = rz
        return None if rz is None else self.d1 * rz

    def rbackward(self, rgy: Array, d: _Block) -> Array:
        out = self.d1 * rgy
        return out if self.rz is None else out + self.d2 * self.rz * self.gy


def _row_dot(u: Array, v: Array) -> Array:
    return (u * v).sum(axis=-1, keepdims=True)


class _Softmax(_Op):
    """y = softmax(z) by rows: g_z = y (g_y - <y, g_y>), differentiated by the product rule."""

    def __init__(self, act: Activation) -> None:
        self.act = act

    def forward(self, z: Array) -> Array:
        self.y = self.act.apply(z)
        return self.y

    def backward(self, gy: Array) -> Array:
        self.gy, self.c = gy, _row_dot(gy, self.y)
        return self.y * (gy - self.c)

    def rforward(self, rz: Array | None, d: _Block) -> Array | None:
        self.ry = None if rz is None else self.y * (rz - _row_dot(self.y, rz))
        return self.ry

    def rbackward(self, rgy: Array, d: _Block) -> Array:
        y, ry = self.y, self.ry
        out = y * (rgy - _row_dot(y, rgy))
        if ry is None:
            return out
        return out + ry * (self.gy - self.c) - y * _row_dot(ry, self.gy)


class _Flatten(_Op):
    def forward(self, x: Array) -> Array:
        self.shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, gy: Array) -> Array:
        return gy.reshape(self.shape)

    def rforward(self, rx: Array | None, d: _Block) -> Array | None:
        return None if rx is None else rx.reshape(len(rx), self.shape[0], -1)

    def rbackward(self, rgy: Array, d: _Block) -> Array:
        return rgy.reshape((len(rgy), *self.shape))


class _BatchNormEval(_Op):
    """Evaluation mode: y = gamma x̂ + beta with x̂ = (x - running_mean) / sqrt(running_var + eps),
    a per-channel affine map (channels on axis 1 of the batch) whose scale and shift train."""

    has_params = True

    def __init__(self, theta: Array, node: Node, gamma: Slot, beta: Slot) -> None:
        self.gamma_slot, self.beta_slot = gamma, beta
        self.gamma, self.beta = _param(theta, gamma), _param(theta, beta)
        self.mean = np.asarray(node.state["running_mean"], dtype=np.float64)
        var = np.asarray(node.state["running_var"], dtype=np.float64)
        self.inv_std = 1.0 / np.sqrt(var + node.layer.hp["eps"])

    def slots(self) -> list[Slot]:
        return [self.gamma_slot, self.beta_slot]

    def forward(self, x: Array) -> Array:
        self.shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        self.c_inv = self.inv_std.reshape(self.shape)
        self.c_gamma = self.gamma.reshape(self.shape)
        self.x_hat = (x - self.mean.reshape(self.shape)) * self.c_inv
        return self.c_gamma * self.x_hat + self.beta.reshape(self.shape)

    def backward(self, gy: Array) -> Array:
        self.gy = gy
        return gy * self.c_gamma * self.c_inv

    def _directions(self, d: _Block, slot: Slot) -> Array:
        """A per-channel direction block (k, C) shaped to broadcast over (k, batch, C, ...)."""
        v = d.direction(slot)
        return v.reshape((len(v), *self.shape))

    def rforward(self, rx: Array | None, d: _Block) -> Array | None:
        self.rx = rx
        ry = self._directions(d, self.gamma_slot) * self.x_hat
        ry = ry + self._directions(d, self.beta_slot)
        return ry if rx is None else ry + self.c_gamma * self.c_inv * rx

    def rbackward(self, rgy: Array, d: _Block) -> Array:
        axes = (1, *range(3, rgy.ndim))  # all but the direction and channel axes
        rg_gamma = (rgy * self.x_hat).sum(axis=axes)
        if self.rx is not None:
            rg_gamma = rg_gamma + (self.gy * self.c_inv * self.rx).sum(axis=axes)
        d.put(self.gamma_slot, rg_gamma)
        d.put(self.beta_slot, rgy.sum(axis=axes))
        v_gamma = self._directions(d, self.gamma_slot)
        return self.c_inv * (rgy * self.c_gamma + self.gy * v_gamma)


class _Residual(_Op):
    """y = x + block(x): every pass adds the skip path to the block's."""

    has_params = True

    def __init__(self, ops: list[_Op]) -> None:
        self.ops = ops

    def slots(self) -> list[Slot]:
        return [slot for op in self.ops for slot in op.slots()]

    def forward(self, x: Array) -> Array:
        h = x
        for op in self.ops:
            h = op.forward(h)
        return x + h

    def backward(self, gy: Array) -> Array:
        g = gy
        for op in reversed(self.ops):
            g = op.backward(g)
        return g + gy

    def rforward(self, rx: Array | None, d: _Block) -> Array | None:
        r = rx
        for op in self.ops:
            r = op.rforward(r, d)
        assert r is not None  # the block has weights
        return r if rx is None else r + rx

    def rbackward(self, rgy: Array, d: _Block) -> Array:
        r = rgy
        for op in reversed(self.ops):
            r = op.rbackward(r, d)
        return r + rgy


# ------------------------------------------------------------------------ layers to ops


def _activation_ops(act: Activation) -> list[_Op] | None:
    if act.inline == "linear":
        return []
    if act.elementwise:
        return [_Elementwise(act)]
    if act.inline == "softmax":
        return [_Softmax(act)]
    return None  # a row-wise plugin activation: no known second derivative


def _dense_ops(
    theta: Array, fusion: DenseFusion, slots: dict[str, Slot], prefix: str = ""
) -> list[_Op] | None:
    act_ops = _activation_ops(fusion.activation)
    w = slots.get(prefix + fusion.weight)
    b = slots.get(prefix + fusion.bias) if fusion.bias else None
    if act_ops is None or w is None or (fusion.bias and b is None):
        return None
    return [_Affine(theta, w, b), *act_ops]


def _residual_ops(theta: Array, node: Node, slots: dict[str, Slot]) -> list[_Op] | None:
    children = [child.layer for child in node.children.values()]
    if len(children) != 2:
        return None
    ops: list[_Op] = []
    for prefix, child in zip(("inner.", "outer."), children, strict=True):
        fusion = child.fusion()
        child_ops = (
            _dense_ops(theta, fusion, slots, prefix) if isinstance(fusion, DenseFusion) else None
        )
        if child_ops is None:
            return None
        ops.extend(child_ops)
    return [_Residual(ops)]


def _layer_ops(theta: Array, node: Node, slots: dict[str, Slot]) -> list[_Op] | None:
    """The R-operator steps of one layer, or None when it has no exact rule here.

    Dense and activation layers are recognized by the fusion description they publish (so a
    plugin layer that is y = f(x W + b) qualifies); the other built-ins by name and weights.
    Every trainable weight of the layer must be one the steps account for."""
    ops = _recognized_ops(theta, node, slots)
    if ops is None:
        return None
    used = {slot.name for op in ops for slot in op.slots()}
    return ops if used == set(slots) else None


def _recognized_ops(theta: Array, node: Node, slots: dict[str, Slot]) -> list[_Op] | None:
    layer = node.layer
    fusion = layer.fusion()
    if isinstance(fusion, DenseFusion):
        return _dense_ops(theta, fusion, slots)
    if isinstance(fusion, ActivationFusion):
        return _activation_ops(fusion.activation)
    if layer.name == "flatten":
        return [_Flatten()]
    if layer.name == "dropout":
        return [_Op()]
    if layer.name == "batch_norm" and {"gamma", "beta"} <= set(slots):
        return [_BatchNormEval(theta, node, slots["gamma"], slots["beta"])]
    if layer.name == "residual":
        return _residual_ops(theta, node, slots)
    return None


def _has_dense(model: Model) -> bool:
    return any(isinstance(n.layer.fusion(), DenseFusion) and len(n.input_shape) != 1
               for n in model.walk())  # fmt: skip


def _model_ops(model: Model, theta: Array) -> list[_Op] | None:
    if len(model.output_shape) != 1 or _has_dense(model):
        return None  # the exact rules take one row of outputs per sample, dense on flat rows
    ops: list[_Op] = []
    for i, node in enumerate(model.nodes):
        layer_ops = _layer_ops(theta, node, {s.name: s for s in model.layer_slots(i)})
        if layer_ops is None:
            return None
        ops.extend(layer_ops)
    return ops


EXACT_LOSSES = frozenset(
    (
        "mse",
        "mae",
        "huber",
        "bce",
        "bce_with_logits",
        "cross_entropy_logits",
        "cross_entropy_probs",
        "hinge",
        "multi_margin",
    )
)


def hvp_method(model: Model, loss: Loss | None = None) -> str:
    """``"exact"`` when every layer (and the loss, if given) has an R-operator rule here, else
    ``"finite differences"`` (central differences of the full gradient: approximate)."""
    if _model_ops(model, model.theta) is None:
        return FINITE_DIFFERENCES
    if loss is not None and loss.inline_name() not in EXACT_LOSSES:
        return FINITE_DIFFERENCES
    return EXACT


# ------------------------------------------------------------------------ the operator


class HessianOperator:
    """H at one theta as a linear map: the forward and backward passes run once here, after which
    each block of directions costs one R-forward and one R-backward pass (or two gradients per
    direction on the finite-difference path)."""

    def __init__(self, evaluator: Evaluator, theta: Array) -> None:
        self.evaluator = evaluator
        self.theta = np.array(theta, dtype=np.float64)
        self.n = int(self.theta.size)
        model = evaluator.model
        if self.n != model.n_params:
            raise ValueError(f"theta has {self.n} values, the model has {model.n_params}")
        self.method = hvp_method(model, evaluator.loss_fn)
        if self.method == EXACT and self.n:
            self._prepare(model)

    def _prepare(self, model: Model) -> None:
        ops = _model_ops(model, self.theta)
        assert ops is not None
        self._ops = ops
        self._first = next(i for i, op in enumerate(ops) if op.has_params)
        ops[self._first].input_needed = False
        h = np.asarray(self.evaluator.data.x, dtype=np.float64)
        for op in ops:
            h = op.forward(h)
        target = np.asarray(self.evaluator.data.t, dtype=np.float64)
        curvature = loss_hessian(self.evaluator.loss_fn, h, target)
        assert curvature is not None
        self._loss_curvature = curvature
        g = np.asarray(self.evaluator.loss_fn.grad(h, target), dtype=np.float64)
        for op in reversed(ops[self._first :]):
            g = op.backward(g)

    def matvec(self, v: Array) -> Array:
        """H v for one direction (P,)."""
        return self.matmat(np.asarray(v, dtype=np.float64)[None, :])[0]

    def matmat(self, vs: Array) -> Array:
        """H vᵢ for each row of vs (k, P); rows are independent directions."""
        vs = np.asarray(vs, dtype=np.float64)
        if vs.ndim != 2 or vs.shape[1] != self.n:
            raise ValueError(f"directions must have shape (k, {self.n}), got {vs.shape}")
        if not self.n or not len(vs):
            return np.zeros_like(vs)
        if self.method == EXACT:
            return self._exact(vs)
        return self._differences(vs)

    def _exact(self, vs: Array) -> Array:
        block = _Block(vs)
        r: Array | None = None
        for op in self._ops:
            r = op.rforward(r, block)
        assert r is not None
        rg = self._loss_curvature(r)
        for op in reversed(self._ops[self._first :]):
            rg = op.rbackward(rg, block)
        return block.out

    def _differences(self, vs: Array) -> Array:
        """(g(θ + h v) - g(θ - h v)) / 2h with h |v| = FD_STEP max(1, |θ|): approximate."""
        out = np.zeros_like(vs)
        reach = FD_STEP * max(1.0, float(np.linalg.norm(self.theta)))
        gradient = self.evaluator.gradient
        for i, v in enumerate(vs):
            size = float(np.linalg.norm(v))
            if size == 0.0:
                continue
            h = reach / size
            up = np.asarray(gradient(self.theta + h * v), dtype=np.float64)
            down = np.asarray(gradient(self.theta - h * v), dtype=np.float64)
            out[i] = (up - down) / (2.0 * h)
        return out

    def block_size(self) -> int:
        """Directions per R-pass that keep the work arrays to a few megabytes."""
        widest = max(math.prod(shape) for shape in self.evaluator.model.shapes)
        per_direction = max(1, len(self.evaluator.data.x) * widest)
        return int(min(32, max(1, 2_000_000 // per_direction)))


def hvp(evaluator: Evaluator, theta: Array, v: Array) -> Array:
    """H v of the evaluator's loss at theta; v is one direction (P,) or a block (k, P)."""
    op = HessianOperator(evaluator, theta)
    v = np.asarray(v, dtype=np.float64)
    return op.matvec(v) if v.ndim == 1 else op.matmat(v)


def _apply_in_blocks(op: HessianOperator, vs: Array) -> Array:
    size = op.block_size()
    return np.concatenate([op.matmat(vs[i : i + size]) for i in range(0, len(vs), size)])


# ------------------------------------------------------------------------ dense Hessian


def full_hessian(evaluator: Evaluator, theta: Array) -> Array:
    """The (P, P) Hessian from P products with unit vectors, symmetrized; P <= 2,000."""
    n = int(np.asarray(theta).size)
    if n > MAX_FULL_HESSIAN:
        raise ValueError(
            f"the full Hessian is limited to {MAX_FULL_HESSIAN} parameters and this model has "
            f"{n}: use top_eigenvectors, hutchinson_trace or density instead"
        )
    op = HessianOperator(evaluator, theta)
    h = _apply_in_blocks(op, np.eye(n))
    return 0.5 * (h + h.T)


def spectrum(hessian: Array) -> Array:
    """Every eigenvalue of a symmetric matrix, ascending."""
    return np.linalg.eigvalsh(hessian)


# ------------------------------------------------------------------------ Lanczos


StopRule = Callable[[Array, Array, int], bool]


def _orthogonalize(rows: Array, basis: Array) -> Array:
    """Remove the rows' components along the rows of basis; twice, which suffices in floating
    point."""
    for _ in range(2):
        rows = rows - (rows @ basis.T) @ basis
    return rows


def _fresh_rows(count: int, basis: Array, rng: np.random.Generator) -> Array:
    """``count`` random orthonormal rows orthogonal to the rows of basis."""
    rows = _orthogonalize(rng.standard_normal((count, basis.shape[1])), basis)
    q, _ = np.linalg.qr(rows.T)
    return _orthogonalize(q.T, basis)


def _next_block(
    w: Array, basis: Array, scale: float, rng: np.random.Generator | None
) -> tuple[Array, Array, bool]:
    """Orthonormal rows Q spanning the rows of w (already orthogonal to basis), the coupling
    Q wᵀ, and whether w lost rank (the Krylov space closed in some direction).

    An SVD rather than a QR, so a rank-deficient w keeps all of its content; missing rows are
    filled with fresh random directions when ``rng`` is given."""
    u, singular, _ = np.linalg.svd(w.T, full_matrices=False)
    rank = int((singular > 1e-10 * scale).sum())
    q = u[:, :rank].T
    fill = min(len(w), w.shape[1] - len(basis)) - rank  # never more than the space has left
    if fill > 0 and rng is not None:
        q = np.vstack([q, _fresh_rows(fill, np.vstack([basis, q]), rng)])
    return q, q @ w.T, rank < len(w)


def lanczos(
    matmat: Callable[[Array], Array],
    start: Array,
    steps: int,
    rng: np.random.Generator | None = None,
    stop: StopRule | None = None,
) -> tuple[Array, Array]:
    """Block Lanczos with full reorthogonalization from the rows of ``start`` (b, P): the block
    tridiagonal T = Q H Qᵀ and the orthonormal basis Q (rows), at most ``steps`` blocks.

    A block of b vectors finds up to b copies of a repeated eigenvalue (one vector finds one);
    full reorthogonalization keeps converged eigenvalues from coming back as ghost copies. When
    the Krylov space closes (an invariant subspace) fresh random directions continue it if
    ``rng`` is given, else it ends there. ``stop(T, coupling, at)`` may end it early: coupling
    is the next block's (b, b) link to the last block, which begins at row ``at``."""
    n = start.shape[1]
    size = min(n, steps * len(start))
    basis, t = np.zeros((size, n)), np.zeros((size, size))
    if size == 0:
        return t, basis
    block, _, _ = _next_block(start, basis[:0], 1.0, rng)
    at = 0
    while True:
        block = block[: size - at]
        end = at + len(block)
        basis[at:end] = block
        w = matmat(block)
        t[at:end, at:end] = 0.5 * (block @ w.T + w @ block.T)
        w = _orthogonalize(w, basis[:end])
        scale = float(np.abs(t[:end, :end]).max())
        block, coupling, closed = _next_block(w, basis[:end], scale, rng)
        finished = end == size or len(block) == 0 or (closed and rng is None)
        if finished or (stop is not None and stop(t[:end, :end], coupling, at)):
            return t[:end, :end], basis[:end]
        width = min(len(block), size - end)
        t[end : end + width, at:end] = coupling[:width]
        t[at:end, end : end + width] = coupling[:width].T
        at = end


def _sign_fixed(vectors: Array) -> Array:
    """Each row with its largest-magnitude entry positive, so results are reproducible."""
    idx = np.abs(vectors).argmax(axis=1)
    signs = np.sign(vectors[np.arange(len(vectors)), idx])
    return vectors * np.where(signs == 0, 1.0, signs)[:, None]


def top_eigenvectors(
    evaluator: Evaluator,
    theta: Array,
    k: int = 2,
    iterations: int = 100,
    seed: int = 0,
    tol: float = 1e-10,
) -> tuple[Array, Array]:
    """The k algebraically largest Hessian eigenvalues (descending, (k,)) and unit eigenvectors
    (rows, (k, P)), by block Lanczos (block size k) from a seeded random start.

    At most ``iterations`` block steps, each k Hessian-vector products in one pass (P / k steps
    give the exact spectrum); it stops once the top k Ritz pairs have residuals
    |H y - λ y| <= tol max|λ|. A block of k finds up to k copies of a repeated eigenvalue."""
    n = int(np.asarray(theta).size)
    if not 1 <= k <= n:
        raise ValueError(f"k = {k} is not allowed: expected 1 to {n} (the parameter count)")
    op = HessianOperator(evaluator, theta)
    rng = np.random.default_rng(seed)

    def converged(t: Array, coupling: Array, at: int) -> bool:
        if len(t) < k:
            return False
        values, vectors = np.linalg.eigh(t)
        residual = np.linalg.norm(coupling @ vectors[at:, -k:], axis=0)
        return bool(residual.max() <= tol * max(np.abs(values).max(), 1e-300))

    t, basis = lanczos(op.matmat, rng.standard_normal((k, n)), max(iterations, 1), rng, converged)
    values, vectors = np.linalg.eigh(t)
    order = np.argsort(values)[::-1][:k]
    ritz = vectors[:, order].T @ basis
    ritz /= np.linalg.norm(ritz, axis=1, keepdims=True)
    return values[order], _sign_fixed(ritz)


# ------------------------------------------------------------------------ trace and density


def hutchinson_trace(
    evaluator: Evaluator, theta: Array, samples: int = 100, seed: int = 0
) -> tuple[float, float]:
    """(estimate, standard error) of tr H as the mean of zᵀ H z over Rademacher vectors z.

    Rademacher entries give the least variance among independent unit-variance probes:
    2 Σ_{i≠j} H_ij² per sample, none from the diagonal."""
    if samples < 2:
        raise ValueError(f"samples = {samples} is not allowed: expected 2 or more")
    op = HessianOperator(evaluator, theta)
    z = np.random.default_rng(seed).integers(0, 2, (samples, op.n)) * 2.0 - 1.0
    quad = np.einsum("ij,ij->i", z, _apply_in_blocks(op, z))
    return float(quad.mean()), float(quad.std(ddof=1) / math.sqrt(samples))


def slq_nodes(
    evaluator: Evaluator, theta: Array, lanczos_steps: int = 30, probes: int = 5, seed: int = 0
) -> tuple[Array, Array]:
    """Stochastic Lanczos quadrature: nodes and weights (probes, min(lanczos_steps, P)), each
    row a Gauss quadrature of the spectral measure seen by one random unit probe (weights sum
    to 1).

    Averaged over probes the measure is the eigenvalue density (1/P) Σ δ(λ - λᵢ); rows that
    finish early (a closed Krylov space) are padded with zero weights."""
    op = HessianOperator(evaluator, theta)
    rng = np.random.default_rng(seed)
    steps = min(lanczos_steps, op.n)
    nodes, weights = np.zeros((probes, steps)), np.zeros((probes, steps))
    for p in range(probes):
        start = rng.integers(0, 2, (1, op.n)) * 2.0 - 1.0
        t, _ = lanczos(op.matmat, start, steps)
        values, vectors = np.linalg.eigh(t)
        nodes[p, : len(values)] = values
        weights[p, : len(values)] = vectors[0] ** 2
    return nodes, weights


def density(
    evaluator: Evaluator,
    theta: Array,
    lanczos_steps: int = 30,
    probes: int = 5,
    grid: Array | int = 1000,
    sigma: float | None = None,
    seed: int = 0,
) -> tuple[Array, Array]:
    """(grid, density): the Hessian's eigenvalue density by stochastic Lanczos quadrature with
    Gaussian broadening of width sigma; it integrates to 1 over the default grid.

    ``grid`` is a number of points (spanning the nodes plus 6 sigma each side) or the points
    themselves; sigma defaults to 1% of the spectrum's span and to at least two grid spacings,
    so the trapezoid rule resolves every peak."""
    nodes, weights = slq_nodes(evaluator, theta, lanczos_steps, probes, seed)
    used = nodes[weights > 0]
    lo, hi = (float(used.min()), float(used.max())) if used.size else (0.0, 0.0)
    span = hi - lo if hi > lo else 1e-3 * max(1.0, abs(lo), abs(hi))
    if isinstance(grid, int | np.integer):
        width = sigma if sigma is not None else span / 100.0
        points = np.linspace(lo - 6.0 * width, hi + 6.0 * width, int(grid))
        if sigma is None:
            width = max(width, 2.0 * float(points[1] - points[0]))
            points = np.linspace(lo - 6.0 * width, hi + 6.0 * width, int(grid))
    else:
        points = np.asarray(grid, dtype=np.float64)
        spacing = float(np.median(np.diff(points))) if points.size > 1 else 0.0
        width = sigma if sigma is not None else max(span / 100.0, 2.0 * spacing)
    return points, _broaden(nodes, weights, points, width)


def _broaden(nodes: Array, weights: Array, grid: Array, sigma: float) -> Array:
    """The probes' average of Σ wⱼ N(x; nodeⱼ, sigma²) on the grid."""
    d = (grid[:, None] - nodes.ravel()[None, :]) / sigma
    kernel = np.exp(-0.5 * d * d) / (sigma * math.sqrt(2.0 * math.pi))
    return kernel @ weights.ravel() / len(nodes)


# ------------------------------------------------------------------------ sharpness in training


class SharpnessRecorder:
    """The top Hessian eigenvalue every few epochs, beside SGD's stability edge 2/lr.

    Gradient descent on a quadratic with curvature λ diverges once λ > 2/lr, so sharpness rising
    to 2/lr ("the edge of stability") is worth watching. Each measurement goes into ``records``
    and into that epoch's history record (keys ``top_eigenvalue`` and ``stability_edge``). It
    uses the full training set, or a seeded subsample, in evaluation mode; a session rewound
    and replayed records each epoch once."""

    def __init__(
        self,
        session: Any,
        every_epochs: int = 1,
        iterations: int = 20,
        subsample: int | None = None,
        seed: int = 0,
    ) -> None:
        if every_epochs < 1:
            raise ValueError(f"every_epochs = {every_epochs} is not allowed: expected 1 or more")
        self.session = session
        self.iterations = iterations
        self.seed = seed
        self.evaluator = Evaluator(session, eval_data(session, subsample, seed))
        self._records: list[dict[str, Any]] = []
        session.add_recorder(session.steps_per_epoch * every_epochs, self)

    @property
    def records(self) -> list[dict[str, Any]]:
        """Measurements up to the session's current step, in order."""
        return [r for r in self._records if r["step"] <= self.session.step]

    def measure(self) -> dict[str, Any]:
        """Sharpness at the session's current parameters (the model is left untouched)."""
        session = self.session
        theta = session.model.theta.copy()
        values, _ = top_eigenvectors(self.evaluator, theta, 1, self.iterations, self.seed)
        lr = float(session.lr_at(max(session.step - 1, 0)))
        return {
            "epoch": int(session.epoch),
            "step": int(session.step),
            "top_eigenvalue": float(values[0]),
            "stability_edge": 2.0 / lr if lr > 0 else math.inf,
        }

    def __call__(self, session: Any) -> None:
        record = self.measure()
        self._records = [r for r in self._records if r["step"] < record["step"]]
        self._records.append(record)
        for epoch_record in reversed(session.history.epochs):
            if epoch_record["step"] == record["step"]:
                epoch_record["top_eigenvalue"] = record["top_eigenvalue"]
                epoch_record["stability_edge"] = record["stability_edge"]
                break


def record_sharpness(
    session: Any,
    every_epochs: int = 1,
    iterations: int = 20,
    subsample: int | None = None,
    seed: int = 0,
) -> SharpnessRecorder:
    """Attach a SharpnessRecorder to the session; its ``records`` fill as training runs."""
    return SharpnessRecorder(session, every_epochs, iterations, subsample, seed)
