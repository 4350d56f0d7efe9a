"""What every part of the conformance check shares: the report (items, verdicts, one-line
errors), the seeded points, and the comparisons: against another computation at a tolerance,
and against central differences that leave out coordinates at a kink."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradient_lab.engine.plugin_api import PluginError

SEED = 1234
FD_STEP = 1e-6  # relative step of the central differences
FD_RTOL = 1e-6  # agreement asked of an analytic derivative with the differences
ROUNDING_MARGIN = 10.0  # differences of an exactly flat direction stay within this many roundings
EXACT_RTOL = 1e-12  # agreement asked of a fast path with the plugin's own code
ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")
GENERIC_LINES = ("Failed in ", "During: ")


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


def run_check(name: str, check: Check) -> CheckItem | None:
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


def seeded_rng(offset: int = 0) -> np.random.Generator:
    return np.random.default_rng(SEED + offset)


def difference_step(value: float) -> float:
    return FD_STEP * max(1.0, abs(value))


def compare(
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


def norm_tol(expected: Any, rtol: float) -> float:
    """An absolute tolerance of rtol times the largest expected magnitude."""
    e = np.asarray(expected, dtype=np.float64)
    return rtol * float(np.abs(e).max()) if e.size else 0.0


def differences(
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
        h = difference_step(float(x[i]))
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        fp, fm = fun(xp), fun(xm)
        grad[i] = (fp - fm) / (2.0 * h)
        if detect_kinks:
            right, left = (fp - base) / h, (base - fm) / h
            valid[i] = abs(right - left) <= 1e-2 * max(abs(right), abs(left)) + 1e-7 * noise
    return grad, valid


def compare_differences(
    what: str, analytic: Any, fun: Callable[[np.ndarray], float], x: np.ndarray
) -> tuple[float, int]:
    """Analytic gradient vs central differences at the valid coordinates: (worst error, n)."""
    numeric, valid = differences(fun, x)
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise CheckFailed(f"{what}: gradient shape {analytic.shape}, expected {numeric.shape}")
    if valid.sum() < 0.5 * valid.size:
        raise CheckFailed(f"{what}: too many kinks ({int((~valid).sum())} of {valid.size})")
    # rounding in f(x ± h) leaves differences of about eps |f| / h where the slope is 0
    rounding = ROUNDING_MARGIN * np.finfo(np.float64).eps * max(1.0, abs(fun(x))) / FD_STEP
    atol = max(norm_tol(numeric, FD_RTOL), rounding) + 1e-10
    # a coordinate at a kink is compared with itself, so positions keep the input's shape
    worst = compare(what, np.where(valid, analytic, numeric), numeric, FD_RTOL, atol)
    return worst, int(valid.sum())


def moved_parameters(cls: Any) -> dict[str, float]:
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


def configurations(cls: Any) -> Iterator[tuple[str, Any]]:
    """(label, instance) at the defaults, then with every float parameter moved."""
    yield "", cls()
    moved = moved_parameters(cls)
    if moved:
        try:
            instance = cls(**moved)
        except PluginError:
            return  # the plugin rejects that combination itself
        yield " with " + ", ".join(f"{k} = {v:g}" for k, v in moved.items()), instance
