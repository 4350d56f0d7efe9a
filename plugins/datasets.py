"""Built-in datasets: the playground's 2D sets, 1D curves, handwritten digits and CSV import.

All 2D sets live on the same scale as TensorFlow Playground's: points roughly in [-6, 6], so
derived features such as sin(x1) show their shape and one plot range fits every set. ``noise`` is
always the standard deviation of Gaussian jitter, in data units: added to the points of a
classification set and to the targets of a regression set. The jitter is drawn after the clean
data, so the same seed with two noise levels moves the same points by different amounts.
"""

from __future__ import annotations

import csv
import gzip
import importlib.resources
import io
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from gradient_lab.engine.plugin_api import Dataset, Param, PluginError

TWO_PI = 2.0 * math.pi


def _n_param(default: int = 500) -> Param:
    return Param("n", "int", default, "number of samples", low=2, high=100_000)


def _noise_param(default: float, what: str = "each coordinate") -> Param:
    return Param(
        "noise", "float", default, f"standard deviation of Gaussian noise added to {what}", low=0.0
    )


def _classes_param() -> Param:
    return Param("classes", "int", 3, "number of classes", low=3, high=5)


def _balanced_labels(n: int, k: int) -> np.ndarray:
    """Labels 0..k-1 in turn, so class sizes differ by at most one."""
    return np.arange(n, dtype=np.int64) % k


def _jitter(rng: np.random.Generator, x: np.ndarray, noise: float) -> np.ndarray:
    """x plus Gaussian noise; always draws, so the clean part does not depend on the noise."""
    return x + noise * rng.normal(size=x.shape)


def _polar(r: np.ndarray, phi: np.ndarray) -> np.ndarray:
    return np.column_stack((r * np.cos(phi), r * np.sin(phi)))


# ------------------------------------------------------------------------- 2-class 2D sets


class Circle(Dataset):
    name = "circle"
    planar = True
    params = (_n_param(), _noise_param(0.25))
    formula = (
        r"x = r(\cos\varphi, \sin\varphi) + \varepsilon,\quad"
        r" r \sim U(0, 2)\ (y = 1),\ r \sim U(3.5, 5)\ (y = 0)"
    )
    teaching = (
        "One class inside a disc, the other on a ring around it: no straight line separates "
        "them, but the feature x1² + x2² (or a hidden layer) does."
    )

    def generate(self, rng):
        n = self.hp["n"]
        y = _balanced_labels(n, 2)
        phi = rng.uniform(0.0, TWO_PI, n)
        r = np.where(y == 1, rng.uniform(0.0, 2.0, n), rng.uniform(3.5, 5.0, n))
        return _jitter(rng, _polar(r, phi), self.hp["noise"]), y


class Xor(Dataset):
    name = "xor"
    planar = True
    params = (_n_param(), _noise_param(0.25))
    formula = r"y = [x_1 x_2 > 0],\quad |x_i| \sim U(0.3, 5)"
    teaching = (
        "Opposite quadrants share a class. A single neuron cannot learn it; the product "
        "feature x1·x2 or one hidden layer can."
    )

    def generate(self, rng):
        n = self.hp["n"]
        y = _balanced_labels(n, 2)
        size = rng.uniform(0.3, 5.0, (n, 2))
        sign = rng.choice(np.array([-1.0, 1.0]), n)
        # class 1: both coordinates share a sign (quadrants I, III); class 0: they differ
        second = np.where(y == 1, sign, -sign)
        x = np.column_stack((sign * size[:, 0], second * size[:, 1]))
        return _jitter(rng, x, self.hp["noise"]), y


class Gaussians(Dataset):
    name = "gaussians"
    planar = True
    params = (_n_param(), _noise_param(0.0, "each coordinate (on top of the unit spread)"))
    formula = r"x \sim \mathcal{N}(\pm(2, 2), I) + \varepsilon"
    teaching = (
        "Two round clouds: linearly separable unless the noise makes them overlap, the "
        "easiest set and a good first test of any model."
    )

    def generate(self, rng):
        n = self.hp["n"]
        y = _balanced_labels(n, 2)
        centre = np.where(y[:, None] == 1, 2.0, -2.0)
        x = centre + rng.normal(size=(n, 2))
        return _jitter(rng, x, self.hp["noise"]), y


