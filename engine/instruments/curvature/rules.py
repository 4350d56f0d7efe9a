"""Which models have an exact Hessian product here: each layer turned into R-operator ops,
or None when a layer (or the loss) has no exact rule and the finite-difference path
serves."""

from __future__ import annotations

from gradient_lab.engine.instruments.curvature.derivatives import EXACT_LOSSES, Array
from gradient_lab.engine.instruments.curvature.rops import (
    AffineOp,
    ChannelAffineOp,
    ElementwiseOp,
    Op,
    ReshapeOp,
    ResidualOp,
    SoftmaxOp,
)
from gradient_lab.engine.model import Model, Node, Slot
from gradient_lab.engine.plugin_api import (
    Activation,
    ActivationFusion,
    ChannelAffineForm,
    DenseFusion,
    Loss,
    ReshapeForm,
    ResidualForm,
)

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


def _dense_ops(theta: Array, fusion: DenseFusion, slots: dict[str, Slot]) -> list[Op] | None:
    act_ops = _activation_ops(fusion.activation)
    w = slots.get(fusion.weight)
    b = slots.get(fusion.bias) if fusion.bias else None
    if act_ops is None or w is None or (fusion.bias and b is None):
        return None
    return [AffineOp(theta, w, b), *act_ops]


def _residual_ops(
    theta: Array, node: Node, form: ResidualForm, slots: dict[str, Slot]
) -> list[Op] | None:
    """x + the children in the declared order, each by its own rule (its weights are the
    parent's slots under ``child.``)."""
    ops: list[Op] = []
    for name in form.children:
        child = node.children.get(name)
        if child is None:
            return None
        prefix = name + "."
        child_slots = {k[len(prefix) :]: s for k, s in slots.items() if k.startswith(prefix)}
        child_ops = _recognized_ops(theta, child, child_slots)
        if child_ops is None:
            return None
        ops.extend(child_ops)
    return [ResidualOp(ops)]


def _layer_ops(theta: Array, node: Node, slots: dict[str, Slot]) -> list[Op] | None:
    """The R-operator steps of one layer, or None when it has no exact rule here.

    Layers are recognized by the descriptions they publish: dense and activation layers by
    ``fusion()`` (so a plugin layer that is y = f(x W + b) qualifies), the others by
    ``evaluation_form()``. Every trainable weight of the layer must be one the steps account
    for."""
    ops = _recognized_ops(theta, node, slots)
    if ops is None:
        return None
    used = {slot.name for op in ops for slot in op.slots()}
    return ops if used == set(slots) else None


def _recognized_ops(theta: Array, node: Node, slots: dict[str, Slot]) -> list[Op] | None:
    """The steps of a layer (``slots`` by the layer's own weight names), None without a rule."""
    layer = node.layer
    fusion = layer.fusion()
    if isinstance(fusion, DenseFusion):
        return _dense_ops(theta, fusion, slots)
    if isinstance(fusion, ActivationFusion):
        return _activation_ops(fusion.activation)
    form = layer.evaluation_form()
    if isinstance(form, ReshapeForm):
        return [ReshapeOp(tuple(layer.output_shape(node.input_shape)))]
    if isinstance(form, ChannelAffineForm):
        return _channel_affine_ops(theta, node, form, slots)
    if isinstance(form, ResidualForm):
        return _residual_ops(theta, node, form, slots)
    return None


def _channel_affine_ops(
    theta: Array, node: Node, form: ChannelAffineForm, slots: dict[str, Slot]
) -> list[Op] | None:
    if form.scale not in slots or form.shift not in slots:
        return None
    if form.mean not in node.state or form.var not in node.state:
        return None
    mean, var = node.state[form.mean], node.state[form.var]
    return [ChannelAffineOp(theta, slots[form.scale], slots[form.shift], mean, var, form.eps)]


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
