"""The conformance check: does a plugin keep the promises its declaration makes?

One check serves three callers: ``gradient-lab plugins check``, the test suite (every discovered
plugin) and plugin authors (the ``plugin_check`` fixture in ``gradient_lab.engine.testing``). A
report is a list of named items, each passed or failed with a one-line message. An exception
inside one check fails that item with the exception's text and never stops the others.

Numerics are checked in float64 against central differences at seeded random points, and fast
paths (``inline`` codes, layer fusion) against the plugin's own readable code, so a plugin that
claims an engine fast path cannot silently train with different math. A layer is built for
samples of shape (5,) unless its class declares another in ``check_input_shape``.
"""

from __future__ import annotations

import csv
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.compute.activations import activation_args, activation_functions
from gradient_lab.engine.compute.array_math import softmax
from gradient_lab.engine.compute.fused import loss_hp
from gradient_lab.engine.loading.registry import (
    PluginRecord,
    Registry,
    contract_problems,
    load_file,
    load_sources,
    one_line,
)
from gradient_lab.engine.model import Model
from gradient_lab.engine.model.calls import Runner, layer_losses
from gradient_lab.engine.model.owned_step import Group, OwnedTrainer, network_index
from gradient_lab.engine.model.single import SingleLayer
from gradient_lab.engine.plugin_api import (
    ActivationFusion,
    Call,
    DenseFusion,
    Initializer,
    Layer,
    Loss,
    Optimizer,
    OptimizerContext,
    Param,
    PluginError,
    Regularizer,
)

__all__ = [
    "CheckFailed",
    "CheckInitializer",
    "CheckItem",
    "CheckReport",
    "check_name",
    "check_path",
    "check_plugin",
]

SEED = 1234
FD_STEP = 1e-6  # relative step of the central differences
FD_RTOL = 1e-6  # agreement asked of an analytic derivative with the differences
ROUNDING_MARGIN = 10.0  # differences of an exactly flat direction stay within this many roundings
EXACT_RTOL = 1e-12  # agreement asked of a fast path with the plugin's own code
KINK_GAP = 1e-3  # activation points this close to a declared kink are left out
BATCH = 4  # samples in a layer's test batch
OTHER_BATCH = 3  # a second batch size: shapes must not depend on the check's
LAYER_INPUT_SHAPE = (5,)
# Built-in layers that need another sample shape than LAYER_INPUT_SHAPE; a plugin says so itself
# with a class attribute ``check_input_shape``.
SAMPLE_SHAPES: dict[str, tuple[int, ...]] = {"flatten": (2, 3, 4)}
QUADRATIC_STEPS = 300
QUADRATIC_LRS = (0.1, 0.03, 0.01)  # tried when the default hyperparameters do not converge
INLINE_STEPS = 15
ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")
GENERIC_LINES = ("Failed in ", "During: ")


# -------------------------------------------------------------------------------- reports


@dataclass
class CheckItem:
    """One verdict: what was checked, whether it held, and a one-line reason."""

    name: str
    passed: bool
    message: str


@dataclass
class CheckReport:
    """Every item checked for one plugin class."""

    kind: str
    name: str
    items: list[CheckItem] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.items) and all(item.passed for item in self.items)

    def failures(self) -> list[CheckItem]:
        return [item for item in self.items if not item.passed]

    def describe(self, only_failures: bool = False) -> str:
        """Readable lines: the plugin, then one line per item."""
        status = "PASS" if self.passed else "FAIL"
        lines = [f"{self.kind} {self.name}: {status}"]
        for item in self.failures() if only_failures else self.items:
            mark = "pass" if item.passed else "FAIL"
            lines.append(f"  {mark}  {item.name}: {item.message}")
        return "\n".join(lines)


class CheckFailed(Exception):
    """A check's own negative verdict (the message says what disagreed)."""


# A check returns its pass message, or None when it does not apply; it raises to fail.
Check = Callable[[], str | None]


def _run(name: str, check: Check) -> CheckItem | None:
    """Run one check inside its own guard."""
    try:
        with np.errstate(all="ignore"):
            message = check()
    except CheckFailed as exc:
        return CheckItem(name, False, str(exc).splitlines()[0] if str(exc) else name)
    except (Exception, SystemExit) as exc:  # plugin code must not end the whole check
        return CheckItem(name, False, error_text(exc))
    if message is None:
        return None
    return CheckItem(name, True, message)


