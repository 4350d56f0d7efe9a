"""Built-in objectives: 2D test functions for optimizer races, with exact gradients and Hessians.

Each objective gives ``value``, ``gradient`` and ``hessian`` at (x, y), a default ``start``, its
known ``minima`` and the ``bounds`` worth drawing. Those that are sums of squares also give
``residuals(x, y)`` and ``residual_jacobian(x, y)`` with value = sum(r²), so Levenberg-Marquardt
can race on them too (the saddle has no such form: it is unbounded below).
"""

import math

import numpy as np

from gradient_lab.engine.plugin_api import Objective, Param


def _matrix(a: float, b: float, c: float, d: float) -> np.ndarray:
    return np.array([[a, b], [c, d]], dtype=np.float64)


class Quadratic(Objective):
    name = "quadratic"
    params = (
        Param(
            "kappa",
            "float",
            10.0,
            "condition number: curvature along the steep axis over the shallow one",
            low=1.0,
        ),
        Param(
            "angle",
            "float",
            0.0,
            "rotation of the axes in degrees (0: the steep axis is y)",
            low=-180.0,
            high=180.0,
        ),
    )
    formula = r"f(p) = \tfrac12\, p^\top R \begin{pmatrix}1 & 0\\ 0 & \kappa\end{pmatrix} R^\top p"
    teaching = (
        "A bowl whose curvature along one axis is kappa times that along the other. Gradient "
        "descent zig-zags across the narrow valley; its best rate is (κ-1)/(κ+1) per step, and "
        "momentum improves it to (√κ-1)/(√κ+1)."
    )
    start = (-1.5, 1.0)
    minima = ((0.0, 0.0),)
    bounds = ((-2.0, 2.0), (-1.5, 1.5))

    def __init__(self, **hp):
        super().__init__(**hp)
        t = math.radians(self.hp["angle"])
        self.rotation = _matrix(math.cos(t), -math.sin(t), math.sin(t), math.cos(t))
        curvature = np.diag([1.0, self.hp["kappa"]])
        self.matrix = self.rotation @ curvature @ self.rotation.T
        self.matrix = 0.5 * (self.matrix + self.matrix.T)

    def value(self, x, y):
        p = np.array([x, y])
        return float(0.5 * p @ self.matrix @ p)

    def gradient(self, x, y):
        g = self.matrix @ np.array([x, y])
        return float(g[0]), float(g[1])

    def hessian(self, x, y):
        return self.matrix.copy()

    def residuals(self, x, y):
        """r = diag(1, √κ) Rᵀ p / √2, so that sum(r²) = f."""
        scale = np.array([1.0, math.sqrt(self.hp["kappa"])]) / math.sqrt(2.0)
        return scale * (self.rotation.T @ np.array([x, y]))

    def residual_jacobian(self, x, y):
        scale = np.array([1.0, math.sqrt(self.hp["kappa"])]) / math.sqrt(2.0)
        return scale[:, None] * self.rotation.T


class Rosenbrock(Objective):
    name = "rosenbrock"
    params = (
        Param("a", "float", 1.0, "the minimum is at (a, a²)"),
        Param("b", "float", 100.0, "steepness of the curved valley's walls", low=0.0),
    )
    formula = r"f(x, y) = (a - x)^2 + b\,(y - x^2)^2"
    teaching = (
        "A long, curved, flat-bottomed valley: finding the valley is easy, following it to the "
        "minimum at (a, a²) is slow for plain gradient descent."
    )
    start = (-1.5, 2.0)
    minima = ((1.0, 1.0),)
    bounds = ((-2.0, 2.0), (-1.0, 3.0))

    def __init__(self, **hp):
        super().__init__(**hp)
        a = self.hp["a"]
        self.minima = ((a, a * a),)

    def value(self, x, y):
        a, b = self.hp["a"], self.hp["b"]
        return (a - x) ** 2 + b * (y - x * x) ** 2

    def gradient(self, x, y):
        a, b = self.hp["a"], self.hp["b"]
        return -2.0 * (a - x) - 4.0 * b * x * (y - x * x), 2.0 * b * (y - x * x)

    def hessian(self, x, y):
        b = self.hp["b"]
        return _matrix(2.0 - 4.0 * b * (y - 3.0 * x * x), -4.0 * b * x, -4.0 * b * x, 2.0 * b)

    def residuals(self, x, y):
        a, b = self.hp["a"], self.hp["b"]
        return np.array([a - x, math.sqrt(b) * (y - x * x)])

    def residual_jacobian(self, x, y):
        rb = math.sqrt(self.hp["b"])
        return _matrix(-1.0, 0.0, -2.0 * rb * x, rb)


BEALE_C = (1.5, 2.25, 2.625)


