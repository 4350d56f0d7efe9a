"""Theory instruments: the neural tangent kernel, optimizer races on 2D objectives, and
universal approximation with sigmoid units.

- **Empirical NTK**: Θ = J Jᵀ, J the Jacobian of the network's outputs on a set of inputs with
  respect to all parameters. Θ decides how gradient descent moves the outputs; in the NTK
  parameterization it changes less and less during training as the width grows.
- **Optimizer race**: every optimizer plugin from the same start on an ``objective`` plugin, with
  trajectories, values, steps to a tolerance and measured convergence rates (which match the
  closed forms on quadratics).
- **Universal approximation**: one hidden layer of sigmoid units fitted to a 1D target, and the
  hand-built construction from pairs of steep sigmoids ('bumps') with its error bound.
- **For the theory labs' windows**: the race's contour map (``objective_grid``,
  ``contour_levels``, ``contour_bands``), the closed-form rates of SGD and heavy-ball momentum on
  a quadratic (``quadratic_theory``, ``quadratic_rate``, ``sgd_theory_rate``), and a sigmoid
  network with any weights, typed in by hand (``sigmoid_network``, ``unit_contributions``,
  ``with_weights``).

Every instrument returns plain arrays; ``save_npz`` writes them (keys in each docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradient_lab.engine.compute.array_math import sigmoid
from gradient_lab.engine.files import atomic_save_npz as save_npz
from gradient_lab.engine.model import Model
from gradient_lab.engine.plugin_api import Objective, Optimizer, OptimizerContext
from gradient_lab.engine.training.evaluation import eval_data

__all__ = [
    "TARGETS",
    "ApproximationResult",
    "BumpResult",
    "NTKTracker",
    "QuadraticTheory",
    "RaceResult",
    "approximation_sweep",
    "bump_construction",
    "contour_bands",
    "contour_levels",
    "convergence_rate",
    "empirical_ntk",
    "fit_sigmoid_units",
    "hessian_eigenvalues",
    "jacobian",
    "ntk_change",
    "ntk_eigenvalues",
    "ntk_width_experiment",
    "objective_grid",
    "quadratic_rate",
    "quadratic_theory",
    "race",
    "race_arrays",
    "run_optimizer",
    "save_npz",
    "sgd_theory_rate",
    "sigmoid_network",
    "unit_contributions",
    "with_weights",
]

MAX_JACOBIAN_ENTRIES = 200_000_000  # 1.6 GB in float64: beyond this, ask for fewer inputs


def _registry(registry: Any) -> Any:
    if registry is None:
        from gradient_lab.engine.loading.discovery import default_registry

        return default_registry()
    return registry


# ------------------------------------------------------------------------ neural tangent kernel


def _model_of(source: Any) -> Model:
    """A session's model, or the model itself."""
    model = getattr(source, "model", source)
    if not isinstance(model, Model):
        raise TypeError(f"expected a Session or a Model, got {type(source).__name__}")
    return model


def jacobian(source: Any, x: np.ndarray) -> np.ndarray:
    """d outputs / d theta in evaluation mode: one row per (sample, output), sample-major, one
    column per parameter. The model's parameters and gradient buffer are left as they were."""
    model = _model_of(source)
    x = np.ascontiguousarray(x, dtype=model.dtype)
    outputs = int(np.prod(model.output_shape))
    rows = len(x) * outputs
    if rows * model.n_params > MAX_JACOBIAN_ENTRIES:
        raise ValueError(
            f"the Jacobian would have {rows} x {model.n_params} entries; use fewer inputs "
            f"(at most {MAX_JACOBIAN_ENTRIES // max(1, model.n_params * outputs)})"
        )
    return model.output_jacobian(x)


def empirical_ntk(source: Any, x: np.ndarray) -> np.ndarray:
    """Θ = J Jᵀ on the inputs ``x`` (n·outputs square, sample-major): symmetric and positive
    semi-definite by construction (symmetrized exactly against rounding)."""
    jac = jacobian(source, x)
    theta = jac @ jac.T
    return 0.5 * (theta + theta.T)


def ntk_eigenvalues(ntk: np.ndarray) -> np.ndarray:
    """Eigenvalues of a kernel matrix, largest first."""
    return np.linalg.eigvalsh(ntk)[::-1].copy()


def ntk_change(ntk_0: np.ndarray, ntk_t: np.ndarray) -> float:
    """‖Θ_t − Θ_0‖_F / ‖Θ_0‖_F: how far the kernel has moved from where it started."""
    return float(np.linalg.norm(ntk_t - ntk_0) / np.linalg.norm(ntk_0))