def _spiral_arms(
    rng: np.random.Generator, y: np.ndarray, k: int, turns: float, noise: float
) -> np.ndarray:
    """Arm c of k starts at the centre and winds out to radius 5, rotated by 2πc/k."""
    t = rng.uniform(0.0, 1.0, len(y))
    phi = TWO_PI * turns * t + TWO_PI * y / k
    return _jitter(rng, _polar(5.0 * t, phi), noise)


class Spiral(Dataset):
    name = "spiral"
    planar = True
    params = (
        _n_param(),
        _noise_param(0.2),
        Param("turns", "float", 1.75, "how many times each arm winds round", low=0.25, high=4.0),
    )
    formula = (
        r"x = 5t(\cos\varphi, \sin\varphi) + \varepsilon,\quad"
        r" \varphi = 2\pi\,\mathrm{turns}\,t + \pi y"
    )
    teaching = (
        "Two interleaved spirals, the hardest playground set: it needs several layers, or "
        "sin features, and rewards patience with the learning rate."
    )

    def generate(self, rng):
        y = _balanced_labels(self.hp["n"], 2)
        return _spiral_arms(rng, y, 2, self.hp["turns"], self.hp["noise"]), y


class Moons(Dataset):
    name = "moons"
    planar = True
    params = (_n_param(), _noise_param(0.3))
    formula = (
        r"x = 3\big((\cos\theta, \sin\theta)\ \text{or}\ (1 - \cos\theta, \tfrac12 - \sin\theta)"
        r" - (\tfrac12, \tfrac14)\big) + \varepsilon"
    )
    teaching = (
        "Two interlocking half circles: a gently curved boundary that a small hidden layer "
        "finds quickly."
    )

    def generate(self, rng):
        n = self.hp["n"]
        y = _balanced_labels(n, 2)
        theta = rng.uniform(0.0, math.pi, n)
        upper = np.column_stack((np.cos(theta), np.sin(theta)))
        lower = np.column_stack((1.0 - np.cos(theta), 0.5 - np.sin(theta)))
        x = np.where(y[:, None] == 0, upper, lower)
        x = 3.0 * (x - np.array([0.5, 0.25]))
        return _jitter(rng, x, self.hp["noise"]), y


# ----------------------------------------------------------------------- multiclass 2D sets


class Blobs(Dataset):
    name = "blobs"
    planar = True
    params = (
        _n_param(),
        _noise_param(0.0, "each coordinate (on top of the unit spread)"),
        _classes_param(),
    )
    formula = (
        r"x \sim \mathcal{N}\big(3.5(\cos\tfrac{2\pi c}{k}, \sin\tfrac{2\pi c}{k}), I\big)"
        r" + \varepsilon"
    )
    teaching = (
        "k round clouds on a circle, one per class: the multiclass warm-up, where softmax "
        "outputs and cross-entropy replace a single output unit."
    )

    def generate(self, rng):
        n, k = self.hp["n"], self.hp["classes"]
        y = _balanced_labels(n, k)
        angle = TWO_PI * y / k
        x = _polar(np.full(n, 3.5), angle) + rng.normal(size=(n, 2))
        return _jitter(rng, x, self.hp["noise"]), y


class Spirals(Dataset):
    name = "spirals"
    planar = True
    params = (
        _n_param(),
        _noise_param(0.2),
        _classes_param(),
        Param("turns", "float", 1.0, "how many times each arm winds round", low=0.25, high=4.0),
    )
    formula = (
        r"x = 5t(\cos\varphi, \sin\varphi) + \varepsilon,\quad"
        r" \varphi = 2\pi\,\mathrm{turns}\,t + 2\pi c / k"
    )
    teaching = (
        "k interleaved spiral arms, one per class: a multiclass problem whose boundaries "
        "wind round the centre."
    )

    def generate(self, rng):
        k = self.hp["classes"]
        y = _balanced_labels(self.hp["n"], k)
        return _spiral_arms(rng, y, k, self.hp["turns"], self.hp["noise"]), y


