"""The theory labs, each a window of its own: ``LABS`` lists (title, class) for a Labs menu.

Each lab is made with ``cls(registry, parent)`` (registry None: the default one) and emits
``open_experiment(Path)`` when its Open-the-experiment button is pressed."""

from gradient_lab.app.labs.approximation import Approximation
from gradient_lab.app.labs.lab_window import LabWindow
from gradient_lab.app.labs.ntk_width import NTKWidth
from gradient_lab.app.labs.optimizer_race import OptimizerRace
from gradient_lab.app.labs.signal_propagation import SignalPropagation

LABS: list[tuple[str, type[LabWindow]]] = [
    (OptimizerRace.title, OptimizerRace),
    (SignalPropagation.title, SignalPropagation),
    (NTKWidth.title, NTKWidth),
    (Approximation.title, Approximation),
]

__all__ = [
    "LABS",
    "Approximation",
    "LabWindow",
    "NTKWidth",
    "OptimizerRace",
    "SignalPropagation",
]
