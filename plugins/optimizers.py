"""Built-in optimizers: pure, optax-shaped, with torch.optim's rules and default hyperparameters.

``init(theta)`` returns the state (PyTorch's names for the running statistics, plus ``step``);
``update(grad, state, theta)`` returns the step the session adds to theta and never changes theta.
State arrays are updated in place, because the engine's compiled fast path (named by ``inline``)
may hold views of them and must see the same numbers. State keeps theta's dtype; ``step`` is a
float64 counter of shape (1,).
"""

import math
from typing import Any

import numpy as np

from gradient_lab.engine.plugin_api import Optimizer, OptimizerContext, Param, PluginError

State = dict[str, np.ndarray]


# ------------------------------------------------------------------------------------- helpers


def _lr(default: float) -> Param:
    return Param("lr", "float", default, "learning rate: how far each step goes", low=0.0)


def _weight_decay(default: float = 0.0) -> Param:
    return Param(
        "weight_decay", "float", default, "L2 penalty: adds weight_decay·θ to the gradient", low=0.0
    )


def _eps(default: float) -> Param:
    return Param("eps", "float", default, "small number that keeps the division finite", low=0.0)


def _zeros(theta: np.ndarray) -> np.ndarray:
    return np.zeros(theta.shape, dtype=theta.dtype)


def _start(state: State) -> State:
    """Add the step counter every optimizer keeps (float64, as the engine's kernels expect)."""
    state["step"] = np.zeros(1)
    return state


def _advance(state: State) -> float:
    """Count this step and return its number, starting at 1 like torch.optim."""
    state["step"][0] += 1.0
    return float(state["step"][0])


def _gradient(grad: np.ndarray, theta: np.ndarray, weight_decay: float) -> np.ndarray:
    """The gradient in theta's dtype, with coupled (L2) weight decay added as torch.optim does.

    Returns a new array or the caller's own; either way it must not be written to."""
    g = np.asarray(grad, dtype=theta.dtype)
    return g + weight_decay * theta if weight_decay != 0.0 else g


def _check_below_one(plugin: Optimizer, *names: str) -> None:
    """PyTorch refuses betas equal to 1 (the bias correction would divide by zero)."""
    for name in names:
        if plugin.hp[name] >= 1.0:
            raise PluginError(f"{plugin.name}.{name} = {plugin.hp[name]!r} must be below 1")


# ------------------------------------------------------------------------------ SGD and momentum


def _sgd_params(momentum: float, nesterov: bool) -> tuple[Param, ...]:
    return (
        _lr(1e-3),
        Param(
            "momentum",
            "float",
            momentum,
            "fraction of the previous velocity kept"
            + (" (above 0 for Nesterov)" if nesterov else ""),
            low=0.0,
            low_inclusive=not nesterov,
        ),
        Param(
            "dampening",
            "float",
            0.0,
            "fraction of the new gradient left out of the velocity"
            + (" (0 for Nesterov)" if nesterov else ""),
            low=0.0,
            high=0.0 if nesterov else 1.0,
        ),
        _weight_decay(),
        Param("nesterov", "bool", nesterov, "look ahead along the velocity (Nesterov's form)"),
    )


SGD_FORMULA = (
    r"g_t = \nabla L(\theta_{t-1}) + \lambda\theta_{t-1},\quad "
    r"b_t = \begin{cases} g_1 & t = 1 \\ \mu b_{t-1} + (1 - \tau) g_t & t > 1 \end{cases},\quad "
    r"\theta_t = \theta_{t-1} - \eta \begin{cases} g_t + \mu b_t & \text{Nesterov} \\ "
    r"b_t & \text{otherwise} \end{cases}"
)


class SGD(Optimizer):
    name = "sgd"
    inline = "sgd"
    inline_state = ("momentum_buffer",)
    params = _sgd_params(momentum=0.0, nesterov=False)
    formula = SGD_FORMULA
    teaching = (
        "Stochastic gradient descent: step downhill along the gradient of the current batch. "
        "With momentum it keeps a velocity that averages recent gradients and rolls through "
        "small bumps."
    )

    def __init__(self, **hp: Any) -> None:
        super().__init__(**hp)
        if self.hp["nesterov"] and (self.hp["momentum"] <= 0.0 or self.hp["dampening"] != 0.0):
            raise PluginError(
                f"{self.name}: Nesterov momentum needs momentum > 0 and dampening = 0"
            )

    def init(self, theta: np.ndarray) -> State:
        return _start({"momentum_buffer": _zeros(theta)})

    def update(
        self,
        grad: np.ndarray,
        state: State,
        theta: np.ndarray,
        ctx: OptimizerContext | None = None,
    ) -> tuple[np.ndarray, State]:
        t = _advance(state)
        hp = self.hp
        g = _gradient(grad, theta, hp["weight_decay"])
        momentum = hp["momentum"]
        if momentum != 0.0:
            buf = state["momentum_buffer"]
            if t == 1.0:
                buf[...] = g  # PyTorch starts the velocity at the first gradient, undamped
            else:
                buf *= momentum
                buf += (1.0 - hp["dampening"]) * g
            g = g + momentum * buf if hp["nesterov"] else buf
        return -hp["lr"] * g, state


