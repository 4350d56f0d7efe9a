"""Which models have an exact Hessian product here: each layer turned into R-operator ops,
or None when a layer (or the loss) has no exact rule and the finite-difference path
serves."""

from __future__ import annotations

from gradient_lab.engine.instruments.curvature.derivatives import EXACT_LOSSES, Array
from gradient_lab.engine.instruments.curvature.rops import (
    AffineOp,
    BatchNormEvalOp,
    ElementwiseOp,
    FlattenOp,
    Op,
    ResidualOp,
    SoftmaxOp,
)
from gradient_lab.engine.model import Model, Node, Slot
from gradient_lab.engine.plugin_api import Activation, ActivationFusion, DenseFusion, Loss

EXACT = "exact"
FINITE_DIFFERENCES = "finite differences"


def _activation_ops(act: Activation) -> list[Op] | None:
    if act.inline == "linear":
        return []
    if act.elementwise:
        return [ElementwiseOp(act)]
    if act.inline == "softmax":
        return [SoftmaxOp(act)]
    return None  # a row-wise plugin activation: no known second derivative


def _dense_ops(
    theta: Array, fusion: DenseFusion, slots: dict[str, Slot], prefix: str = ""
) -> list[Op] | None:
    act_ops = _activation_ops(fusion.activation)
    w = slots.get(prefix + fusion.weight)
    b = slots.get(prefix + fusion.bias) if fusion.bias else None
    if act_ops is None or w is None or (fusion.bias and b is None):
        return None
    return [AffineOp(theta, w, b), *act_ops]


def _residual_ops(theta: Array, node: Node, slots: dict[str, Slot]) -> list[Op] | None:
    children = [child.layer for child in node.children.values()]
    if len(children) != 2:
        return None
    ops: list[Op] = []
    for prefix, child in zip(("inner.", "outer."), children, strict=True):
        fusion = child.fusion()
        child_ops = (
            _dense_ops(theta, fusion, slots, prefix) if isinstance(fusion, DenseFusion) else None
        )
        if child_ops is None:
            return None
        ops.extend(child_ops)
    return [ResidualOp(ops)]


def _layer_ops(theta: Array, node: Node, slots: dict[str, Slot]) -> list[Op] | None:
    """The R-operator steps of one layer, or None when it has no exact rule here.

    Dense and activation layers are recognized by the fusion description they publish (so a
    plugin layer that is y = f(x W + b) qualifies); the other built-ins by name and weights.
    Every trainable weight of the layer must be one the steps account for."""
    ops = _recognized_ops(theta, node, slots)
    if ops is None:
        return None
    used = {slot.name for op in ops for slot in op.slots()}
    return ops if used == set(slots) else None


def _recognized_ops(theta: Array, node: Node, slots: dict[str, Slot]) -> list[Op] | None:
    layer = node.layer
    fusion = layer.fusion()
    if isinstance(fusion, DenseFusion):
        return _dense_ops(theta, fusion, slots)
    if isinstance(fusion, ActivationFusion):
        return _activation_ops(fusion.activation)
    if layer.name == "flatten":
        return [FlattenOp()]
    if layer.name == "dropout":
        return [Op()]
    if layer.name == "batch_norm" and {"gamma", "beta"} <= set(slots):
        return [BatchNormEvalOp(theta, node, slots["gamma"], slots["beta"])]
    if layer.name == "residual":
        return _residual_ops(theta, node, slots)
    return None


def _has_dense(model: Model) -> bool:
    return any(isinstance(n.layer.fusion(), DenseFusion) and len(n.input_shape) != 1
               for n in model.walk())  # fmt: skip


def model_ops(model: Model, theta: Array) -> list[Op] | None:
    if len(model.output_shape) != 1 or _has_dense(model):
        return None  # the exact rules take one row of outputs per sample, dense on flat rows
    ops: list[Op] = []
    for i, node in enumerate(model.nodes):
        layer_ops = _layer_ops(theta, node, {s.name: s for s in model.layer_slots(i)})
        if layer_ops is None:
            return None
        ops.extend(layer_ops)
    return ops


def hvp_method(model: Model, loss: Loss | None = None) -> str:
    """``"exact"`` when every layer (and the loss, if given) has an R-operator rule here, else
    ``"finite differences"`` (central differences of the full gradient: approximate)."""
    if model_ops(model, model.theta) is None:
        return FINITE_DIFFERENCES
    if loss is not None and loss.inline_name() not in EXACT_LOSSES:
        return FINITE_DIFFERENCES
    return EXACT