# ------------------------------------------------------------------------- regression sets


def _target_noise() -> Param:
    return _noise_param(0.05, "the target")


class Plane(Dataset):
    name = "plane"
    task = "regression"
    planar = True
    params = (_n_param(), _target_noise())
    formula = r"y = \frac{x_1 + x_2}{10} + \varepsilon,\quad x \sim U(-5, 5)^2"
    teaching = "A tilted plane: one linear neuron fits it exactly, so it checks the basics."

    def generate(self, rng):
        x = rng.uniform(-5.0, 5.0, (self.hp["n"], 2))
        y = ((x[:, 0] + x[:, 1]) / 10.0)[:, None]
        return x, _jitter(rng, y, self.hp["noise"])


# (x1, x2, sign) of the bumps of the gaussian surface: a 3 x 2 checkerboard of hills and pits
_BUMPS = (
    (-3.5, 2.5, 1.0),
    (0.0, 2.5, -1.0),
    (3.5, 2.5, 1.0),
    (-3.5, -2.5, -1.0),
    (0.0, -2.5, 1.0),
    (3.5, -2.5, -1.0),
)


class GaussianSurface(Dataset):
    name = "gaussian_surface"
    task = "regression"
    planar = True
    params = (_n_param(), _target_noise())
    formula = (
        r"y = \sum_i s_i \exp\!\left(-\frac{\lVert x - c_i \rVert^2}{2 \cdot 1.5^2}\right)"
        r" + \varepsilon"
    )
    teaching = (
        "Hills and pits on a checkerboard: each bump needs its own hidden units, so the fit "
        "shows how a network builds a surface from pieces."
    )

    def generate(self, rng):
        x = rng.uniform(-6.0, 6.0, (self.hp["n"], 2))
        y = np.zeros(len(x))
        for cx, cy, sign in _BUMPS:
            d2 = (x[:, 0] - cx) ** 2 + (x[:, 1] - cy) ** 2
            y += sign * np.exp(-d2 / (2.0 * 1.5**2))
        return x, _jitter(rng, y[:, None], self.hp["noise"])


class Sine(Dataset):
    name = "sine"
    task = "regression"
    params = (
        _n_param(),
        _noise_param(0.1, "the target"),
        Param(
            "frequency",
            "float",
            1.0,
            "angular frequency of the wave",
            low=0.0,
            low_inclusive=False,
            high=10.0,
        ),
    )
    formula = r"y = \sin(\omega x) + \varepsilon,\quad x \sim U(-6, 6)"
    teaching = (
        "A sine wave on one input: watch tanh units bend into the wave, and see how higher "
        "frequencies need more of them."
    )

    def generate(self, rng):
        x = rng.uniform(-6.0, 6.0, (self.hp["n"], 1))
        y = np.sin(self.hp["frequency"] * x)
        return x, _jitter(rng, y, self.hp["noise"])


class Polynomial(Dataset):
    name = "polynomial"
    task = "regression"
    params = (
        _n_param(),
        _target_noise(),
        Param(
            "coefficients",
            "floats",
            (0.0, -1.0, 0.0, 0.5),
            "c0, c1, c2, ...: y = c0 + c1 x + c2 x² + ... (1 to 8 numbers)",
        ),
    )
    formula = r"y = \sum_{j} c_j x^j + \varepsilon,\quad x \sim U(-2, 2)"
    teaching = (
        "A polynomial curve on one input: compare a network's fit with the features x, x², "
        "x³ that a linear model would need."
    )

    def __init__(self, **hp: Any) -> None:
        super().__init__(**hp)
        coefficients = self.hp["coefficients"]
        if not 1 <= len(coefficients) <= 8:
            raise PluginError(
                f"{self.name}.coefficients = {coefficients!r} is not allowed: "
                "expected 1 to 8 numbers"
            )

    def generate(self, rng):
        x = rng.uniform(-2.0, 2.0, (self.hp["n"], 1))
        # np.polyval wants the highest power first
        y = np.polyval(np.array(self.hp["coefficients"][::-1]), x)
        return x, _jitter(rng, y, self.hp["noise"])