def error_text(exc: BaseException) -> str:
    """One informative line: Numba's errors open with a generic line and carry colour codes."""
    lines = [ANSI_CODES.sub("", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line and not line.startswith(GENERIC_LINES)]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


# ---------------------------------------------------------------------------- public entry


def check_plugin(cls: Any, registry: Registry | None = None) -> CheckReport:
    """Check one plugin class; ``registry`` supplies the plugins it uses (a layer's activation)."""
    if registry is None:
        registry = load_sources(safe_mode=True)
    report = CheckReport(str(getattr(cls, "kind", "?")), str(getattr(cls, "name", cls)))
    checks = _common_checks(cls)
    if not _contract(cls):
        kind_checks = KIND_CHECKS.get(cls.kind)
        if kind_checks is not None:
            checks += kind_checks(cls, registry)
    for name, check in checks:
        item = _run(name, check)
        if item is not None:
            report.items.append(item)
    return report


def check_name(name: str, registry: Registry) -> list[tuple[PluginRecord, CheckReport]]:
    """Check every plugin (of any kind) called ``name``; failed loads report why."""
    return [_check_record(r, registry) for r in registry.records if r.name == name]


def check_path(path: str | Path) -> list[tuple[PluginRecord, CheckReport]]:
    """Check the plugins of one drop-in file, loaded next to the built-ins only."""
    path = Path(path)
    registry = load_sources(safe_mode=True)
    try:
        module = load_file(path)
    except BaseException as exc:  # a drop-in's SystemExit must not end the check either
        record = PluginRecord(path.stem, "module", "folder", str(path), None, "", "failed")
        record.error = one_line(exc)
        report = CheckReport("module", path.stem, [CheckItem("import", False, record.error)])
        return [(record, report)]
    registry.add_module(module, "folder", str(path))
    return [_check_record(r, registry) for r in registry.records if r.origin == str(path)]


def _check_record(record: PluginRecord, registry: Registry) -> tuple[PluginRecord, CheckReport]:
    if record.ok:
        return record, check_plugin(record.cls, registry)
    item = "name clash" if record.error.startswith("name clash") else "load"
    if record.kind == "module":
        item = "import"
    return record, CheckReport(record.kind, record.name, [CheckItem(item, False, record.error)])


# ------------------------------------------------------------------------------ numerics


def _rng(offset: int = 0) -> np.random.Generator:
    return np.random.default_rng(SEED + offset)


def _step(value: float) -> float:
    return FD_STEP * max(1.0, abs(value))


def _compare(
    what: str, actual: Any, expected: Any, rtol: float, atol: float = 0.0, at: Any = None
) -> float:
    """Raise CheckFailed unless |actual - expected| <= atol + rtol |expected| everywhere.

    ``at`` (same shape) names each element's input x in the message. Returns the worst error
    relative to the largest expected magnitude (for the pass message)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise CheckFailed(f"{what}: shape {a.shape}, expected {e.shape}")
    if a.size == 0:
        return 0.0
    excess = np.abs(a - e) - (atol + rtol * np.abs(e))
    excess = np.where(np.isfinite(excess), excess, np.inf)
    worst = int(np.argmax(excess))
    if excess.flat[worst] > 0.0:
        where: Any = tuple(int(i) for i in np.unravel_index(worst, a.shape)) if a.ndim else ()
        if at is not None:
            where = f"x = {np.asarray(at, dtype=np.float64).flat[worst]:.6g}"
        raise CheckFailed(
            f"{what} disagree at {where}: {a.flat[worst]:.10g} vs {e.flat[worst]:.10g} "
            f"(tolerance {atol + rtol * abs(e.flat[worst]):.1e})"
        )
    scale = max(float(np.abs(e).max()), 1e-300)
    return float(np.abs(a - e).max() / scale)


def _norm_tol(expected: Any, rtol: float) -> float:
    """An absolute tolerance of rtol times the largest expected magnitude."""
    e = np.asarray(expected, dtype=np.float64)
    return rtol * float(np.abs(e).max()) if e.size else 0.0


def _differences(
    fun: Callable[[np.ndarray], float], x: np.ndarray, detect_kinks: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of a scalar function, and which coordinates they are valid at.

    A coordinate whose one-sided slopes disagree has a kink within the step (e.g. |d| at 0):
    the central difference means nothing there, so it is marked invalid instead of compared."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros(x.shape)
    valid = np.ones(x.shape, dtype=bool)
    base = fun(x) if detect_kinks else 0.0
    noise = max(1.0, abs(base))  # rounding in the one-sided slopes grows with |f|
    for i in np.ndindex(x.shape):
        h = _step(float(x[i]))
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        fp, fm = fun(xp), fun(xm)
        grad[i] = (fp - fm) / (2.0 * h)
        if detect_kinks:
            right, left = (fp - base) / h, (base - fm) / h
            valid[i] = abs(right - left) <= 1e-2 * max(abs(right), abs(left)) + 1e-7 * noise
    return grad, valid


def _compare_differences(
    what: str, analytic: Any, fun: Callable[[np.ndarray], float], x: np.ndarray
) -> tuple[float, int]:
    """Analytic gradient vs central differences at the valid coordinates: (worst error, n)."""
    numeric, valid = _differences(fun, x)
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise CheckFailed(f"{what}: gradient shape {analytic.shape}, expected {numeric.shape}")
    if valid.sum() < 0.5 * valid.size:
        raise CheckFailed(f"{what}: too many kinks ({int((~valid).sum())} of {valid.size})")
    # rounding in f(x ± h) leaves differences of about eps |f| / h where the slope is 0
    rounding = ROUNDING_MARGIN * np.finfo(np.float64).eps * max(1.0, abs(fun(x))) / FD_STEP
    atol = max(_norm_tol(numeric, FD_RTOL), rounding) + 1e-10
    # a coordinate at a kink is compared with itself, so positions keep the input's shape
    worst = _compare(what, np.where(valid, analytic, numeric), numeric, FD_RTOL, atol)
    return worst, int(valid.sum())


# --------------------------------------------------------------------------- every kind


def _common_checks(cls: Any) -> list[tuple[str, Check]]:
    return [
        ("contract", lambda: _check_contract(cls)),
        ("parameters", lambda: _check_parameters(cls)),
        ("config round-trip", lambda: _check_round_trip(cls)),
        ("metadata", lambda: _check_metadata(cls)),
    ]


def _contract(cls: Any) -> list[str]:
    try:
        return contract_problems(cls)
    except Exception as exc:
        return [one_line(exc)]


def _check_contract(cls: Any) -> str:
    problems = _contract(cls)
    if problems:
        raise CheckFailed("; ".join(problems))
    return f"a valid {cls.kind} declaration (api_version {cls.api_version}, version {cls.version})"


def _bad_values(p: Param) -> list[Any]:
    """Values the declaration forbids: wrong type, outside the range, not among the choices."""
    wrong_type = {"float": "abc", "int": "abc", "bool": "yes", "floats": "abc", "dict": "abc"}
    values: list[Any] = [wrong_type.get(p.type, 3)]
    if p.choices:
        values.append("not-a-choice" if p.type in ("str", "strs") else object())
    if p.type in ("float", "int"):
        if p.low is not None:
            values.append(p.low - 1 if p.low_inclusive else p.low)
        if p.high is not None:
            values.append(p.high + 1 if p.high_inclusive else p.high)
    return values


def _edge_values(p: Param) -> list[Any]:
    """Range bounds the declaration allows."""
    if p.type not in ("float", "int") or p.choices:
        return []
    low: float | None
    high: float | None
    if p.type == "int":  # the whole numbers nearest the bounds, inside them
        low = None if p.low is None else math.ceil(p.low)
        high = None if p.high is None else math.floor(p.high)
    else:
        low = None if p.low is None else float(p.low)
        high = None if p.high is None else float(p.high)
    edges = [] if low is None or not p.low_inclusive else [low]
    return edges + ([] if high is None or not p.high_inclusive else [high])


def _check_parameters(cls: Any) -> str:
    for p in cls.params:
        try:
            p.validate(p.default)
        except PluginError as exc:
            raise CheckFailed(f"default of {p.name!r} is invalid: {exc}") from None
        for bad in _bad_values(p):
            _expect_refused(cls, p, bad)
        for edge in _edge_values(p):
            _expect_accepted(cls, p, edge)
    return f"{len(cls.params)} parameters: defaults valid, bounds accepted, bad values refused"


def _expect_refused(cls: Any, p: Param, bad: Any) -> None:
    try:
        cls(**{p.name: bad})
    except PluginError:
        return
    except Exception as exc:
        raise CheckFailed(
            f"{p.name} = {bad!r} raised {one_line(exc)} instead of a PluginError"
        ) from None
    raise CheckFailed(f"{p.name} = {bad!r} was accepted; the declaration allows {p.allowed()}")


def _expect_accepted(cls: Any, p: Param, edge: Any) -> None:
    try:
        cls(**{p.name: edge})
    except Exception as exc:
        raise CheckFailed(
            f"{p.name} = {edge!r} is within the declared range ({p.allowed()}) but is refused: "
            f"{one_line(exc)}"
        ) from None


def _check_round_trip(cls: Any) -> str:
    plugin = cls()
    config = plugin.get_config()
    again = type(plugin)(**config).get_config()
    if again != config:
        raise CheckFailed(f"get_config() gave {config!r}, rebuilt from it {again!r}")
    return f"{type(plugin).__name__}(**get_config()) rebuilds the same configuration"


def _check_metadata(cls: Any) -> str:
    missing = [a for a in ("formula", "teaching") if not str(getattr(cls, a, "") or "").strip()]
    if missing:
        raise CheckFailed(f"{' and '.join(missing)} must be a non-empty text")
    undocumented = [p.name for p in cls.params if not p.help.strip()]
    if undocumented:
        raise CheckFailed(f"parameter(s) without help text: {', '.join(undocumented)}")
    return "formula, teaching text and parameter help present"


# ---------------------------------------------------------------------------- activations


def _activation_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [
        ("jit compile", lambda: _check_jit(cls)),
        ("derivative", lambda: _check_activation_derivative(cls)),
        ("inline agrees", lambda: _check_activation_inline(cls)),
    ]


def _activation_points(cls: Any) -> np.ndarray:
    """200 seeded points in [-4, 4], minus those within KINK_GAP of a declared kink."""
    x = _rng().uniform(-4.0, 4.0, 200)
    for kink in cls.kinks:
        x = x[np.abs(x - kink) > KINK_GAP]
    return x


def _scalar_values(act: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plugin's own (Python) f and df at the points x."""
    a, b = act.scalar_args()
    y = np.array([act.f(float(v), a, b) for v in x], dtype=np.float64)
    dy = np.array([act.df(float(v), float(w), a, b) for v, w in zip(x, y, strict=True)])
    return y, dy


def _check_jit(cls: Any) -> str | None:
    if not cls.elementwise:
        return None
    f, df = activation_functions(cls)
    act = cls()
    a, b = act.scalar_args()
    x = _activation_points(cls)
    y, dy = _scalar_values(act, x)
    compiled_y = np.array([f(float(v), a, b) for v in x])
    compiled_dy = np.array([df(float(v), float(w), a, b) for v, w in zip(x, y, strict=True)])
    _compare("compiled f and Python f", compiled_y, y, EXACT_RTOL, 1e-15, at=x)
    _compare("compiled df and Python df", compiled_dy, dy, EXACT_RTOL, 1e-15, at=x)
    return f"f and df compile as cfuncs and agree with the Python code at {len(x)} points"


def _check_activation_derivative(cls: Any) -> str:
    if not cls.elementwise:
        return _check_row_derivative(cls())
    x = _activation_points(cls)
    worst = 0.0
    for configured, act in _configurations(cls):
        a, b = act.scalar_args()
        _, dy = _scalar_values(act, x)

        def f(v: float, fn: Any = act.f, a: float = a, b: float = b) -> float:
            return fn(v, a, b)

        numeric = np.array([_scalar_difference(f, float(v)) for v in x])
        what = f"df and central differences{configured}"
        worst = max(worst, _compare(what, dy, numeric, FD_RTOL, FD_RTOL, at=x))
    return (
        f"df matches central differences of f at {len(x)} points in [-4, 4], at the defaults "
        f"and with the parameters moved (worst error {worst:.1e})"
    )


def _scalar_difference(f: Callable[[float], float], x: float) -> float:
    h = _step(x)
    return (f(x + h) - f(x - h)) / (2.0 * h)


def _check_row_derivative(act: Any) -> str:
    rng = _rng()
    z = rng.normal(scale=2.0, size=(3, 5))
    r = rng.normal(size=(3, 5))
    analytic = act.backward_rows(z, act.forward_rows(z), r)

    def loss(zz: np.ndarray) -> float:
        return float(np.sum(act.forward_rows(zz) * r))

    worst, n = _compare_differences("backward_rows and differences", analytic, loss, z)
    return f"backward_rows matches differences of forward_rows at {n} inputs (worst {worst:.1e})"


def _check_activation_inline(cls: Any) -> str | None:
    if not cls.inline:
        return None
    code = kernels.ACTIVATION_CODES.get(cls.inline)
    if code is None:
        return f"{cls.inline!r} is not an engine fast path here; the compiled f and df are used"
    for configured, act in _configurations(cls):
        _compare_activation_kernel(cls, act, code, configured)
    return f"the engine's inline {cls.inline!r} gives the same values and derivatives"


def _compare_activation_kernel(cls: Any, act: Any, code: int, configured: str) -> None:
    a, b = act.scalar_args()
    if cls.elementwise:
        z = _activation_points(cls).reshape(1, -1)
        y, dy = (v.reshape(1, -1) for v in _scalar_values(act, z.ravel()))
        upstream = np.ones_like(z)
        expected_dz = dy
    else:
        rng = _rng()
        z = rng.normal(scale=2.0, size=(3, 5))
        upstream = rng.normal(size=z.shape)
        y = np.ascontiguousarray(act.forward_rows(z))  # the kernels take C-ordered rows
        expected_dz = act.backward_rows(z, y, upstream)
    kernel_y = np.empty_like(z)
    kernels.apply_activation(code, a, b, kernels.NO_FUNCTION, z, kernel_y)
    at = z if cls.elementwise else None
    what = f"engine {cls.inline!r} and the plugin's"
    _compare(f"{what} values{configured}", kernel_y, y, EXACT_RTOL, 1e-15, at)
    kernel_dz = np.empty_like(z)
    kernels.activation_backward(code, a, b, kernels.NO_DERIVATIVE, z, y, upstream, kernel_dz)
    _compare(f"{what} derivatives{configured}", kernel_dz, expected_dz, EXACT_RTOL, 1e-15, at)


# --------------------------------------------------------------------------------- losses


@dataclass
class _LossCase:
    label: str
    loss: Loss
    pred: np.ndarray
    target: np.ndarray


def _loss_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [
        ("derivative", lambda: _check_loss_derivative(cls)),
        ("inline agrees", lambda: _check_loss_inline(cls)),
    ]


def _moved_parameters(cls: Any) -> dict[str, float]:
    """Every float parameter moved off its default, inside its declared range: a gradient or a
    fast path that ignores a parameter agrees with the plugin at the defaults only."""
    moved = {}
    for p in cls.params:
        if p.type != "float" or p.choices:
            continue
        for candidate in (p.default * 1.5, p.default + 0.5, p.default * 0.5):
            if candidate == p.default:
                continue
            try:
                moved[p.name] = p.validate(candidate)
                break
            except PluginError:
                continue
    return moved


def _configurations(cls: Any) -> Iterator[tuple[str, Any]]:
    """(label, instance) at the defaults, then with every float parameter moved."""
    yield "", cls()
    moved = _moved_parameters(cls)
    if moved:
        try:
            instance = cls(**moved)
        except PluginError:
            return  # the plugin rejects that combination itself
        yield " with " + ", ".join(f"{k} = {v:g}" for k, v in moved.items()), instance


def _loss_variants(loss: Loss) -> list[tuple[str, Loss, bool]]:
    """The loss as configured for a linear and for a softmax output (cross-entropy differs)."""
    variants: list[tuple[str, Loss, bool]] = [("", loss, False)]
    seen = [(type(loss), loss.get_config())]
    for output, after_softmax in (("linear", False), ("softmax", True)):
        try:
            other = loss.for_output(output)
        except PluginError:
            continue
        key = (type(other), other.get_config())
        if key not in seen:
            seen.append(key)
            variants.append((f" for a {output} output", other, after_softmax))
    return variants


def _targets(encoding: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    if encoding == "one_hot":
        return np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]
    if encoding == "zero_one":
        return rng.integers(0, 2, shape).astype(np.float64)
    if encoding == "plus_minus_one":
        return rng.choice(np.array([-1.0, 1.0]), shape)
    return rng.normal(size=shape)


def _loss_cases(cls: Any) -> Iterator[_LossCase]:
    """Seeded (pred, target) pairs of shapes (6, 3) and (6, 1) for every variant of the loss, at
    its defaults and with its float parameters moved.

    Predictions are reals, softmax rows after a softmax output, and probabilities in
    (0.05, 0.95) for 0/1 targets (all of them where reals give no finite loss, as BCE)."""
    for configured, loss in _configurations(cls):
        yield from _loss_cases_of(loss, configured)


def _loss_cases_of(loss: Loss, configured: str) -> Iterator[_LossCase]:
    rng = _rng()
    for label, variant, after_softmax in _loss_variants(loss):
        for shape in ((6, 3), (6, 1)):
            target = _targets(loss.target_encoding, shape, rng)
            where = f"{label} at shape {shape}{configured}"
            if after_softmax:
                pred = softmax(rng.normal(size=shape))
                yield _LossCase(f"softmax rows{where}", variant, pred, target)
                continue
            reals = rng.normal(scale=1.5, size=shape)
            if math.isfinite(variant.value(reals, target)):
                yield _LossCase(f"real predictions{where}", variant, reals, target)
            elif loss.target_encoding != "zero_one":
                raise CheckFailed(f"the loss is not finite at real predictions{where}")
            if loss.target_encoding == "zero_one":
                probs = rng.uniform(0.05, 0.95, shape)
                yield _LossCase(f"probabilities{where}", variant, probs, target)


def _check_loss_derivative(cls: Any) -> str:
    worst, points, cases = 0.0, 0, 0
    for case in _loss_cases(cls):
        grad = np.asarray(case.loss.grad(case.pred, case.target))

        def value(p: np.ndarray, case: _LossCase = case) -> float:
            return float(case.loss.value(p, case.target))

        err, n = _compare_differences(
            f"grad and differences ({case.label})", grad, value, case.pred
        )
        worst, points, cases = max(worst, err), points + n, cases + 1
    return (
        f"grad matches central differences of value in {cases} cases, {points} points "
        f"(worst {worst:.1e})"
    )


def _check_loss_inline(cls: Any) -> str | None:
    names = []
    for case in _loss_cases(cls):
        name = case.loss.inline_name()
        if not name:
            continue
        code = kernels.LOSS_CODES.get(name)
        if code is None:
            names.append(f"{name!r} (no engine fast path here)")
            continue
        _compare_loss_kernel(case, code)
        names.append(repr(name))
    if not names:
        return None
    return f"engine fast path {', '.join(dict.fromkeys(names))}: same value and gradient"


def _compare_loss_kernel(case: _LossCase, code: int) -> None:
    pred = np.ascontiguousarray(case.pred, dtype=np.float64)
    target = np.ascontiguousarray(case.target, dtype=np.float64)
    dp = np.empty_like(pred)
    value = kernels.loss_and_grad(code, pred, target, loss_hp(case.loss), dp)
    _compare(
        f"engine and plugin loss values ({case.label})",
        value,
        case.loss.value(pred, target),
        EXACT_RTOL,
        1e-15,
    )
    grad = np.asarray(case.loss.grad(pred, target), dtype=np.float64)
    if code == kernels.LOSS_CE_PROBS:
        # this kernel returns dL/dz of the softmax in front: the plugin's grad taken through it
        grad = pred * (grad - (grad * pred).sum(axis=1, keepdims=True))
    _compare(
        f"engine and plugin gradients ({case.label})",
        dp,
        grad,
        EXACT_RTOL,
        _norm_tol(grad, EXACT_RTOL),
    )


# ----------------------------------------------------------------------------- optimizers


@dataclass
class _Quadratic:
    """f(θ) = ½ θᵀAθ − bᵀθ with A SPD, condition number 10: the optimizer's test bowl."""

    a: np.ndarray
    b: np.ndarray
    root: np.ndarray  # A^(1/2): residuals r = A^(1/2)θ − A^(-1/2)b give f = ½|r|² + const
    c: np.ndarray  # A^(-1/2) b
    start: np.ndarray
    best: float

    def value(self, theta: np.ndarray) -> float:
        return float(0.5 * theta @ self.a @ theta - self.b @ theta)

    def grad(self, theta: np.ndarray) -> np.ndarray:
        return self.a @ theta - self.b


def _quadratic(n: int = 10, condition: float = 10.0) -> _Quadratic:
    rng = _rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eig = np.geomspace(1.0, condition, n)
    a = (q * eig) @ q.T
    root = (q * np.sqrt(eig)) @ q.T
    b = rng.normal(size=n)
    c = q @ ((q.T @ b) / np.sqrt(eig))
    optimum = np.linalg.solve(a, b)
    problem = _Quadratic(a, b, root, c, optimum + rng.normal(size=n), 0.0)
    problem.best = problem.value(optimum)
    return problem


class _QuadraticContext(OptimizerContext):
    """The quadratic as least squares, for optimizers that ask for residuals and a Jacobian."""

    def __init__(self, problem: _Quadratic) -> None:
        self.problem = problem

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        return self.problem.root @ theta - self.problem.c

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        return self.problem.root.copy()

    def loss(self, theta: np.ndarray) -> float:
        return self.problem.value(theta)


def _optimizer_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [
        ("state is arrays", lambda: _check_state(cls)),
        ("decreases a quadratic", lambda: _check_descent(cls)),
        ("inline agrees", lambda: _check_optimizer_inline(cls)),
    ]


def _check_state(cls: Any) -> str:
    opt = cls()
    state = opt.init(np.zeros(10))
    if not isinstance(state, dict):
        raise CheckFailed(f"init returned {type(state).__name__}, expected a dict of arrays")
    not_arrays = [k for k, v in state.items() if not isinstance(v, np.ndarray)]
    if not_arrays:
        raise CheckFailed(f"state entries that are not numpy arrays: {', '.join(not_arrays)}")
    if "step" not in state or state["step"].shape != (1,):
        raise CheckFailed('the state needs a "step" counter of shape (1,)')
    missing = [name for name in cls.inline_state if name not in state]
    if missing:
        raise CheckFailed(f"inline_state names missing from the state: {', '.join(missing)}")
    return f"init returns numpy arrays: {', '.join(state)}"


def _remaining_gap(opt: Optimizer, problem: _Quadratic, steps: int) -> float:
    """(f(θ_end) − f*) / (f(θ_0) − f*) after ``steps`` updates (inf when it blows up)."""
    theta = problem.start.copy()
    state = opt.init(theta)
    ctx = _QuadraticContext(problem) if opt.needs_context else None
    for _ in range(steps):
        update, state = opt.update(problem.grad(theta), state, theta, ctx)
        theta += np.asarray(update, dtype=np.float64)
        if not np.all(np.isfinite(theta)):
            return math.inf
    return (problem.value(theta) - problem.best) / (problem.value(problem.start) - problem.best)


def _descent_settings(cls: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "default hyperparameters", {}
    if any(p.name == "lr" for p in cls.params):
        for lr in QUADRATIC_LRS:
            yield f"lr = {lr}", {"lr": lr}


def _check_descent(cls: Any) -> str:
    problem = _quadratic()
    tried = []
    for label, hp in _descent_settings(cls):
        try:
            opt = cls(**hp)
        except PluginError:
            continue
        gap = _remaining_gap(opt, problem, QUADRATIC_STEPS)
        if gap <= 0.5:
            return (
                f"with {label}, {QUADRATIC_STEPS} steps close {100 * (1 - gap):.1f}% of the gap "
                "to the minimum of a 10-d quadratic (condition 10)"
            )
        tried.append(f"{label}: {_progress(gap)}")
    raise CheckFailed(
        f"{QUADRATIC_STEPS} steps never closed half the gap to the minimum ({'; '.join(tried)})"
    )


def _progress(gap: float) -> str:
    """The remaining gap to the minimum in words."""
    if not math.isfinite(gap):
        return "diverged"
    if gap > 1.0:
        return f"moved away from the minimum (gap x{gap:.2g})"
    return f"closed {100 * (1 - gap):.1f}%"


# Non-default settings so the inline comparison covers momentum, decay and the other branches.
INLINE_SETTINGS: tuple[dict[str, Any], ...] = (
    {},
    {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
    {"lr": 0.05, "momentum": 0.5, "dampening": 0.3},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"lr": 0.05, "lr_decay": 0.1, "weight_decay": 0.05},
    {"lr": 0.05, "centered": True, "momentum": 0.5},
    {"lr": 0.05, "amsgrad": True, "weight_decay": 0.05},
    {"lr": 0.05, "beta1": 0.5, "beta2": 0.9},
    {"lr": 0.5, "rho": 0.7, "eps": 1e-4},
)


def _inline_optimizers(cls: Any) -> Iterator[Optimizer]:
    """Instances for each INLINE_SETTINGS entry the plugin declares (each distinct one once)."""
    declared = {p.name for p in cls.params}
    seen: list[dict[str, Any]] = []
    for setting in INLINE_SETTINGS:
        hp = {k: v for k, v in setting.items() if k in declared}
        if hp in seen or (setting and set(hp) <= {"lr"}):
            continue
        seen.append(hp)
        try:
            yield cls(**hp)
        except PluginError:
            continue


def _check_optimizer_inline(cls: Any) -> str | None:
    rule = kernels.OPTIMIZER_RULES.get(cls.inline)
    if not cls.inline:
        return None
    if rule is None:
        return f"{cls.inline!r} is not an engine fast path here; the plugin's update is used"
    code, names = rule
    problem = _quadratic()
    settings = 0
    for opt in _inline_optimizers(cls):
        missing = [n for n in names if n not in opt.hp]
        if missing:
            raise CheckFailed(f"the engine rule reads {', '.join(missing)}, not declared")
        _compare_optimizer_kernel(opt, code, names, problem)
        settings += 1
    return (
        f"{INLINE_STEPS} steps of the engine's {cls.inline!r} follow the plugin's update "
        f"in {settings} settings"
    )


def _compare_optimizer_kernel(
    opt: Optimizer, code: int, names: tuple[str, ...], problem: _Quadratic
) -> None:
    theta_p = problem.start.copy()
    theta_k = problem.start.copy()
    state_p = opt.init(theta_p)
    state_k = opt.init(theta_k)
    n = theta_k.size
    slots = np.zeros((max(3, len(opt.inline_state)), n))
    for i, name in enumerate(opt.inline_state):
        slots[i] = state_k[name]
    step = np.array(state_k["step"], dtype=np.float64)
    hp = np.array([float(opt.hp[name]) for name in names])
    update = np.zeros(n)
    no_regs = (np.zeros(0, dtype=np.int64), np.zeros(0))
    for t in range(1, INLINE_STEPS + 1):
        delta, state_p = opt.update(problem.grad(theta_p), state_p, theta_p)
        theta_p += delta
        grad = problem.grad(theta_k)
        kernels.optimizer_step(code, hp, step, slots, theta_k, grad, update, np.ones(n), *no_regs)
        _compare(
            f"step {t} with {opt.hp}: engine and plugin theta",
            theta_k,
            theta_p,
            EXACT_RTOL,
            _norm_tol(theta_p, EXACT_RTOL),
        )


# --------------------------------------------------------------------------------- layers


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
            _rng(2 + seed_offset),
        )
        self.layer, self.node, self.theta = self.single.layer, self.single.node, self.single.theta
        self.nodes = self.single.nodes
        self.state = {k: v.copy() for k, v in self.single.state.items()}
        self.x = _rng(3).normal(size=(BATCH, *self.shape))

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


def _layer_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
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
        x = _rng(6).normal(size=(batch, *rig.shape))
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
    r = _rng(4).normal(size=rig.forward(rig.x, training).shape)
    dx, grad = rig.gradients(rig.x, training, r)

    def loss_of_x(x: np.ndarray) -> float:
        return rig.objective(x, training, r)

    _compare_differences(f"{mode}: dL/dx and differences", dx, loss_of_x, rig.x)
    slots = rig.slots()
    for slot in slots:
        _compare_differences(
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
        r = _rng(4).normal(size=rig.forward(rig.x, training).shape)
        alone, _ = rig.gradients(rig.x, training, r)
        other = _rng(8).normal(size=rig.x.shape)
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
        _compare(
            f"{mode}: dL/dx with a second call in flight and alone",
            both,
            alone,
            EXACT_RTOL,
            _norm_tol(alone, EXACT_RTOL),
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
    _compare("fused and plugin outputs", y, expected, EXACT_RTOL, _norm_tol(expected, EXACT_RTOL))
    r = _rng(4).normal(size=(BATCH, n_out))
    dz, dx, grad = np.empty_like(z), np.empty_like(x), np.zeros(theta.size)
    kernels.backward_layer(
        spec, theta, flat(x), 0, flat(z), 0, flat(y), 0, flat(r), 0, flat(dz), 0, flat(dx), 0,
        n, grad, dfn, True, True,
    )  # fmt: skip
    expected_dx, expected_grad = rig.gradients(x, False, r)
    _compare(
        "fused and plugin input gradients",
        dx,
        expected_dx,
        EXACT_RTOL,
        _norm_tol(expected_dx, EXACT_RTOL),
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
        _compare(
            f"fused and plugin gradients of {name!r}",
            grad[start:stop],
            expected,
            EXACT_RTOL,
            _norm_tol(expected, EXACT_RTOL),
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


# ------------------------------------------------------------------- the remaining kinds


def _initializer_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [
        ("shape and dtype", lambda: _check_initializer_shape(cls)),
        ("deterministic with the same seed", lambda: _check_initializer_seed(cls)),
    ]


INIT_SHAPES: tuple[tuple[tuple[int, ...], int, int], ...] = (
    ((3, 4), 3, 4),
    ((7,), 7, 7),
    ((2, 3, 4), 12, 8),
)


def _check_initializer_shape(cls: Any) -> str:
    init = cls()
    for shape, fan_in, fan_out in INIT_SHAPES:
        out = np.asarray(init.sample(shape, fan_in, fan_out, _rng()))
        if out.shape != shape:
            raise CheckFailed(f"sample({shape}) returned shape {out.shape}")
        if not np.issubdtype(out.dtype, np.floating):
            raise CheckFailed(f"sample({shape}) returned dtype {out.dtype}, not a float")
        if not np.all(np.isfinite(out)):
            raise CheckFailed(f"sample({shape}) returned values that are not finite")
    return f"shapes {', '.join(str(s) for s, _, _ in INIT_SHAPES)} come back as finite floats"


def _check_initializer_seed(cls: Any) -> str:
    init = cls()
    for shape, fan_in, fan_out in INIT_SHAPES:
        first = np.asarray(init.sample(shape, fan_in, fan_out, _rng(7)))
        second = np.asarray(init.sample(shape, fan_in, fan_out, _rng(7)))
        if not np.array_equal(first, second):
            raise CheckFailed(f"two generators with the same seed gave different {shape} weights")
    return "the same seed gives the same weights"


def _regularizer_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [
        (
            "penalty gradient" if cls.stage == "loss" else "transform keeps shape",
            lambda: _check_regularizer(cls),
        ),
        ("inline agrees", lambda: _check_regularizer_inline(cls)),
    ]


def _reg_point() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """theta, a weight mask (the last third are biases) and a vector to transform."""
    rng = _rng(6)
    theta = rng.normal(size=12)
    mask = np.repeat([1.0, 0.0], [8, 4])
    return theta, mask, rng.normal(scale=3.0, size=12)


def _check_regularizer(cls: Any) -> str:
    reg = cls()
    theta, mask, vec = _reg_point()
    if reg.stage == "loss":
        grad = np.asarray(reg.penalty_grad(theta, mask))

        def penalty(t: np.ndarray) -> float:
            return float(reg.penalty(t, mask))

        worst, n = _compare_differences("penalty_grad and differences", grad, penalty, theta)
        return f"penalty_grad matches central differences of penalty at {n} points ({worst:.1e})"
    out = np.asarray(reg.transform(vec.copy(), theta, mask, 0.1))
    if out.shape != vec.shape:
        raise CheckFailed(f"transform turned shape {vec.shape} into {out.shape}")
    if not np.all(np.isfinite(out)):
        raise CheckFailed("transform returned values that are not finite")
    return f"{reg.stage}-stage transform keeps the shape {vec.shape} and stays finite"


def _check_regularizer_inline(cls: Any) -> str | None:
    reg = cls()
    if not reg.inline:
        return None
    rule = kernels.REGULARIZER_RULES.get(reg.inline)
    if rule is None:
        return f"{reg.inline!r} is not an engine fast path here; the plugin's code is used"
    code, hp_name = rule
    codes, values = np.array([code], dtype=np.int64), np.array([float(reg.hp[hp_name])])
    theta, mask, vec = _reg_point()
    if reg.stage == "loss":
        _compare_penalty_kernel(reg, codes, values, theta, mask)
    elif reg.stage == "gradient":
        for scale in (1.0, 1e-3):  # clipped and left alone
            g = np.ascontiguousarray(vec * scale)
            expected = np.asarray(reg.transform(g.copy(), theta, mask, 0.1))
            kernels.transform_gradient(codes, values, g)
            _compare(
                "engine and plugin transforms",
                g,
                expected,
                EXACT_RTOL,
                _norm_tol(expected, EXACT_RTOL),
            )
    else:
        _compare_update_kernel(reg, codes, values, theta, mask)
    return f"the engine's {reg.inline!r} gives the same numbers"


def _compare_penalty_kernel(
    reg: Regularizer, codes: Any, values: Any, theta: Any, mask: Any
) -> None:
    grad = np.zeros_like(theta)
    total = kernels.add_penalties(codes, values, theta, mask, grad)
    _compare("engine and plugin penalties", total, reg.penalty(theta, mask), EXACT_RTOL, 1e-300)
    expected = np.asarray(reg.penalty_grad(theta, mask))
    _compare(
        "engine and plugin penalty gradients",
        grad,
        expected,
        EXACT_RTOL,
        _norm_tol(expected, EXACT_RTOL),
    )


def _compare_update_kernel(
    reg: Regularizer, codes: Any, values: Any, theta: Any, mask: Any
) -> None:
    """An update-stage rule runs inside the optimizer step: plain SGD on a zero gradient."""
    lr, n = 0.1, theta.size
    update = np.zeros(n)
    hp = np.array([lr, 0.0, 0.0, 0.0, 0.0])
    kernels.optimizer_step(
        kernels.OPT_SGD,
        hp,
        np.zeros(1),
        np.zeros((3, n)),
        theta.copy(),
        np.zeros(n),
        update,
        mask,
        codes,
        values,
    )
    expected = np.asarray(reg.transform(np.zeros(n), theta, mask, lr))
    _compare(
        "engine and plugin updates", update, expected, EXACT_RTOL, _norm_tol(expected, EXACT_RTOL)
    )


def _schedule_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [("learning rates", lambda: _check_schedule(cls))]


def _check_schedule(cls: Any) -> str:
    schedule = cls()
    rates = [schedule.lr(0.1, t) for t in range(51)]
    bad = [t for t, v in enumerate(rates) if not (math.isfinite(v) and v >= 0.0)]
    if bad:
        raise CheckFailed(f"lr(0.1, {bad[0]}) = {rates[bad[0]]!r} is not a finite rate >= 0")
    if rates[0] <= 0.0:
        raise CheckFailed(f"lr(0.1, 0) = {rates[0]!r}: training would not start")
    return (
        f"lr(0.1, t) for t = 0..50 is finite and positive at the start ({min(rates):.3g} to "
        f"{max(rates):.3g})"
    )


def _dataset_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [("generates data", lambda: _check_dataset(cls))]


def _small_dataset(cls: Any, folder: Path) -> Any:
    """An instance with n = 50 where the set has ``n``; a small CSV where it reads a file."""
    declared = {p.name: p for p in cls.params}
    hp: dict[str, Any] = {}
    if "n" in declared:
        hp["n"] = 50
    path = declared.get("path")
    if path is not None and path.type == "str" and not path.default:
        hp["path"] = str(_sample_csv(folder / "sample.csv"))
    try:
        return cls(**hp)
    except PluginError:
        return cls()


def _sample_csv(path: Path) -> Path:
    rng = _rng(8)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x1", "x2", "label"])
        for i in range(30):
            writer.writerow([f"{rng.normal():.6f}", f"{rng.normal():.6f}", i % 2])
    return path


def _check_dataset(cls: Any) -> str:
    with tempfile.TemporaryDirectory() as folder:
        data = _small_dataset(cls, Path(folder))
        x, y = data.generate(_rng(9))
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise CheckFailed(f"X has {len(x)} samples and y {len(y)}")
    if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x)):
        raise CheckFailed(f"X must hold finite floats (dtype {x.dtype})")
    if data.task == "classification":
        k = data.n_classes()
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k:
            raise CheckFailed(f"labels must be whole numbers in [0, {k}), got {y.min()}..{y.max()}")
        return f"{len(x)} samples of shape {x.shape[1:]}, labels in [0, {k})"
    if not np.all(np.isfinite(y.astype(np.float64))):
        raise CheckFailed("regression targets must be finite")
    return f"{len(x)} samples of shape {x.shape[1:]}, targets of shape {y.shape[1:]}"


def _metric_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [("computes", lambda: _check_metric(cls))]


def _metric_examples(task: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Tiny (y_true, y_pred, scores) examples: binary and three classes, or regression."""
    if task == "regression":
        t = np.array([[0.5], [1.0], [-0.3], [2.0], [0.0]])
        return [(t, t + np.array([[0.1], [-0.2], [0.05], [0.3], [-0.1]]), None)]
    binary_true = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    binary_pred = np.array([0, 1, 0, 0, 1, 1, 1, 0])
    binary_scores = np.array([0.2, 0.8, 0.4, 0.3, 0.9, 0.6, 0.7, 0.45])[:, None]
    three_true = np.array([0, 1, 2, 2, 1, 0])
    three_pred = np.array([0, 2, 2, 1, 1, 0])
    three_scores = np.eye(3)[three_pred] * 0.6 + 0.1 * _rng(10).random((6, 3))
    return [(binary_true, binary_pred, binary_scores), (three_true, three_pred, three_scores)]


def _check_metric(cls: Any) -> str:
    metric = cls()
    for y_true, y_pred, scores in _metric_examples(metric.task):
        value = metric.compute(y_true, y_pred, scores)
        if metric.scalar:
            if not isinstance(value, (float, int, np.floating, np.integer)) or not math.isfinite(
                float(value)
            ):
                raise CheckFailed(f"compute returned {value!r}, expected a finite number")
        elif not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
            raise CheckFailed("compute returned an array that is not finite")
    return f"compute gives a finite {'number' if metric.scalar else 'array'} on tiny examples"


def _architecture_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
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
        _rng(9),
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
        cls(), model, groups, loss, _rng(10), registry.create, [], 1, np.zeros_like(model.theta)
    )
    x = _rng(11).normal(size=(8, *ARCHITECTURE_INPUT))
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


def _objective_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [
        ("value finite at start", lambda: _check_objective_start(cls)),
        ("gradient vs finite differences", lambda: _check_objective_gradient(cls)),
        ("Hessian vs finite differences", lambda: _check_objective_hessian(cls)),
        ("Hessian symmetric", lambda: _check_objective_symmetry(cls)),
    ]


OBJECTIVE_POINTS = 20  # seeded points inside the declared bounds


def _objective_points(objective: Any) -> np.ndarray:
    (x0, x1), (y0, y1) = objective.bounds
    rng = _rng(11)
    return np.column_stack(
        [rng.uniform(x0, x1, OBJECTIVE_POINTS), rng.uniform(y0, y1, OBJECTIVE_POINTS)]
    )


def _check_objective_start(cls: Any) -> str:
    objective = cls()
    value = float(objective.value(*map(float, objective.start)))
    if not math.isfinite(value):
        raise CheckFailed(f"value at the start {tuple(objective.start)} is {value!r}")
    return f"value {value:.6g} at the start {tuple(objective.start)}"


def _check_objective_gradient(cls: Any) -> str:
    objective = cls()
    worst = 0.0
    for p in _objective_points(objective):
        analytic = np.asarray(objective.gradient(float(p[0]), float(p[1])), dtype=np.float64)
        error, _ = _compare_differences(
            f"gradient at {tuple(np.round(p, 4))}",
            analytic,
            lambda q: float(objective.value(float(q[0]), float(q[1]))),
            p,
        )
        worst = max(worst, error)
    return (
        f"gradient matches central differences of value at {OBJECTIVE_POINTS} points "
        f"(worst error {worst:.1e})"
    )


def _check_objective_hessian(cls: Any) -> str:
    objective = cls()
    worst = 0.0
    for p in _objective_points(objective):
        hessian = np.asarray(objective.hessian(float(p[0]), float(p[1])), dtype=np.float64)
        if hessian.shape != (2, 2):
            raise CheckFailed(f"hessian returned shape {hessian.shape}, expected (2, 2)")
        for i in range(2):
            error, _ = _compare_differences(
                f"Hessian row {i} at {tuple(np.round(p, 4))}",
                hessian[i],
                _gradient_component(objective, i),
                p,
            )
            worst = max(worst, error)
    return (
        f"Hessian matches central differences of the gradient at {OBJECTIVE_POINTS} points "
        f"(worst error {worst:.1e})"
    )


def _gradient_component(objective: Any, i: int) -> Callable[[np.ndarray], float]:
    return lambda q: float(objective.gradient(float(q[0]), float(q[1]))[i])


def _check_objective_symmetry(cls: Any) -> str:
    objective = cls()
    for p in _objective_points(objective):
        hessian = np.asarray(objective.hessian(float(p[0]), float(p[1])), dtype=np.float64)
        _compare(
            f"Hessian at {tuple(np.round(p, 4))} and its transpose",
            hessian,
            hessian.T,
            EXACT_RTOL,
            _norm_tol(hessian, EXACT_RTOL),
        )
    return f"Hessian symmetric at {OBJECTIVE_POINTS} points"


KIND_CHECKS: dict[str, Callable[[Any, Registry], list[tuple[str, Check]]]] = {
    "activation": _activation_checks,
    "loss": _loss_checks,
    "optimizer": _optimizer_checks,
    "layer": _layer_checks,
    "initializer": _initializer_checks,
    "regularizer": _regularizer_checks,
    "lr_schedule": _schedule_checks,
    "dataset": _dataset_checks,
    "metric": _metric_checks,
    "architecture": _architecture_checks,
    "objective": _objective_checks,
}
