"""The public plugin API: the only part of the engine a plugin imports.

A plugin is a class that subclasses one of the kind bases below and declares its metadata as class
attributes (name, version, parameters, formula, teaching text). A plugin module lists its classes in
``PLUGINS``; the loader finds it through the entry-point group ``gradient_lab.plugins`` or as a
drop-in ``.py`` file. Instances are created with validated hyperparameters: ``Tanh()``,
``Adam(lr=0.01)``; ``self.hp`` holds every declared parameter, defaults filled in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np

API_VERSION = 3
"""2: the import name is gradient_lab (``from gradient_lab.engine.plugin_api import ...``).
3: layers are pure (``forward(ctx, p, *inputs)``, ``backward(ctx, p, dy) -> (dx, grads)``) and
declare weights and children on the BuildContext; architectures get the input shape."""

LAYER_API_VERSION = 3
"""Other kinds written for API 2 still load: only layers and architectures changed."""

KINDS = (
    "activation",
    "loss",
    "optimizer",
    "initializer",
    "regularizer",
    "lr_schedule",
    "layer",
    "architecture",
    "dataset",
    "metric",
    "objective",
)

PARAM_TYPES = ("float", "int", "bool", "str", "strs", "floats", "dict")


class PluginError(ValueError):
    """A user-facing mistake in a plugin's parameters or use: the message says what is allowed."""


@dataclass(frozen=True)
class Param:
    """One declared hyperparameter; the app builds its form from these."""

    name: str
    type: str
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    low_inclusive: bool = True
    high_inclusive: bool = True

    def allowed(self) -> str:
        """Say in words what values this parameter accepts."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type in ("float", "int"):
            kind = "a number" if self.type == "float" else "a whole number"
            lo = (
                ""
                if self.low is None
                else (">= " if self.low_inclusive else "> ") + f"{self.low:g}"
            )
            hi = (
                ""
                if self.high is None
                else ("<= " if self.high_inclusive else "< ") + f"{self.high:g}"
            )
            bounds = " and ".join(b for b in (lo, hi) if b)
            return f"{kind} {bounds}".strip()
        return {
            "bool": "true or false",
            "str": "a text",
            "floats": "a list of numbers",
            "strs": "a text or a list of texts",
            "dict": "a table",
        }.get(self.type, self.type)

    def validate(self, value: Any, where: str = "") -> Any:
        """The value converted to the declared type, or a PluginError naming the field."""
        label = f"{where}.{self.name}" if where else self.name

        def fail() -> PluginError:
            return PluginError(f"{label} = {value!r} is not allowed: expected {self.allowed()}")

        if self.type == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise fail()
            value = bool(value)
        elif self.type == "int":
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise fail()
            value = int(value)
        elif self.type == "float":
            if isinstance(value, bool) or not isinstance(
                value, (int, float, np.integer, np.floating)
            ):
                raise fail()
            value = float(value)
            if not math.isfinite(value):
                raise fail()
        elif self.type == "str":
            if not isinstance(value, str):
                raise fail()
        elif self.type == "strs":
            if isinstance(value, str):
                value = (value,)
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise fail()
            value = tuple(value)
        elif self.type == "floats":
            if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            ):
                raise fail()
            value = tuple(float(v) for v in value)
        elif self.type == "dict" and not isinstance(value, dict):
            raise fail()
        if self.choices and value not in self.choices:
            raise fail()
        if self.type in ("float", "int"):
            if self.low is not None and (
                value < self.low or (not self.low_inclusive and value == self.low)
            ):
                raise fail()
            if self.high is not None and (
                value > self.high or (not self.high_inclusive and value == self.high)
            ):
                raise fail()
        return value


def validate_hp(
    params: tuple[Param, ...], given: dict[str, Any], where: str = ""
) -> dict[str, Any]:
    """Fill defaults and check every given value; unknown names are errors (typos must not pass)."""
    known = {p.name: p for p in params}
    unknown = [k for k in given if k not in known]
    if unknown:
        allowed = ", ".join(known) or "no parameters"
        label = f"{where}: " if where else ""
        raise PluginError(f"{label}unknown parameter {unknown[0]!r}; allowed: {allowed}")
    return {p.name: p.validate(given.get(p.name, p.default), where) for p in params}


class Plugin:
    """Base of every plugin kind: declared metadata plus validated hyperparameters."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1.0"
    api_version: ClassVar[int] = API_VERSION
    params: ClassVar[tuple[Param, ...]] = ()
    formula: ClassVar[str] = ""
    teaching: ClassVar[str] = ""

    def __init__(self, **hp: Any) -> None:
        self.hp: dict[str, Any] = validate_hp(self.params, hp, self.name)

    def get_config(self) -> dict[str, Any]:
        """The hyperparameters that recreate this instance with ``type(self)(**config)``."""
        return dict(self.hp)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hp.items())
        return f"{type(self).__name__}({args})"