class NTKTracker:
    """The relative change of the empirical NTK on inputs ``x`` along a session's training.

    ``NTKTracker(session, x, every=100)`` takes Θ_0 now and attaches itself with
    ``session.add_recorder``; without ``x`` it uses a seeded subsample of ``n_inputs`` training
    inputs (all of them if there are fewer). ``arrays()`` keys: ``steps`` (R,),
    ``relative_change`` (R,), ``eigenvalues`` (R, n·outputs, largest first), ``ntk_initial`` and
    ``ntk_last`` (n·outputs square), ``initial_eigenvalues``, ``x``.
    """

    def __init__(
        self,
        session: Any,
        x: np.ndarray | None = None,
        every: int = 100,
        n_inputs: int = 32,
        attach: bool = True,
    ) -> None:
        self.session = session
        if x is None:
            x = eval_data(session, subsample=n_inputs, seed=0).x
        self.x = np.array(x, dtype=np.float64)
        self.ntk_initial = empirical_ntk(session, self.x)
        self.ntk_last = self.ntk_initial
        self.steps: list[int] = []
        self.changes: list[float] = []
        self.eigenvalues: list[np.ndarray] = []
        if attach:
            session.add_recorder(every, self)

    def __call__(self, session: Any) -> None:
        self.record(session.step)

    def record(self, step: int) -> None:
        while self.steps and self.steps[-1] >= step:  # the session was rewound
            self.steps.pop()
            self.changes.pop()
            self.eigenvalues.pop()
        self.ntk_last = empirical_ntk(self.session, self.x)
        self.steps.append(step)
        self.changes.append(ntk_change(self.ntk_initial, self.ntk_last))
        self.eigenvalues.append(ntk_eigenvalues(self.ntk_last))

    def arrays(self) -> dict[str, np.ndarray]:
        size = len(self.ntk_initial)
        return {
            "steps": np.array(self.steps, dtype=np.int64),
            "relative_change": np.array(self.changes),
            "eigenvalues": np.array(self.eigenvalues).reshape(-1, size),
            "ntk_initial": self.ntk_initial,
            "ntk_last": self.ntk_last,
            "initial_eigenvalues": ntk_eigenvalues(self.ntk_initial),
            "x": self.x,
        }