# ----------------------------------------------------------------------------------- digits


@lru_cache(maxsize=1)
def _digits_table() -> np.ndarray:
    """The shipped digits as an int array (1797, 65), read once per process."""
    packed = importlib.resources.files("gradient_lab.assets").joinpath("digits.csv.gz").read_bytes()
    text = gzip.decompress(packed).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    table.setflags(write=False)
    return table


class Digits(Dataset):
    name = "digits"
    params = (
        Param(
            "shape",
            "str",
            "flat",
            "flat: 64 inputs per sample; image: 1 x 8 x 8 for convolutional layers",
            choices=("flat", "image"),
        ),
    )
    formula = r"x \in [0, 1]^{8 \times 8},\quad y \in \{0, \dots, 9\}"
    teaching = (
        "1797 handwritten digits as 8x8 grey images (UCI optical digits, CC BY 4.0): a real "
        "ten-class problem that still trains in seconds."
    )

    def n_classes(self) -> int:
        return 10

    def generate(self, rng):
        table = _digits_table()
        x = table[:, :64].astype(np.float64) / 16.0
        y = table[:, 64].copy()
        if self.hp["shape"] == "image":
            x = x.reshape(-1, 1, 8, 8)
        return x, y


# -------------------------------------------------------------------------------------- CSV

MAX_AUTO_CLASSES = 20


class CsvFile(Dataset):
    """After ``generate`` the instance knows its task, classes and column names."""

    name = "csv"
    params = (
        Param("path", "str", "", "the CSV file: a header row of column names, then numbers"),
        Param("target", "strs", (), "the column(s) to predict; empty means the last column"),
        Param(
            "task",
            "str",
            "auto",
            "auto: classification when a single target column holds "
            f"at most {MAX_AUTO_CLASSES} distinct whole numbers, otherwise regression",
            choices=("auto", "classification", "regression"),
        ),
    )
    formula = r"X = [\,\text{feature columns}\,], \quad y = \text{target column(s)}"
    teaching = (
        "Your own data: every column except the target is an input. Class labels are "
        "renumbered 0..k-1 in sorted order."
    )

    def __init__(self, **hp: Any) -> None:
        super().__init__(**hp)
        if self.hp["task"] != "auto":
            self.task = self.hp["task"]
        self.classes = 0
        self.class_values: tuple[float, ...] = ()
        self.feature_names: list[str] = []
        self.target_names: list[str] = []

    def n_classes(self) -> int:
        return self.classes if self.task == "classification" else 0

    def generate(self, rng):
        path = self.hp["path"]
        if not path:
            raise PluginError("csv: no file given; set path to a CSV file")
        header, rows, lines = _read_csv(Path(path).expanduser())
        values = _to_numbers(path, header, rows, lines)
        targets = _target_columns(path, header, self.hp["target"])
        features = [j for j in range(len(header)) if j not in targets]
        if not features:
            raise PluginError(f"{path}: no input columns left once the target is taken out")
        self.feature_names = [header[j] for j in features]
        self.target_names = [header[j] for j in targets]
        x = values[:, features]
        y = values[:, targets]
        task = self._resolve_task(path, y, lines)
        self.task = task
        if task == "regression":
            return x, y
        return x, self._class_indices(path, y[:, 0])

    def _resolve_task(self, path: str, y: np.ndarray, lines: list[int]) -> str:
        """The requested task, or for auto the one the target column looks like."""
        whole = np.all(y == np.round(y))
        asked = self.hp["task"]
        if asked == "auto":
            small = y.shape[1] == 1 and len(np.unique(y)) <= MAX_AUTO_CLASSES
            return "classification" if whole and small else "regression"
        if asked == "classification":
            if y.shape[1] != 1:
                raise PluginError(
                    f"{path}: classification needs one target column, got "
                    f"{', '.join(self.target_names)}"
                )
            if not whole:
                i = int(np.flatnonzero(y[:, 0] != np.round(y[:, 0]))[0])
                raise PluginError(
                    f"{path}, row {lines[i]}, column {self.target_names[0]!r}: class label "
                    f"{y[i, 0]:g} is not a whole number"
                )
        return asked

    def _class_indices(self, path: str, labels: np.ndarray) -> np.ndarray:
        values = np.unique(labels)
        if len(values) < 2:
            raise PluginError(
                f"{path}: column {self.target_names[0]!r} holds a single class; "
                "classification needs at least two"
            )
        self.classes = len(values)
        self.class_values = tuple(float(v) for v in values)
        return np.searchsorted(values, labels).astype(np.int64)