# ---------------------------------------------------------------------------------------- kinds


class Activation(Plugin):
    """An element-wise activation y = f(x), or a row-wise one (softmax: ``elementwise = False``).

    Element-wise plugins write ``f(x, a, b)`` and ``df(x, y, a, b)`` (dy/dx given x and y = f(x)) as
    plain scalar functions using only ``math``: the engine compiles them once with
    ``numba.cfunc(cache=True)`` so any kernel can call them. ``a`` and ``b`` are the first two float
    parameters in declared order (0.0 when absent). ``inline`` names an engine fast path with the
    same math (checked by the conformance check). ``output_range`` sets the binary target levels.
    """

    kind: ClassVar[str] = "activation"
    elementwise: ClassVar[bool] = True
    inline: ClassVar[str] = ""
    output_range: ClassVar[tuple[float, float]] = (-math.inf, math.inf)
    kinks: ClassVar[tuple[float, ...]] = ()

    @staticmethod
    def f(x: float, a: float, b: float) -> float:
        raise NotImplementedError

    @staticmethod
    def df(x: float, y: float, a: float, b: float) -> float:
        raise NotImplementedError

    def scalar_args(self) -> tuple[float, float]:
        """The (a, b) passed to f and df: the first two float hyperparameters."""
        values = [float(self.hp[p.name]) for p in self.params if p.type == "float"][:2]
        values += [0.0] * (2 - len(values))
        return values[0], values[1]

    def apply(self, z: np.ndarray) -> np.ndarray:
        """y = f(z) on an array of any shape (compiled; row-wise plugins use forward_rows)."""
        if not self.elementwise:
            return self.forward_rows(z)
        if _compiled_activations:
            return _compiled_activations[0](self, z)
        a, b = self.scalar_args()
        return np.vectorize(self.f, otypes=[z.dtype])(z, a, b)

    def gradient(self, z: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """dL/dz from dL/dy, for any shape."""
        if not self.elementwise:
            return self.backward_rows(z, y, dy)
        if _compiled_activations:
            return _compiled_activations[1](self, z, y, dy)
        a, b = self.scalar_args()
        return dy * np.vectorize(self.df, otypes=[z.dtype])(z, y, a, b)

    def forward_rows(self, z: np.ndarray) -> np.ndarray:
        """Row-wise activations (``elementwise = False``) override this; last axis is the row."""
        raise NotImplementedError

    def backward_rows(self, z: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Row-wise activations override this: dL/dz given dL/dy."""
        raise NotImplementedError


ActivationOnArrays = Callable[..., np.ndarray]
_compiled_activations: list[ActivationOnArrays] = []


def use_compiled_activations(apply: ActivationOnArrays, gradient: ActivationOnArrays) -> None:
    """The engine's compute layer registers its compiled array loops here when it loads, so
    this module needs no engine import; until then ``apply`` falls back to plain NumPy."""
    _compiled_activations[:] = [apply, gradient]


class Loss(Plugin):
    """A loss with PyTorch's definition and ``mean`` reduction over every element.

    ``value(pred, target)`` returns a float and ``grad(pred, target)`` dL/dpred, both on arrays of
    shape (batch, outputs). ``target_encoding`` says how class labels become targets:
    ``"range"`` (the output activation's range, clipped to [-1, 1]), ``"zero_one"``,
    ``"plus_minus_one"`` or ``"one_hot"``. ``takes_logits`` says the loss applies its own
    sigmoid: the model outputs raw scores, so a single output splits the classes at 0 (not
    halfway between the target levels) and "auto" puts no activation after it.
    """

    kind: ClassVar[str] = "loss"
    inline: ClassVar[str] = ""
    target_encoding: ClassVar[str] = "range"
    takes_logits: ClassVar[bool] = False
    task: ClassVar[str] = "any"

    def value(self, pred: np.ndarray, target: np.ndarray) -> float:
        raise NotImplementedError

    def grad(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def residuals(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray | None:
        """For squared-error losses: r with loss = sum(r**2) (Levenberg-Marquardt needs it)."""
        return None

    def residual_scale(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray | None:
        """dr/dpred, element by element (residuals depend each on one prediction)."""
        return None

    def for_output(self, output_activation: str) -> Loss:
        """This loss set up for a model whose last activation is ``output_activation``."""
        return self

    def inline_name(self) -> str:
        """The engine fast path with the same math ("" for none)."""
        return self.inline


class OptimizerContext:
    """What an optimizer may ask of the session beyond the gradient (see Levenberg-Marquardt)."""

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def loss(self, theta: np.ndarray) -> float:
        raise NotImplementedError


class Optimizer(Plugin):
    """An optax-shaped, pure optimizer over the flat parameter vector theta.

    ``init(theta) -> state`` (a dict of arrays) and ``update(grad, state, theta, ctx) -> (update,
    state)``; the session applies ``theta += update``. ``self.hp["lr"]`` is set by the schedule
    before each step. ``inline`` names an engine fast path with the same rule, its state arrays
    listed in ``inline_state`` order. ``needs_context`` optimizers get an OptimizerContext and run
    full-batch.
    """

    kind: ClassVar[str] = "optimizer"
    inline: ClassVar[str] = ""
    inline_state: ClassVar[tuple[str, ...]] = ()
    needs_context: ClassVar[bool] = False

    def init(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def update(
        self,
        grad: np.ndarray,
        state: dict[str, np.ndarray],
        theta: np.ndarray,
        ctx: OptimizerContext | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        raise NotImplementedError


class Initializer(Plugin):
    """Fills a weight of a given shape: ``sample(shape, fan_in, fan_out, rng) -> array``."""

    kind: ClassVar[str] = "initializer"

    def sample(
        self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        raise NotImplementedError


class Regularizer(Plugin):
    """A penalty or a transform, applied at one ``stage`` of the step.

    - ``"loss"``: ``penalty(theta, mask)`` is added to the loss, ``penalty_grad`` to the gradient;
    - ``"gradient"``: ``transform(grad, theta, mask)`` rewrites the gradient (clipping);
    - ``"update"``: ``transform(update, theta, mask, lr)`` rewrites the update (decoupled decay).
    ``mask`` is 1.0 on weights and 0.0 on biases; a regularizer decides whether to use it.
    """

    kind: ClassVar[str] = "regularizer"
    stage: ClassVar[str] = "loss"
    inline: ClassVar[str] = ""

    def penalty(self, theta: np.ndarray, mask: np.ndarray) -> float:
        return 0.0

    def penalty_grad(self, theta: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.zeros_like(theta)

    def transform(
        self, vec: np.ndarray, theta: np.ndarray, mask: np.ndarray, lr: float
    ) -> np.ndarray:
        return vec


class LRSchedule(Plugin):
    """``lr(base_lr, t)``: the learning rate after t epochs (or t steps when ``per = "step"``)."""

    kind: ClassVar[str] = "lr_schedule"

    def lr(self, base_lr: float, t: int) -> float:
        raise NotImplementedError


class Dataset(Plugin):
    """Generates data: ``generate(rng) -> (X, y)``.

    ``X`` is float64 of shape (n, *input_shape); ``y`` is int class labels (n,) for classification
    or float targets (n, outputs) for regression. ``task`` is "classification" or "regression";
    ``n_classes`` is fixed or read from ``self.hp["classes"]``. 2D sets set ``planar = True`` so
    the derived input features (x1², sin x1, ...) apply.
    """

    kind: ClassVar[str] = "dataset"
    task: ClassVar[str] = "classification"
    planar: ClassVar[bool] = False

    def n_classes(self) -> int:
        return int(self.hp.get("classes", 2)) if self.task == "classification" else 0

    def generate(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class Metric(Plugin):
    """``compute(y_true, y_pred, scores)``: a float (or an array, e.g. a confusion matrix).

    Classification metrics get int labels ``y_true`` and ``y_pred`` and class scores (n, classes)
    (for binary: (n, 1), the positive-class score). Regression metrics get float arrays
    (n, outputs) for ``y_true`` and ``y_pred`` and ``scores`` is None.
    """

    kind: ClassVar[str] = "metric"
    task: ClassVar[str] = "classification"
    higher_is_better: ClassVar[bool] = True
    scalar: ClassVar[bool] = True

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None) -> Any:
        raise NotImplementedError


class Objective(Plugin):
    """A 2D test function for optimizer races: value, gradient and Hessian at (x, y).

    ``start`` is the default starting point, ``minima`` the known minimizers (for steps-to-
    tolerance), ``bounds`` ((xmin, xmax), (ymin, ymax)) the region worth drawing."""

    kind: ClassVar[str] = "objective"
    start: ClassVar[tuple[float, float]] = (-1.0, 1.0)
    minima: ClassVar[tuple[tuple[float, float], ...]] = ()
    bounds: ClassVar[tuple[tuple[float, float], tuple[float, float]]] = ((-2.0, 2.0), (-2.0, 2.0))

    def value(self, x: float, y: float) -> float:
        raise NotImplementedError

    def gradient(self, x: float, y: float) -> tuple[float, float]:
        raise NotImplementedError

    def hessian(self, x: float, y: float) -> np.ndarray:
        raise NotImplementedError


# --------------------------------------------------------------------------------------- layers


Shape = tuple[int, ...]
Params = Mapping[str, np.ndarray]
"""A layer's own trainable weights and state by name: read-only views the engine hands in."""


class BuildContext:
    """Where a layer declares what it owns, once the sample shape is known.

    ``add_weight`` declares a trainable array (or, with ``trainable=False``, state such as running
    statistics, checkpointed but not optimized); ``add_child`` builds a child layer the engine will
    find by path (``layers.3.attn.W_q``). ``weight`` and ``zeros`` make initial values with the
    experiment's initializer and dtype; ``make(kind, name, **hp)`` creates any other plugin.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        initializer: Initializer,
        dtype: Any = np.float64,
        make: Any = None,
        path: str = "",
    ) -> None:
        self.rng, self.initializer, self.dtype, self.make = rng, initializer, np.dtype(dtype), make
        self.path = path
        self.weights: dict[str, np.ndarray] = {}
        self.trainable: list[str] = []
        self.children: dict[str, tuple[Layer, BuildContext, Any]] = {}
        # the engine's memory check: reserve(bytes, commit) raises PluginError when too large
        self.reserve: Callable[[int, bool], None] | None = None

    def weight(self, shape: Shape, fan_in: int, fan_out: int) -> np.ndarray:
        self._check_size(shape)
        return np.asarray(
            self.initializer.sample(shape, fan_in, fan_out, self.rng), dtype=self.dtype
        )

    def zeros(self, shape: Shape) -> np.ndarray:
        self._check_size(shape)
        return np.zeros(shape, dtype=self.dtype)

    def _check_size(self, shape: Shape) -> int:
        """Refuse a weight too large for the memory left, before allocating it."""
        size = math.prod(int(n) for n in shape) * self.dtype.itemsize
        if self.reserve is not None:
            self.reserve(size, False)
        return size

    def add_weight(self, name: str, value: np.ndarray, trainable: bool = True) -> None:
        if name in self.weights or name in self.children or "." in name:
            raise PluginError(f"{self.path or 'layer'}: weight name {name!r} is taken or has a dot")
        size = self._check_size(np.shape(value))
        if self.reserve is not None:
            self.reserve(size, True)
        self.weights[name] = np.array(value, dtype=self.dtype)
        if trainable:
            self.trainable.append(name)

    def add_child(self, name: str, layer_type: str, input_shape: Any, **hp: Any) -> Layer:
        """Create and build the child layer ``name``; returns it (for its output shape)."""
        if name in self.weights or name in self.children or "." in name:
            raise PluginError(f"{self.path or 'layer'}: child name {name!r} is taken or has a dot")
        child = self.make("layer", layer_type, **hp)
        ctx = BuildContext(self.rng, self.initializer, self.dtype, self.make, f"{self.path}.{name}")
        ctx.reserve = self.reserve
        child.build(input_shape, ctx)
        self.children[name] = (child, ctx, input_shape)
        return cast(Layer, child)


class Call:
    """The record of one forward call, kept by the engine until its backward (PyTorch's ctx).

    A layer saves what its backward needs (``save``), shows values to the viewer (``observe``:
    "pre_activation", "activation", "attention", ...), asks for random numbers (``rng``: drawn
    from a generator the session derives and checkpoints, so a rewind replays them), updates its
    state (``set_state``: running statistics, applied in training only), adds a loss term of its
    own (``add_loss``: a VAE's KL; its backward adds the term's gradient) and runs its children
    (``forward(child, *inputs)``, later ``backward(child, dy)`` in reverse order).
    """

    def __init__(
        self, path: str, training: bool, runner: Any, inputs: tuple[Any, ...], node: Any = None
    ) -> None:
        self.path, self.training, self.inputs = path, training, inputs
        self.node = node  # the engine's handle on this layer
        self.params: Any = None  # the parameters this call ran with (its backward uses them)
        self.saved: dict[str, Any] = {}
        self.observed: dict[str, np.ndarray] = {}
        self.losses: dict[str, float] = {}
        self.children: dict[str, list[Call]] = {}
        self.output: Any = None
        self.backward_done = False
        self._runner = runner

    def save(self, **values: Any) -> None:
        self.saved.update(values)

    def observe(self, **arrays: np.ndarray) -> None:
        self.observed.update(arrays)

    @property
    def rng(self) -> np.random.Generator:
        return cast(np.random.Generator, self._runner.rng)

    def set_state(self, name: str, value: np.ndarray) -> None:
        self._runner.set_state(self, name, value)

    def add_loss(self, name: str, value: float) -> None:
        self.losses[name] = self.losses.get(name, 0.0) + float(value)

    def forward(self, child: str, *inputs: Any) -> Any:
        return self._runner.forward_child(self, child, inputs)

    def backward(self, child: str, dy: Any) -> Any:
        return self._runner.backward_child(self, child, dy)


@dataclass
class DenseFusion:
    """A layer that is y = act(x @ params[weight] + params[bias]) tells the fuser so."""

    activation: Activation
    weight: str = "W"
    bias: str = "b"


@dataclass
class ActivationFusion:
    """A layer that only applies an activation."""

    activation: Activation


@dataclass
class ReshapeForm:
    """In evaluation mode the layer only reshapes each sample to its output shape (flatten), or
    passes it on unchanged (dropout)."""


@dataclass
class ChannelAffineForm:
    """In evaluation mode y = p[scale] (x - p[mean]) / sqrt(p[var] + eps) + p[shift] with one
    value per channel (axis 1 of the batch): batch normalization on its running statistics.
    ``scale`` and ``shift`` name trainable weights, ``mean`` and ``var`` state."""

    eps: float
    scale: str = "gamma"
    shift: str = "beta"
    mean: str = "running_mean"
    var: str = "running_var"


@dataclass
class ResidualForm:
    """In evaluation mode y = x + the named children applied one after another, in this order."""

    children: tuple[str, ...]


class Layer(Plugin):
    """A layer on batches of N-d samples (batch axis first), pure over (parameters, inputs).

    - ``build(input_shape, ctx)`` declares weights, state and children on ``ctx`` once the sample
      shape is known (``ctx.add_weight``, ``ctx.add_child``); the layer object keeps only its
      configuration. Weight names in ``decay_names`` get weight decay and L1/L2.
    - ``forward(ctx, p, *inputs) -> y``: ``p`` maps the layer's weights and state to read-only
      arrays, ``ctx`` is this call's record (see ``Call``). Extra inputs (a mask, an encoder's
      memory, token ids) follow x; the names are declared in ``inputs``.
    - ``backward(ctx, p, dy) -> (dx, grads)``: dL/dx (a tuple, one per input, None where an input
      has no gradient) and a dict of dL/dweight for every trainable weight, same shapes.
    - ``output_shape(input_shape)``; ``get_config()`` round-trips through ``type(self)(**cfg)``.
    - ``fusion()`` may describe the layer to the fused training kernel.
    - ``evaluation_form()`` may describe what a layer that is not dense computes in evaluation
      mode; the curvature instrument's exact Hessian products rely on it (and on ``fusion()``),
      and the conformance check does not compare it with ``forward``: declare only what holds.
    """

    kind: ClassVar[str] = "layer"
    decay_names: ClassVar[tuple[str, ...]] = ("W",)
    inputs: ClassVar[tuple[str, ...]] = ("x",)
    min_batch: ClassVar[int] = 1
    """The smallest training batch the layer accepts (batch statistics need 2)."""

    def build(self, input_shape: Any, ctx: BuildContext) -> None:
        """Declare weights and children; the default has none."""

    def output_shape(self, input_shape: Any) -> Shape:
        return tuple(input_shape)

    def forward(self, ctx: Call, p: Params, *inputs: Any) -> Any:
        raise NotImplementedError

    def backward(self, ctx: Call, p: Params, dy: Any) -> tuple[Any, dict[str, np.ndarray]]:
        raise NotImplementedError

    def fusion(self) -> DenseFusion | ActivationFusion | None:
        return None

    def evaluation_form(self) -> ReshapeForm | ChannelAffineForm | ResidualForm | None:
        """The layer's evaluation-mode map, when it is one of these forms (None otherwise)."""
        return None

    def output_activation(self) -> str:
        """Name of the activation this layer ends with ("" when none): sets target encoding."""
        return ""


class StepContext:
    """What an architecture's own training step works with; the session implements it.

    ``x`` and ``targets`` are the minibatch (``targets`` is None for data without labels),
    ``rng`` the training noise generator (checkpointed: a rewind replays every draw).
    ``forward(network, x)`` runs one named network in training mode and returns its output and
    a record; ``backward(record, dy)`` returns dL/dx and adds the parameter gradients into the
    gradient of every weight the record touched. ``zero_grad(group)`` and ``update(group)`` clear
    and apply one parameter group (its own optimizer, schedule and regularizers).
    ``record(name, value)`` logs a loss component for the history; ``make(kind, name, **hp)``
    creates another plugin (a loss to use inside the step).
    """

    x: np.ndarray
    targets: np.ndarray | None
    rng: np.random.Generator

    def forward(self, network: str, x: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def backward(self, record: Any, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def zero_grad(self, group: str) -> None:
        raise NotImplementedError

    def update(self, group: str) -> None:
        raise NotImplementedError

    def record(self, name: str, value: float) -> None:
        raise NotImplementedError

    def make(self, kind: str, name: str, **hp: Any) -> Any:
        raise NotImplementedError


class Architecture(Plugin):
    """Builds a model from declared hyperparameters (depth, width, ...).

    A supervised architecture writes ``layers(input_shape, n_outputs, output_activation) ->
    list of layer configs`` ({"type": ..., **hp}); ``input_shape`` is one sample's shape:
    (features,), (C, H, W), (T, F). The session's default step trains it.

    An architecture that owns its training step (a GAN, a VAE) instead writes
    ``networks(input_shape) -> {name: (network input shape, layer configs)}`` and
    ``train_step(s)``, a generator that yields the name of each phase as it ends (each name in
    ``phases``, in order), and declares ``groups`` (parameter group -> the networks it trains,
    each group with its own optimizer) and ``losses`` (the components ``s.record`` logs; the
    step's loss is their sum).
    """

    kind: ClassVar[str] = "architecture"
    phases: ClassVar[tuple[str, ...]] = ()
    groups: ClassVar[dict[str, tuple[str, ...]]] = {}
    losses: ClassVar[tuple[str, ...]] = ()

    def layers(
        self, input_shape: Shape, n_outputs: int, output_activation: str
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    def networks(self, input_shape: Shape) -> dict[str, tuple[Shape, list[dict[str, Any]]]]:
        raise NotImplementedError

    def train_step(self, s: StepContext) -> Iterator[str]:
        raise NotImplementedError

    @classmethod
    def owns_step(cls) -> bool:
        return cls.train_step is not Architecture.train_step


KIND_BASES: dict[str, type[Plugin]] = {
    "activation": Activation,
    "loss": Loss,
    "optimizer": Optimizer,
    "initializer": Initializer,
    "regularizer": Regularizer,
    "lr_schedule": LRSchedule,
    "layer": Layer,
    "architecture": Architecture,
    "dataset": Dataset,
    "metric": Metric,
    "objective": Objective,
}