def _width_data(n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Evenly spaced inputs in [-1, 1] and the target sin(πx)."""
    x = np.linspace(-1.0, 1.0, n_points).reshape(-1, 1)
    return x, np.sin(np.pi * x)


def _mlp(
    registry: Any, n_in: int, width: int, activation: str, parameterization: str, seed: int
) -> Model:
    arch = registry.create(
        "architecture",
        "mlp",
        depth=1,
        width=width,
        activation=activation,
        parameterization=parameterization,
    )
    init = registry.create("initializer", "he_normal")  # for "standard" only
    rng = np.random.default_rng(seed)
    return Model(arch.layers((n_in,), 1, "linear"), (n_in,), registry.create, init, rng)


def _train_full_batch(
    model: Model, loss: Any, optimizer: Optimizer, x: np.ndarray, t: np.ndarray, steps: int
) -> float:
    """Full-batch training with plugins only (no session: this is a small, fixed experiment)."""
    state = optimizer.init(model.theta)
    value = math.nan
    for _ in range(steps):
        pred, calls = model.trace(x, training=True)
        value = float(loss.value(pred, t))
        model.backward(calls, loss.grad(pred, t))
        update, state = optimizer.update(model.grad, state, model.theta)
        model.theta += update
    return value


def ntk_width_experiment(
    widths: Sequence[int] = (64, 256, 1024, 4096, 16384),
    steps: int = 2000,
    lr: float = 1.0,
    n_points: int = 20,
    activation: str = "relu",
    parameterization: str = "ntk",
    seeds: int = 1,
    registry: Any = None,
) -> dict[str, np.ndarray]:
    """How much the NTK moves during training, as a function of width.

    One hidden layer (``mlp`` with ``parameterization``), n_points inputs evenly spaced in
    [-1, 1], target sin(πx), MSE, full-batch gradient descent (``sgd``) with ``lr`` for ``steps``
    steps; Θ on the training inputs before and after. In the NTK parameterization the relative
    change falls as the width grows (about as 1/√width for large widths).

    Keys: ``widths`` (W,), ``relative_change`` (W,) (mean over seeds), ``relative_change_runs``
    (seeds, W), ``final_loss`` (seeds, W), ``initial_eigenvalues`` (seeds, W, n_points), ``x``,
    ``targets``, and the settings ``steps``, ``lr``, ``activation``, ``parameterization``.
    """
    reg = _registry(registry)
    x, t = _width_data(n_points)
    loss = reg.create("loss", "mse")
    changes = np.zeros((seeds, len(widths)))
    final = np.zeros((seeds, len(widths)))
    eigen = np.zeros((seeds, len(widths), n_points))
    for s in range(seeds):
        for w, width in enumerate(widths):
            model = _mlp(reg, 1, int(width), activation, parameterization, seed=s)
            ntk_0 = empirical_ntk(model, x)
            optimizer = reg.create("optimizer", "sgd", lr=float(lr))
            final[s, w] = _train_full_batch(model, loss, optimizer, x, t, steps)
            changes[s, w] = ntk_change(ntk_0, empirical_ntk(model, x))
            eigen[s, w] = ntk_eigenvalues(ntk_0)
    return {
        "widths": np.array(widths, dtype=np.int64),
        "relative_change": changes.mean(axis=0),
        "relative_change_runs": changes,
        "final_loss": final,
        "initial_eigenvalues": eigen,
        "x": x,
        "targets": t,
        "steps": np.array(steps),
        "lr": np.array(float(lr)),
        "activation": np.array(activation),
        "parameterization": np.array(parameterization),
    }


# ---------------------------------------------------------------------------- optimizer race


@dataclass
class RaceResult:
    """One optimizer's run on an objective. After a divergence (a non-finite or huge value) the
    trajectory and values are NaN; ``skipped`` says why an optimizer could not run at all."""

    label: str
    trajectory: np.ndarray  # (steps + 1, 2)
    values: np.ndarray  # (steps + 1,)
    steps_to_tolerance: int | None = None
    diverged_at: int | None = None
    skipped: str = ""
    hp: dict[str, Any] = field(default_factory=dict)


DIVERGED = 1e100  # |value| or |coordinate| beyond this counts as diverged


class _ObjectiveContext(OptimizerContext):
    """Residuals and their Jacobian for optimizers that ask (Levenberg-Marquardt): available
    when the objective is a sum of squares (``residuals`` and ``residual_jacobian``)."""

    def __init__(self, objective: Objective) -> None:
        self.objective: Any = objective

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(self.objective.residuals(float(theta[0]), float(theta[1])))

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(self.objective.residual_jacobian(float(theta[0]), float(theta[1])))

    def loss(self, theta: np.ndarray) -> float:
        return float(self.objective.value(float(theta[0]), float(theta[1])))


def _distance_to_minima(points: np.ndarray, minima: Sequence[Sequence[float]]) -> np.ndarray:
    """Distance of each point to the nearest known minimum (inf when there is none)."""
    if not minima:
        return np.full(len(points), np.inf)
    m = np.asarray(minima, dtype=np.float64)
    return np.min(np.linalg.norm(points[:, None, :] - m[None, :, :], axis=2), axis=1)


def run_optimizer(
    objective: Objective,
    optimizer: Optimizer,
    start: Sequence[float] | None = None,
    steps: int = 500,
    tol: float = 1e-6,
    label: str = "",
) -> RaceResult:
    """Run one optimizer plugin on an objective: theta += update(gradient) for ``steps`` steps.
    ``steps_to_tolerance`` is the first step within ``tol`` of a known minimum."""
    label = label or optimizer.name
    trajectory = np.full((steps + 1, 2), np.nan)
    values = np.full(steps + 1, np.nan)
    result = RaceResult(label, trajectory, values, hp=dict(optimizer.hp))
    ctx: OptimizerContext | None = None
    if optimizer.needs_context:
        if not hasattr(objective, "residuals"):
            result.skipped = (
                f"{optimizer.name} needs a sum-of-squares objective; {objective.name} has no "
                "residual form"
            )
            return result
        ctx = _ObjectiveContext(objective)
    theta = np.array(objective.start if start is None else start, dtype=np.float64)
    state = optimizer.init(theta)
    for step in range(steps + 1):
        value = float(objective.value(float(theta[0]), float(theta[1])))
        if not (
            math.isfinite(value) and abs(value) < DIVERGED and np.all(np.abs(theta) < DIVERGED)
        ):
            result.diverged_at = step
            break
        trajectory[step], values[step] = theta, value
        if step == steps:
            break
        grad = np.array(objective.gradient(float(theta[0]), float(theta[1])), dtype=np.float64)
        update, state = optimizer.update(grad, state, theta, ctx)
        theta = theta + update
    distances = _distance_to_minima(trajectory, objective.minima)
    hits = np.nonzero(distances < tol)[0]
    result.steps_to_tolerance = int(hits[0]) if len(hits) else None
    return result


OptimizerSpec = str | tuple[str, Mapping[str, Any]] | Optimizer


def _optimizer(spec: OptimizerSpec, registry: Any, lr: float | None) -> Optimizer:
    if isinstance(spec, Optimizer):
        return spec
    name, hp = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1]))
    if (
        lr is not None
        and "lr" not in hp
        and any(p.name == "lr" for p in registry.get("optimizer", name).params)
    ):
        hp["lr"] = lr
    return registry.create("optimizer", name, **hp)


def race(
    objective: Objective | str,
    optimizers: Sequence[OptimizerSpec] | None = None,
    start: Sequence[float] | None = None,
    steps: int = 500,
    tol: float = 1e-6,
    lr: float | None = None,
    registry: Any = None,
) -> list[RaceResult]:
    """Every optimizer (default: every registered one, at its default hyperparameters) from the
    same start on the objective (a plugin instance or a registered name). ``lr`` sets the
    learning rate of every optimizer that has one and was not given one explicitly."""
    reg = _registry(registry)
    if isinstance(objective, str):
        objective = reg.create("objective", objective)
    assert isinstance(objective, Objective)
    specs: Sequence[OptimizerSpec] = reg.names("optimizer") if optimizers is None else optimizers
    results: list[RaceResult] = []
    seen: dict[str, int] = {}
    for spec in specs:
        optimizer = _optimizer(spec, reg, lr)
        seen[optimizer.name] = seen.get(optimizer.name, 0) + 1
        count = seen[optimizer.name]
        label = optimizer.name if count == 1 else f"{optimizer.name}_{count}"
        results.append(run_optimizer(objective, optimizer, start, steps, tol, label))
    return results


def race_arrays(
    objective: Objective, results: Sequence[RaceResult], tol: float | None = None
) -> dict[str, np.ndarray]:
    """A race as arrays for ``save_npz``. Keys: ``objective`` (name), ``start`` (2,) (the first
    trajectory point), ``minima`` (M, 2), ``bounds`` (2, 2), ``optimizers`` (K,) labels,
    ``trajectories`` (K, steps + 1, 2) and ``values`` (K, steps + 1) (NaN after a divergence or
    when skipped), ``steps_to_tolerance`` and ``diverged_at`` (K,) (-1: never), ``skipped``
    (K,) reasons ("" when it ran), ``rates`` (K,) measured convergence rates to the nearest
    minimum (NaN without one), and ``tolerance``."""
    minima = np.asarray(objective.minima, dtype=np.float64).reshape(-1, 2)
    starts = [r.trajectory[0] for r in results if np.all(np.isfinite(r.trajectory[0]))]
    rates = []
    for r in results:
        if len(minima) and not r.skipped:
            last = _last_finite(r.trajectory)
            nearest = minima[np.argmin(np.linalg.norm(minima - last, axis=1))]
            rates.append(convergence_rate(r.trajectory, nearest))
        else:
            rates.append(math.nan)
    return {
        "objective": np.array(objective.name),
        "start": starts[0] if starts else np.array(objective.start, dtype=np.float64),
        "minima": minima,
        "bounds": np.asarray(objective.bounds, dtype=np.float64),
        "optimizers": np.array([r.label for r in results], dtype=str),
        "trajectories": np.array([r.trajectory for r in results]),
        "values": np.array([r.values for r in results]),
        "steps_to_tolerance": np.array(
            [-1 if r.steps_to_tolerance is None else r.steps_to_tolerance for r in results]
        ),
        "diverged_at": np.array([-1 if r.diverged_at is None else r.diverged_at for r in results]),
        "skipped": np.array([r.skipped for r in results], dtype=str),
        "rates": np.array(rates),
        "tolerance": np.array(math.nan if tol is None else float(tol)),
    }


def _last_finite(trajectory: np.ndarray) -> np.ndarray:
    finite = np.nonzero(np.all(np.isfinite(trajectory), axis=1))[0]
    return trajectory[finite[-1]] if len(finite) else np.zeros(2)


def convergence_rate(
    trajectory: np.ndarray,
    minimum: Sequence[float],
    start: int | None = None,
    floor: float = 1e-12,
) -> float:
    """The per-step contraction of the distance to ``minimum``: (d_last / d_first)^(1/(last -
    first)), over the steps from ``start`` (default: half-way) to the last one whose distance is
    finite and above ``floor`` times the initial distance (rounding takes over below). Above 1 the
    run diverges."""
    d = np.linalg.norm(np.asarray(trajectory, dtype=np.float64) - np.asarray(minimum), axis=1)
    if not len(d) or not d[0] > 0.0:
        return math.nan
    usable = np.nonzero(~(np.isfinite(d) & (d > floor * d[0])))[0]
    last = (int(usable[0]) if len(usable) else len(d)) - 1
    first = last // 2 if start is None else int(start)
    if last - first < 1 or d[first] <= 0.0:
        return math.nan
    return float((d[last] / d[first]) ** (1.0 / (last - first)))


# ------------------------------------------------------- the race's map and its theory's rates


def objective_grid(
    objective: Objective,
    bounds: Sequence[Sequence[float]] | None = None,
    n: int = 101,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The objective over a grid, for a contour map: ``x`` (n,), ``y`` (n,) evenly spaced over
    ``bounds`` ((xmin, xmax), (ymin, ymax); default the objective's own) and ``values[j, i]`` =
    f(x_i, y_j) (rows follow y, as in the loss landscape)."""
    if n < 2:
        raise ValueError(f"n = {n} is not allowed: expected at least 2 points per axis")
    (x0, x1), (y0, y1) = objective.bounds if bounds is None else bounds
    x = np.linspace(float(x0), float(x1), n)
    y = np.linspace(float(y0), float(y1), n)
    values = np.array([[float(objective.value(float(a), float(b))) for a in x] for b in y])
    return x, y, values


def contour_levels(values: np.ndarray, count: int = 15, geometric: bool = True) -> np.ndarray:
    """``count`` increasing contour levels for a map of ``values``. Geometric (default): the
    heights above the lowest value grow by a constant factor from 1/1000 of the range to all of
    it, so a deep narrow valley (Rosenbrock) shows rings near its floor as well as on its
    walls; otherwise evenly spaced strictly inside the range (a saddle, unbounded below)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if count < 1 or not len(finite):
        return np.zeros(0)
    low, high = float(finite.min()), float(finite.max())
    if not high > low:
        return np.zeros(0)
    if geometric:
        return low + (high - low) * np.geomspace(1e-3, 1.0, count)
    return np.linspace(low, high, count + 2)[1:-1]


def contour_bands(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """For a filled contour map: how many of the (increasing) ``levels`` lie strictly below each
    value (0 to len(levels)); NaN stays NaN."""
    values = np.asarray(values, dtype=np.float64)
    bands = np.searchsorted(np.asarray(levels, dtype=np.float64), values, side="left")
    return np.where(np.isfinite(values), bands, np.nan)


def hessian_eigenvalues(objective: Objective, point: Sequence[float] | None = None) -> np.ndarray:
    """The curvatures of the objective at ``point`` (default: its first known minimum),
    ascending: on a quadratic they are the same everywhere and decide every linear rate."""
    if point is None:
        if not objective.minima:
            raise ValueError(f"{objective.name} has no known minimum: give a point")
        point = objective.minima[0]
    h = np.asarray(objective.hessian(float(point[0]), float(point[1])), dtype=np.float64)
    return np.linalg.eigvalsh(0.5 * (h + h.T))


@dataclass(frozen=True)
class QuadraticTheory:
    """The best rates on a quadratic with curvatures λmin..λmax (κ = λmax/λmin): gradient
    descent at step 2/(λmin + λmax) contracts by (κ-1)/(κ+1) per step; Polyak's heavy ball at
    step 4/(√λmax + √λmin)² and momentum ((√κ-1)/(√κ+1))² by (√κ-1)/(√κ+1)."""

    eigenvalues: np.ndarray
    condition_number: float
    gd_lr: float
    gd_rate: float
    momentum_lr: float
    momentum: float
    momentum_rate: float


def quadratic_theory(eigenvalues: Sequence[float] | np.ndarray) -> QuadraticTheory:
    """The closed-form optimal settings and rates for these (positive) curvatures."""
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())
    if not len(lam) or not lam[0] > 0.0:
        raise ValueError("the rates need positive curvatures (a minimum, not a saddle)")
    low, high = float(lam[0]), float(lam[-1])
    kappa = high / low
    root = math.sqrt(kappa)
    momentum_rate = (root - 1.0) / (root + 1.0)
    return QuadraticTheory(
        eigenvalues=lam,
        condition_number=kappa,
        gd_lr=2.0 / (low + high),
        gd_rate=(kappa - 1.0) / (kappa + 1.0),
        momentum_lr=4.0 / (math.sqrt(high) + math.sqrt(low)) ** 2,
        momentum=momentum_rate**2,
        momentum_rate=momentum_rate,
    )


def _spectral_radius(trace: float, det: float) -> float:
    """The largest |z| with z² - trace·z + det = 0."""
    disc = trace * trace - 4.0 * det
    if disc < 0.0:
        return math.sqrt(det)  # a complex pair: |z|² = det
    root = math.sqrt(disc)
    return max(abs(trace + root), abs(trace - root)) / 2.0


def quadratic_rate(
    eigenvalues: Sequence[float] | np.ndarray,
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    dampening: float = 0.0,
) -> float:
    """The asymptotic per-step contraction of SGD with momentum (PyTorch's form) on a quadratic
    with these curvatures: the largest spectral radius over λ of the step's 2×2 iteration
    matrix. Heavy ball (θ' = θ - αλθ + β(θ - θ_prev), α = lr·(1 - dampening), β = momentum):
    z² - (1 + β - αλ) z + β = 0; Nesterov: z² - (1 + β)(1 - αλ) z + β(1 - αλ) = 0. With
    momentum 0 both are max |1 - lr·λ|. Above 1 the run diverges."""
    beta = float(momentum)
    alpha = float(lr) * (1.0 - float(dampening))
    rates = []
    for lam in np.asarray(eigenvalues, dtype=np.float64).ravel():
        if nesterov:
            shrink = 1.0 - alpha * lam
            rates.append(_spectral_radius((1.0 + beta) * shrink, beta * shrink))
        else:
            rates.append(_spectral_radius(1.0 + beta - alpha * lam, beta))
    return float(max(rates)) if rates else math.nan


SGD_FAMILY = frozenset({"lr", "momentum", "dampening", "nesterov"})


def sgd_theory_rate(hp: Mapping[str, Any], eigenvalues: Sequence[float] | np.ndarray) -> float:
    """``quadratic_rate`` for an optimizer's hyperparameters when they are SGD's (lr, momentum,
    dampening, nesterov, and weight decay, which adds to every curvature); NaN for any other
    optimizer, for which there is no closed form here."""
    if not SGD_FAMILY.issubset(hp):
        return math.nan
    lam = np.asarray(eigenvalues, dtype=np.float64) + float(hp.get("weight_decay", 0.0))
    return quadratic_rate(
        lam, float(hp["lr"]), float(hp["momentum"]), bool(hp["nesterov"]), float(hp["dampening"])
    )


# ---------------------------------------------------------------------- universal approximation

TARGETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sine": lambda x: np.sin(2.0 * np.pi * x),
    "gaussian": lambda x: np.exp(-((x - 0.5) ** 2) / (2.0 * 0.1**2)),
    "absolute": lambda x: np.abs(2.0 * x - 1.0),
    "step_smooth": lambda x: np.tanh(20.0 * (x - 0.5)),
}


@dataclass
class ApproximationResult:
    """One hidden layer of sigmoid units: ŷ = Σ_k a_k σ(w_k x + b_k) + c, on the grid ``x``."""

    hidden_weights: np.ndarray  # w_k
    hidden_biases: np.ndarray  # b_k
    output_weights: np.ndarray  # a_k
    output_bias: float  # c
    x: np.ndarray
    target: np.ndarray
    prediction: np.ndarray

    @property
    def max_error(self) -> float:
        return float(np.max(np.abs(self.prediction - self.target)))

    @property
    def rms_error(self) -> float:
        return float(np.sqrt(np.mean((self.prediction - self.target) ** 2)))


def _grid(interval: tuple[float, float], points: int) -> np.ndarray:
    a, b = interval
    if not b > a:
        raise ValueError(f"interval = {interval!r}: expected (a, b) with a < b")
    return np.linspace(a, b, points)


def fit_sigmoid_units(
    target_fn: Callable[[np.ndarray], np.ndarray],
    n_units: int,
    x: np.ndarray | None = None,
    interval: tuple[float, float] = (0.0, 1.0),
    seed: int | None = None,
    steepness: float = 4.0,
) -> ApproximationResult:
    """Fit one hidden layer of ``n_units`` sigmoid units to a 1D target by least squares on the
    output weights (a convex problem: deterministic and fast).

    Unit k is σ(s (x - c_k)) with s = steepness·n/(b - a): its transition is about as wide as
    the spacing of the centres c_k, which are the midpoints of n equal cells (``seed`` None) or
    drawn uniformly from the interval with ``seed``. The fit is on the grid ``x`` (default: 401
    points in the interval)."""
    if n_units < 1:
        raise ValueError(f"n_units = {n_units} is not allowed: expected at least 1")
    a, b = interval
    grid = _grid(interval, 401) if x is None else np.asarray(x, dtype=np.float64).ravel()
    h = (b - a) / n_units
    if seed is None:
        centres = a + h * (np.arange(n_units) + 0.5)
    else:
        centres = np.sort(np.random.default_rng(seed).uniform(a, b, n_units))
    slope = steepness / h
    w = np.full(n_units, slope)
    bias = -slope * centres
    features = np.column_stack([sigmoid(np.outer(grid, w) + bias), np.ones_like(grid)])
    target = np.asarray(target_fn(grid), dtype=np.float64)
    coef, *_ = np.linalg.lstsq(features, target, rcond=None)
    return ApproximationResult(w, bias, coef[:-1], float(coef[-1]), grid, target, features @ coef)


@dataclass
class BumpResult(ApproximationResult):
    """The bump construction; ``error_bound`` is the guaranteed maximum error (see
    ``bump_construction``)."""

    error_bound: float = math.nan
    edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    heights: np.ndarray = field(default_factory=lambda: np.zeros(0))


def bump_construction(
    target_fn: Callable[[np.ndarray], np.ndarray],
    n_bumps: int,
    steepness: float = 20.0,
    interval: tuple[float, float] = (0.0, 1.0),
    points: int = 2001,
) -> BumpResult:
    """Build, not train: split [a, b] into n cells of width h; cell k gets the bump
    σ(s(x - e_k)) - σ(s(x - e_{k+1})) (two hidden units with weight s = steepness/h, an up-step at
    its left edge and a down-step at its right one), scaled by the target at the cell's centre
    m_k. The outer edges sit one cell beyond the interval so the bumps cover it fully.

    Error bound, with M1 = max|f'| and M0 = max|f| on the interval and K = steepness:
    |ŷ - f| <= M1·h·(1/2 + 0.279·2/K + 2·Σ_{m>=1} (m + 3/2) e^{-mK}) + 2·M0·σ(-K).
    (The bumps are non-negative and sum to at most 1; inside cell k the weight of a neighbour
    whose edge is at distance d is <= σ(-K d/h), and max_d d·σ(-s d) = 0.279/s.) M1 and M0 are
    measured on a grid ten times finer than the evaluation grid."""
    if n_bumps < 1:
        raise ValueError(f"n_bumps = {n_bumps} is not allowed: expected at least 1")
    a, b = interval
    grid = _grid(interval, points)
    h = (b - a) / n_bumps
    edges = a + h * np.arange(n_bumps + 1)
    edges[0], edges[-1] = a - h, b + h
    centres = a + h * (np.arange(n_bumps) + 0.5)
    heights = np.asarray(target_fn(centres), dtype=np.float64)
    slope = steepness / h
    w = np.full(2 * n_bumps, slope)
    bias = -slope * np.repeat(edges, 2)[1:-1]  # unit pairs: (left edge, right edge) per cell
    out = np.repeat(heights, 2) * np.tile([1.0, -1.0], n_bumps)
    prediction = sigmoid(np.outer(grid, w) + bias) @ out
    target = np.asarray(target_fn(grid), dtype=np.float64)
    return BumpResult(
        w,
        bias,
        out,
        0.0,
        grid,
        target,
        prediction,
        error_bound=_bump_bound(target_fn, interval, h, steepness, 10 * points),
        edges=edges,
        heights=heights,
    )


def _bump_bound(
    target_fn: Callable[[np.ndarray], np.ndarray],
    interval: tuple[float, float],
    h: float,
    steepness: float,
    points: int,
) -> float:
    fine = _grid(interval, points)
    values = np.asarray(target_fn(fine), dtype=np.float64)
    m0 = float(np.max(np.abs(values)))
    m1 = float(np.max(np.abs(np.diff(values) / np.diff(fine))))
    k = steepness
    tail = 2.0 * sum((m + 1.5) * math.exp(-m * k) for m in range(1, 200))
    leak = 1.0 / (1.0 + math.exp(k))
    return m1 * h * (0.5 + 2.0 * 0.279 / k + tail) + 2.0 * m0 * leak


def approximation_sweep(
    target: str = "sine",
    n_units: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
    n_bumps: Sequence[int] = (4, 8, 16, 32, 64, 128),
    interval: tuple[float, float] = (0.0, 1.0),
    steepness: float = 20.0,
) -> dict[str, np.ndarray]:
    """Universal approximation for a named target (``TARGETS``), as arrays for ``save_npz``.

    Keys: ``x``, ``target``; ``n_units``, ``fit_max_error``, ``fit_rms_error`` (least-squares
    fits, one per n), ``fit_prediction`` (N, len(x)); ``n_bumps``, ``bump_max_error``,
    ``bump_error_bound``, ``bump_prediction`` (B, len(x)); the largest bump construction's
    ``bump_hidden_weights``, ``bump_hidden_biases``, ``bump_output_weights``; ``steepness``,
    ``target_name``."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; available: {', '.join(TARGETS)}")
    fn = TARGETS[target]
    fits = [fit_sigmoid_units(fn, n, interval=interval) for n in n_units]
    bumps = [bump_construction(fn, n, steepness, interval) for n in n_bumps]
    grid = fits[0].x
    largest = bumps[-1]
    return {
        "x": grid,
        "target": fits[0].target,
        "n_units": np.array(n_units, dtype=np.int64),
        "fit_max_error": np.array([f.max_error for f in fits]),
        "fit_rms_error": np.array([f.rms_error for f in fits]),
        "fit_prediction": np.array([f.prediction for f in fits]),
        "n_bumps": np.array(n_bumps, dtype=np.int64),
        "bump_max_error": np.array([r.max_error for r in bumps]),
        "bump_error_bound": np.array([r.error_bound for r in bumps]),
        "bump_prediction": np.array([np.interp(grid, r.x, r.prediction) for r in bumps]),
        "bump_hidden_weights": largest.hidden_weights,
        "bump_hidden_biases": largest.hidden_biases,
        "bump_output_weights": largest.output_weights,
        "steepness": np.array(steepness),
        "target_name": np.array(target),
    }


def sigmoid_network(
    x: np.ndarray,
    hidden_weights: np.ndarray,
    hidden_biases: np.ndarray,
    output_weights: np.ndarray,
    output_bias: float = 0.0,
) -> np.ndarray:
    """ŷ(x) = Σ_k a_k σ(w_k x + b_k) + c: one hidden layer of sigmoid units with any weights
    (a fit's, a construction's, or ones typed in by hand), on the 1D inputs ``x``."""
    parts = unit_contributions(x, hidden_weights, hidden_biases, output_weights)
    return parts.sum(axis=0) + float(output_bias)


def unit_contributions(
    x: np.ndarray,
    hidden_weights: np.ndarray,
    hidden_biases: np.ndarray,
    output_weights: np.ndarray,
    group: int = 1,
) -> np.ndarray:
    """What each hidden unit adds to the output, a_k σ(w_k x + b_k), one row per unit (K,
    len(x)); with ``group`` g, consecutive units summed g at a time (K/g rows): ``group=2`` on
    a bump construction gives one bump per row."""
    grid = np.asarray(x, dtype=np.float64).ravel()
    w = np.asarray(hidden_weights, dtype=np.float64).ravel()
    b = np.asarray(hidden_biases, dtype=np.float64).ravel()
    a = np.asarray(output_weights, dtype=np.float64).ravel()
    if not len(w) == len(b) == len(a):
        raise ValueError(f"{len(w)} hidden weights, {len(b)} biases and {len(a)} output weights")
    if group < 1 or len(w) % group:
        raise ValueError(f"group = {group} does not divide {len(w)} units")
    parts = a[:, None] * sigmoid(np.outer(w, grid) + b[:, None])
    return parts.reshape(len(w) // group, group, len(grid)).sum(axis=1)


def with_weights(
    result: ApproximationResult,
    hidden_weights: np.ndarray | None = None,
    hidden_biases: np.ndarray | None = None,
    output_weights: np.ndarray | None = None,
    output_bias: float | None = None,
) -> ApproximationResult:
    """The same network with some weights replaced (None: keep the result's), evaluated on the
    result's grid against its target. A construction's error bound holds for the weights it
    built, so the answer is a plain ``ApproximationResult``."""
    w = result.hidden_weights if hidden_weights is None else hidden_weights
    b = result.hidden_biases if hidden_biases is None else hidden_biases
    a = result.output_weights if output_weights is None else output_weights
    c = result.output_bias if output_bias is None else float(output_bias)
    w, b, a = (np.array(v, dtype=np.float64).ravel() for v in (w, b, a))
    prediction = sigmoid_network(result.x, w, b, a, c)
    return ApproximationResult(w, b, a, c, result.x, result.target, prediction)