class Beale(Objective):
    name = "beale"
    formula = r"f(x, y) = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2"
    teaching = (
        "Flat plateaus and sharp ridges with the minimum at (3, 0.5) in a narrow valley: step "
        "sizes that suit one region overshoot in another."
    )
    start = (1.0, 1.5)
    minima = ((3.0, 0.5),)
    bounds = ((-4.5, 4.5), (-4.5, 4.5))

    def residuals(self, x, y):
        return np.array([c - x + x * y**i for i, c in enumerate(BEALE_C, start=1)])

    def residual_jacobian(self, x, y):
        return np.array([[y**i - 1.0, i * x * y ** (i - 1)] for i in range(1, 4)])

    def value(self, x, y):
        return float(np.sum(self.residuals(x, y) ** 2))

    def gradient(self, x, y):
        g = 2.0 * self.residual_jacobian(x, y).T @ self.residuals(x, y)
        return float(g[0]), float(g[1])

    def hessian(self, x, y):
        r, jac = self.residuals(x, y), self.residual_jacobian(x, y)
        h = 2.0 * jac.T @ jac
        for i in range(1, 4):  # second derivatives of r_i = c_i - x + x y^i
            rxy = i * y ** (i - 1)
            ryy = i * (i - 1) * x * y ** (i - 2) if i >= 2 else 0.0
            h += 2.0 * r[i - 1] * _matrix(0.0, rxy, rxy, ryy)
        return h


class Rastrigin(Objective):
    name = "rastrigin"
    params = (Param("A", "float", 10.0, "height of the ripples", low=0.0),)
    formula = r"f(x, y) = 2A + x^2 - A\cos 2\pi x + y^2 - A\cos 2\pi y"
    teaching = (
        "A bowl covered in ripples: a local minimum near every integer point, the global one at "
        "the origin. Gradient methods settle in whichever dip they start in."
    )
    start = (2.3, -1.7)
    minima = ((0.0, 0.0),)
    bounds = ((-5.12, 5.12), (-5.12, 5.12))

    def value(self, x, y):
        a = self.hp["A"]
        return 2.0 * a + sum(v * v - a * math.cos(2.0 * math.pi * v) for v in (x, y))

    def gradient(self, x, y):
        a = self.hp["A"]
        return tuple(2.0 * v + 2.0 * math.pi * a * math.sin(2.0 * math.pi * v) for v in (x, y))

    def hessian(self, x, y):
        a = self.hp["A"]
        dxx, dyy = (2.0 + 4.0 * math.pi**2 * a * math.cos(2.0 * math.pi * v) for v in (x, y))
        return _matrix(dxx, 0.0, 0.0, dyy)

    def residuals(self, x, y):
        """A - A cos 2πv = 2A sin² πv, so f = x² + 2A sin² πx + y² + 2A sin² πy."""
        s = math.sqrt(2.0 * self.hp["A"])
        return np.array([x, s * math.sin(math.pi * x), y, s * math.sin(math.pi * y)])

    def residual_jacobian(self, x, y):
        s = math.sqrt(2.0 * self.hp["A"]) * math.pi
        return np.array(
            [
                [1.0, 0.0],
                [s * math.cos(math.pi * x), 0.0],
                [0.0, 1.0],
                [0.0, s * math.cos(math.pi * y)],
            ]
        )


class Saddle(Objective):
    name = "saddle"
    formula = r"f(x, y) = x^2 - y^2"
    teaching = (
        "A saddle point at the origin: downhill along y, uphill along x. Starting almost on the "
        "x axis, plain gradient descent lingers near the saddle before escaping; there is no "
        "minimum at all."
    )
    start = (1.0, 1e-3)
    minima = ()
    bounds = ((-1.5, 1.5), (-1.5, 1.5))

    def value(self, x, y):
        return x * x - y * y

    def gradient(self, x, y):
        return 2.0 * x, -2.0 * y

    def hessian(self, x, y):
        return _matrix(2.0, 0.0, 0.0, -2.0)


class Himmelblau(Objective):
    name = "himmelblau"
    formula = r"f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2"
    teaching = (
        "Four minima of equal depth (value 0): which one an optimizer reaches depends on where "
        "it starts and how it moves."
    )
    start = (-0.5, -0.5)
    minima = (
        (3.0, 2.0),
        (-2.805118086952745, 3.131312518250573),
        (-3.779310253377747, -3.283185991286169),
        (3.5844283403304917, -1.8481265269644036),
    )
    bounds = ((-5.0, 5.0), (-5.0, 5.0))

    def residuals(self, x, y):
        return np.array([x * x + y - 11.0, x + y * y - 7.0])

    def residual_jacobian(self, x, y):
        return _matrix(2.0 * x, 1.0, 1.0, 2.0 * y)

    def value(self, x, y):
        r = self.residuals(x, y)
        return float(r[0] ** 2 + r[1] ** 2)

    def gradient(self, x, y):
        r1, r2 = self.residuals(x, y)
        return 4.0 * x * r1 + 2.0 * r2, 2.0 * r1 + 4.0 * y * r2

    def hessian(self, x, y):
        dxx = 12.0 * x * x + 4.0 * y - 42.0
        dyy = 12.0 * y * y + 4.0 * x - 26.0
        dxy = 4.0 * (x + y)
        return _matrix(dxx, dxy, dxy, dyy)


PLUGINS = [Quadratic, Rosenbrock, Beale, Rastrigin, Saddle, Himmelblau]