def _read_csv(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and each row's line number (the header is row 1); blank rows skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PluginError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise PluginError(f"{path}: is a folder, not a CSV file") from None
    except UnicodeDecodeError:
        raise PluginError(f"{path}: is not a UTF-8 text file") from None
    except OSError as exc:
        raise PluginError(f"{path}: cannot be read ({exc.strerror})") from None
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(text))
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            _check_header(path, header, reader.line_num)
            continue
        if len(row) != len(header):
            raise PluginError(
                f"{path}, row {reader.line_num}: {len(row)} cells, but the header has "
                f"{len(header)} columns"
            )
        rows.append(row)
        lines.append(reader.line_num)
    if header is None:
        raise PluginError(f"{path}: the file is empty; expected a header row and data rows")
    if not rows:
        raise PluginError(f"{path}: has a header row but no data rows")
    return header, rows, lines


def _delimiter(text: str) -> str:
    """Comma, unless the first line has none but has semicolons or tabs (spreadsheet exports)."""
    first = text.split("\n", 1)[0]
    if "," in first:
        return ","
    for candidate in (";", "\t"):
        if candidate in first:
            return candidate
    return ","


def _check_header(path: Path, header: list[str], line: int) -> None:
    seen: set[str] = set()
    for j, name in enumerate(header, start=1):
        if not name:
            raise PluginError(f"{path}, row {line}: column {j} has no name in the header")
        if name in seen:
            raise PluginError(f"{path}, row {line}: column name {name!r} appears twice")
        seen.add(name)


def _to_numbers(
    path: str, header: list[str], rows: list[list[str]], lines: list[int]
) -> np.ndarray:
    """Every cell as a float; the first cell that is not a finite number is an error."""
    out = np.empty((len(rows), len(header)))
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                shown = repr(cell.strip()) if cell.strip() else "an empty cell"
                raise PluginError(
                    f"{path}, row {lines[i]}, column {header[j]!r}: {shown} is not a number"
                )
            out[i, j] = value
    return out


def _target_columns(path: str, header: list[str], target: tuple[str, ...]) -> list[int]:
    """Indices of the target columns (the last column when none is named)."""
    if not target:
        return [len(header) - 1]
    missing = [t for t in target if t not in header]
    if missing:
        raise PluginError(
            f"{path}: no column named {missing[0]!r}; available columns: {', '.join(header)}"
        )
    if len(set(target)) != len(target):
        raise PluginError(f"{path}: a target column is named twice in {list(target)}")
    return [header.index(t) for t in target]


PLUGINS = [
    Circle,
    Xor,
    Gaussians,
    Spiral,
    Moons,
    Blobs,
    Spirals,
    Plane,
    GaussianSurface,
    Sine,
    Polynomial,
    Digits,
    CsvFile,
]