class Momentum(SGD):
    name = "momentum"
    params = _sgd_params(momentum=0.9, nesterov=False)
    teaching = (
        "Gradient descent with a velocity: each step adds 0.9 of the previous one, so steps grow "
        "along directions the gradient keeps pointing and cancel where it zig-zags."
    )


class Nesterov(SGD):
    name = "nesterov"
    params = _sgd_params(momentum=0.9, nesterov=True)
    teaching = (
        "Momentum that looks ahead: the step uses the gradient plus the velocity it is about to "
        "take, which brakes earlier before overshooting."
    )


# ---------------------------------------------------------------------- adaptive learning rates


class Adagrad(Optimizer):
    name = "adagrad"
    inline = "adagrad"
    inline_state = ("sum",)
    params = (
        _lr(1e-2),
        Param(
            "lr_decay", "float", 0.0, "learning rate shrinks as lr / (1 + (t-1)·lr_decay)", low=0.0
        ),
        _weight_decay(),
        Param(
            "initial_accumulator_value",
            "float",
            0.0,
            "starting value of the sum of squares",
            low=0.0,
        ),
        _eps(1e-10),
    )
    formula = (
        r"s_t = s_{t-1} + g_t^2,\quad "
        r"\theta_t = \theta_{t-1} - \frac{\eta}{1 + (t-1)\,d}\,\frac{g_t}{\sqrt{s_t} + \epsilon}"
    )
    teaching = (
        "Each parameter gets its own step size: divided by the root of the sum of all its past "
        "squared gradients, so often-updated parameters slow down and rare ones keep moving."
    )

    def init(self, theta: np.ndarray) -> State:
        start = self.hp["initial_accumulator_value"]
        return _start({"sum": np.full(theta.shape, start, dtype=theta.dtype)})

    def update(
        self,
        grad: np.ndarray,
        state: State,
        theta: np.ndarray,
        ctx: OptimizerContext | None = None,
    ) -> tuple[np.ndarray, State]:
        t = _advance(state)
        hp = self.hp
        g = _gradient(grad, theta, hp["weight_decay"])
        clr = hp["lr"] / (1.0 + (t - 1.0) * hp["lr_decay"])
        total = state["sum"]
        total += g * g
        return -clr * (g / (np.sqrt(total) + hp["eps"])), state


class RMSprop(Optimizer):
    name = "rmsprop"
    inline = "rmsprop"
    inline_state = ("square_avg", "momentum_buffer", "grad_avg")
    params = (
        _lr(1e-2),
        Param(
            "alpha",
            "float",
            0.99,
            "smoothing of the running average of squared gradients",
            low=0.0,
            high=1.0,
        ),
        _eps(1e-8),
        _weight_decay(),
        Param("momentum", "float", 0.0, "fraction of the previous step kept", low=0.0),
        Param("centered", "bool", False, "divide by the variance instead of the raw second moment"),
    )
    formula = (
        r"v_t = \alpha v_{t-1} + (1 - \alpha) g_t^2,\quad "
        r"\theta_t = \theta_{t-1} - \eta\,\frac{g_t}{\sqrt{v_t} + \epsilon}"
        r"\quad(\text{centered: } \sqrt{v_t - \bar g_t^2})"
    )
    teaching = (
        "Like Adagrad, but with a running average of squared gradients instead of their sum, so "
        "the step size can recover after a steep stretch."
    )

    def init(self, theta: np.ndarray) -> State:
        return _start({name: _zeros(theta) for name in self.inline_state})

    def update(
        self,
        grad: np.ndarray,
        state: State,
        theta: np.ndarray,
        ctx: OptimizerContext | None = None,
    ) -> tuple[np.ndarray, State]:
        _advance(state)
        hp = self.hp
        alpha = hp["alpha"]
        g = _gradient(grad, theta, hp["weight_decay"])
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1.0 - alpha) * g * g
        if hp["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg *= alpha
            grad_avg += (1.0 - alpha) * g
            avg = np.sqrt(square_avg - grad_avg * grad_avg) + hp["eps"]
        else:
            avg = np.sqrt(square_avg) + hp["eps"]
        if hp["momentum"] > 0.0:
            buf = state["momentum_buffer"]
            buf *= hp["momentum"]
            buf += g / avg
            return -hp["lr"] * buf, state
        return -hp["lr"] * (g / avg), state


class Adadelta(Optimizer):
    name = "adadelta"
    inline = "adadelta"
    inline_state = ("square_avg", "acc_delta")
    params = (
        _lr(1.0),
        Param("rho", "float", 0.9, "smoothing of both running averages", low=0.0, high=1.0),
        _eps(1e-6),
        _weight_decay(),
    )
    formula = (
        r"v_t = \rho v_{t-1} + (1-\rho) g_t^2,\quad "
        r"\Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t,\quad "
        r"u_t = \rho u_{t-1} + (1-\rho)\Delta_t^2,\quad \theta_t = \theta_{t-1} - \eta\Delta_t"
    )
    teaching = (
        "Scales each step by the ratio of recent step sizes to recent gradient sizes, so the "
        "steps come out in the units of the parameters and lr can stay at 1."
    )

    def init(self, theta: np.ndarray) -> State:
        return _start({name: _zeros(theta) for name in self.inline_state})

    def update(
        self,
        grad: np.ndarray,
        state: State,
        theta: np.ndarray,
        ctx: OptimizerContext | None = None,
    ) -> tuple[np.ndarray, State]:
        _advance(state)
        hp = self.hp
        rho, eps = hp["rho"], hp["eps"]
        g = _gradient(grad, theta, hp["weight_decay"])
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg *= rho
        square_avg += (1.0 - rho) * g * g
        delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
        acc_delta *= rho
        acc_delta += (1.0 - rho) * delta * delta
        return -hp["lr"] * delta, state


# ------------------------------------------------------------------------------------ Adam family


def _adam_params(weight_decay: float, decay_help: str) -> tuple[Param, ...]:
    return (
        _lr(1e-3),
        Param(
            "beta1",
            "float",
            0.9,
            "smoothing of the running mean of gradients",
            low=0.0,
            high=1.0,
            high_inclusive=False,
        ),
        Param(
            "beta2",
            "float",
            0.999,
            "smoothing of the running mean of squared gradients",
            low=0.0,
            high=1.0,
            high_inclusive=False,
        ),
        _eps(1e-8),
        Param("weight_decay", "float", weight_decay, decay_help, low=0.0),
        Param("amsgrad", "bool", False, "divide by the largest second moment seen so far"),
    )


class Adam(Optimizer):
    name = "adam"
    inline = "adam"
    inline_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled = False  # AdamW shrinks theta directly instead of adding decay to the gradient
    params = _adam_params(0.0, "L2 penalty: adds weight_decay·θ to the gradient")
    formula = (
        r"m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,"
        r"\quad \theta_t = \theta_{t-1} - \frac{\eta}{1-\beta_1^t}\,"
        r"\frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}"
    )
    teaching = (
        "Momentum plus RMSprop: a running mean of gradients gives the direction, a running mean "
        "of squared gradients sets each parameter's step size, both corrected for starting at zero."
    )

    def __init__(self, **hp: Any) -> None:
        super().__init__(**hp)
        _check_below_one(self, "beta1", "beta2")

    def init(self, theta: np.ndarray) -> State:
        return _start({name: _zeros(theta) for name in self.inline_state})

    def update(
        self,
        grad: np.ndarray,
        state: State,
        theta: np.ndarray,
        ctx: OptimizerContext | None = None,
    ) -> tuple[np.ndarray, State]:
        t = _advance(state)
        hp = self.hp
        lr, beta1, beta2 = hp["lr"], hp["beta1"], hp["beta2"]
        g = _gradient(grad, theta, 0.0 if self.decoupled else hp["weight_decay"])
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg *= beta1
        exp_avg += (1.0 - beta1) * g
        exp_avg_sq *= beta2
        exp_avg_sq += (1.0 - beta2) * g * g
        second = exp_avg_sq
        if hp["amsgrad"]:
            second = state["max_exp_avg_sq"]
            np.maximum(second, exp_avg_sq, out=second)
        step_size = lr / (1.0 - beta1**t)
        denom = np.sqrt(second) / math.sqrt(1.0 - beta2**t) + hp["eps"]
        update = -step_size * (exp_avg / denom)
        if self.decoupled:
            update -= lr * hp["weight_decay"] * theta
        return update, state


class AdamW(Adam):
    name = "adamw"
    inline = "adamw"
    decoupled = True
    params = _adam_params(1e-2, "decoupled decay: shrinks θ by lr·weight_decay·θ every step")
    formula = Adam.formula + r",\ \text{then}\ \theta_t \mathrel{-}= \eta\lambda\theta_{t-1}"
    teaching = (
        "Adam with weight decay taken out of the gradient: the weights shrink by a fixed fraction "
        "each step, which Adam's per-parameter scaling would otherwise weaken."
    )


# ---------------------------------------------------------------------------- Levenberg-Marquardt

MU_RANGE = (1e-20, 1e20)  # keeps the damping from underflowing to 0 or overflowing to inf


class LevenbergMarquardt(Optimizer):
    name = "levenberg_marquardt"
    needs_context = True
    params = (
        Param(
            "mu",
            "float",
            1e-3,
            "initial damping: large = small gradient step, small = Gauss-Newton step",
            low=0.0,
            low_inclusive=False,
        ),
        Param(
            "mu_inc",
            "float",
            10.0,
            "damping is multiplied by this after a rejected try",
            low=1.0,
            low_inclusive=False,
        ),
        Param(
            "mu_dec",
            "float",
            0.1,
            "damping is multiplied by this after an accepted step",
            low=0.0,
            high=1.0,
            low_inclusive=False,
        ),
        Param("max_tries", "int", 10, "tries per step before giving up (zero step)", low=1),
        Param(
            "scaling",
            "str",
            "identity",
            "damp with the identity (Levenberg) or with the diagonal of JᵀJ (Marquardt)",
            choices=("identity", "diagonal"),
        ),
    )
    formula = (
        r"(J^\top J + \mu D)\,\delta = -J^\top r,\quad "
        r"D = I \text{ or } \mathrm{diag}(J^\top J)"
    )
    teaching = (
        "For squared-error losses on the full data set: solve a small linear system built from "
        "the Jacobian for the whole step, blending Gauss-Newton (small μ) with gradient descent "
        "(large μ), and raise μ whenever a step would increase the loss."
    )

    def init(self, theta: np.ndarray) -> State:
        return _start({"mu": np.array([self.hp["mu"]])})

    def update(
        self,
        grad: np.ndarray,
        state: State,
        theta: np.ndarray,
        ctx: OptimizerContext | None = None,
    ) -> tuple[np.ndarray, State]:
        if ctx is None:
            raise PluginError(f"{self.name} needs the session's context (residuals and Jacobian)")
        _advance(state)
        system, rhs = self._normal_equations(ctx, theta)
        damping = self._damping(system)
        base = float(ctx.loss(theta))
        mu = float(state["mu"][0])
        for _ in range(self.hp["max_tries"]):
            step = self._solve(system, damping, mu, rhs, theta.dtype)
            if step is not None and _improves(ctx, theta + step, base):
                state["mu"][0] = _clamp_mu(mu * self.hp["mu_dec"])
                return step, state
            mu = _clamp_mu(mu * self.hp["mu_inc"])
        state["mu"][0] = mu
        return _zeros(theta), state

    @staticmethod
    def _normal_equations(
        ctx: OptimizerContext, theta: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """JᵀJ and -Jᵀr in float64, so the solve is as exact as the problem allows."""
        r = np.asarray(ctx.residuals(theta), dtype=np.float64).ravel()
        jac = np.asarray(ctx.jacobian(theta), dtype=np.float64)
        if jac.shape != (r.size, theta.size):
            raise PluginError(
                f"Jacobian has shape {jac.shape}, expected ({r.size}, {theta.size}) "
                "(one row per residual, one column per parameter)"
            )
        return jac.T @ jac, -(jac.T @ r)

    def _damping(self, system: np.ndarray) -> np.ndarray:
        """D: ones, or diag(JᵀJ) floored so a parameter without effect keeps the system solvable."""
        if self.hp["scaling"] == "identity":
            return np.ones(system.shape[0])
        diag = np.diag(system).copy()
        floor = 1e-12 * float(diag.max()) if diag.size and diag.max() > 0.0 else 1.0
        return np.maximum(diag, floor)

    @staticmethod
    def _solve(
        system: np.ndarray, damping: np.ndarray, mu: float, rhs: np.ndarray, dtype: np.dtype
    ) -> np.ndarray | None:
        """The damped step in theta's dtype, or None when the system cannot be solved."""
        damped = system + np.diag(mu * damping)
        try:
            delta = np.linalg.solve(damped, rhs)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(delta)):
            return None
        return delta.astype(dtype)


def _improves(ctx: OptimizerContext, trial: np.ndarray, base: float) -> bool:
    loss = float(ctx.loss(trial))
    return math.isfinite(loss) and loss < base


def _clamp_mu(mu: float) -> float:
    return min(max(mu, MU_RANGE[0]), MU_RANGE[1])


PLUGINS = [
    SGD,
    Momentum,
    Nesterov,
    Adagrad,
    RMSprop,
    Adadelta,
    Adam,
    AdamW,
    LevenbergMarquardt,
]
