"""Signal propagation at initialization: how the pre-activations' variance and the
back-propagated gradient change through the depth of a bias-free network, for a chosen
activation, initializer and gain, with the spread over random seeds. He's gain √2 keeps ReLU's
signal level; below it the signal vanishes geometrically, above it it explodes.

The numbers are the engine's ``signal_propagation`` (computed off the GUI thread); the gain's
field is generated from the initializer's declared ``gain``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from gradient_lab.app.editor.fields import ParamField
from gradient_lab.app.labs.lab_window import LabJob, LabWindow, labelled, param_box, spin

DEBOUNCE_MS = 300
MIN_DECADES = 4.0  # the log axes span at least this many powers of ten
MEAN = (0, 114, 178)
RUNS = (0, 114, 178, 80)
PREVIOUS = (120, 120, 120)
PRESETS = (("gain 1", 1.0), ("gain √2 (He)", math.sqrt(2.0)), ("gain 2", 2.0))
SERIES = (
    ("pre_activation_variance", "pre-activation variance Var(z) through depth"),
    ("gradient_norm", "back-propagated gradient: RMS of ∂L/∂z through depth"),
)


class SignalPropagation(LabWindow):
    """Signals: ``open_experiment(Path)``, ``computed()``."""

    title = "Signal propagation"
    summary = (
        "With ReLU and He's gain √2 the pre-activation variance and the gradient stay level "
        "through every layer, while a gain of 1 makes both vanish geometrically and a gain of "
        "2 makes them explode. Try tanh or another activation and gain, and a wider network to "
        "see the spread over the seeds (the faint lines) narrow."
    )
    example = "digits_mlp.toml"
    example_hint = "a ReLU network with He initialization; the Gradients dock shows its flow"

    def __init__(self, registry: Any = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(registry, parent)
        self.result: dict[str, np.ndarray] | None = None
        self.previous: dict[str, np.ndarray] | None = None
        self.settings: dict[str, Any] = {}
        self._rerun = self.debounce(DEBOUNCE_MS, self.compute)

        self.activation_box = QtWidgets.QComboBox()
        for name in self.registry.names("activation"):
            self.activation_box.addItem(name, name)
        self.activation_box.setCurrentIndex(max(0, self.activation_box.findData("relu")))
        self.activation_box.setToolTip("The activation of every layer")
        self.activation_box.activated.connect(lambda _i: self._rerun.start())
        self.init_box = QtWidgets.QComboBox()
        for name in self.registry.names("initializer"):
            if any(p.name == "gain" for p in self.registry.get("initializer", name).params):
                self.init_box.addItem(name, name)
        self.init_box.setCurrentIndex(max(0, self.init_box.findData("he_normal")))
        self.init_box.setToolTip("The initializer of every layer's weights (those with a gain)")
        self.init_box.activated.connect(lambda _i: self._initializer_changed())
        self.gain_slot = QtWidgets.QHBoxLayout()
        self.gain_box: QtWidgets.QWidget | None = None
        self.gain: ParamField | None = None
        self.depth_box = spin(2, 200, 20, "Number of layers", step=5)
        self.width_box = spin(8, 4096, 256, "Units in every layer (and input features)", step=64)
        self.seeds_box = spin(1, 50, 5, "Random networks drawn: the faint lines", step=1)
        for box in (self.depth_box, self.width_box, self.seeds_box):
            box.valueChanged.connect(lambda _v: self._rerun.start())
        self.controls.addWidget(labelled("activation", self.activation_box))
        self.controls.addWidget(labelled("initializer", self.init_box))
        self.controls.addLayout(self.gain_slot)
        for text, value in PRESETS:
            button = QtWidgets.QPushButton(text)
            button.setToolTip(f"Set the gain to {value:.4g}")
            button.clicked.connect(lambda _c=False, v=value: self.set_gain(v))
            self.controls.addWidget(button)
        self.controls.addWidget(labelled("depth", self.depth_box))
        self.controls.addWidget(labelled("width", self.width_box))
        self.controls.addWidget(labelled("seeds", self.seeds_box))
        self.controls.addStretch(1)

        plots = QtWidgets.QHBoxLayout()
        self.plots: dict[str, pg.PlotWidget] = {}
        self.means: dict[str, pg.PlotDataItem] = {}
        self.previous_means: dict[str, pg.PlotDataItem] = {}
        self.runs: dict[str, list[pg.PlotDataItem]] = {}
        for key, title in SERIES:
            plot = pg.PlotWidget(title=title)
            plot.setMenuEnabled(False)
            plot.setLogMode(y=True)
            plot.setLabel("bottom", "layer")
            plot.showGrid(y=True, alpha=0.25)
            plot.setLimits(minYRange=MIN_DECADES)  # a level signal looks level
            plot.addLegend(offset=(-10, 10))
            self.previous_means[key] = plot.plot(
                pen=pg.mkPen(PREVIOUS, width=2, style=QtCore.Qt.PenStyle.DashLine)
            )
            self.means[key] = plot.plot(
                pen=pg.mkPen(MEAN, width=3), symbol="o", symbolSize=6, symbolBrush=MEAN,
                name="mean over seeds",
            )  # fmt: skip
            self.runs[key] = []
            self.plots[key] = plot
            plots.addWidget(plot)
        self.body.addLayout(plots, 1)
        self.readout = QtWidgets.QLabel("")
        self.readout.setWordWrap(True)
        self.body.addWidget(self.readout)
        self._initializer_changed(rerun=False)
        self.resize(1200, 720)

    # ------------------------------------------------------------------ settings
    def _initializer_changed(self, rerun: bool = True) -> None:
        """The gain's field from the new initializer's declaration, at its default."""
        if self.gain_box is not None:
            self.gain_slot.removeWidget(self.gain_box)
            self.gain_box.deleteLater()
        name = self.init_box.currentData()
        param = next(p for p in self.registry.get("initializer", name).params if p.name == "gain")
        self.gain_box, self.gain = param_box(param, param.default, self.registry)
        self.gain.changed.connect(lambda _v: self._rerun.start())
        self.gain_slot.addWidget(self.gain_box)
        if rerun:
            self._rerun.start()

    def set_gain(self, value: float) -> None:
        assert self.gain is not None
        self.gain.set_value(float(value))
        self._rerun.start()

    def current_settings(self) -> dict[str, Any]:
        """The keyword arguments of ``signal_propagation`` the controls stand for."""
        assert self.gain is not None
        return {
            "activation": self.activation_box.currentData(),
            "init_gain": float(self.gain.value),
            "depth": self.depth_box.value(),
            "width": self.width_box.value(),
            "seeds": self.seeds_box.value(),
            "initializer": self.init_box.currentData(),
        }

    # ------------------------------------------------------------------ computing
    def compute(self) -> None:
        self._rerun.stop()
        settings = self.current_settings()
        registry = self.registry

        def work(job: LabJob) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
            from gradient_lab.engine.instruments.diagnostics import signal_propagation

            return settings, signal_propagation(registry=registry, **settings)

        self.run_job(
            work,
            self._show,
            f"Propagating through {settings['depth']} layers of {settings['width']} units, "
            f"{settings['seeds']} seeds…",
        )

    def _show(self, done: tuple[dict[str, Any], dict[str, np.ndarray]]) -> None:
        settings, result = done
        if self.result is not None and self.settings != settings:
            self.previous = self.result
        self.settings, self.result = settings, result
        layers = result["layer"]
        for key, _title in SERIES:
            plot = self.plots[key]
            runs = result[f"{key}_runs"]
            while len(self.runs[key]) > len(runs):
                plot.removeItem(self.runs[key].pop())
            while len(self.runs[key]) < len(runs):
                self.runs[key].append(plot.plot(pen=pg.mkPen(RUNS, width=1)))
            for curve, run in zip(self.runs[key], runs, strict=True):
                curve.setData(layers, run)
            self.means[key].setData(layers, result[key])
            if self.previous is not None:
                curve = self.previous_means[key]
                if not curve.name():
                    curve.opts["name"] = "previous settings"
                    plot.getPlotItem().legend.addItem(curve, "previous settings")
                curve.setData(self.previous["layer"], self.previous[key])
        self._describe(settings, result)

    def _describe(self, settings: dict[str, Any], result: dict[str, np.ndarray]) -> None:
        var, grad = result["pre_activation_variance"], result["gradient_norm"]
        previous = ""
        if self.previous is not None:
            p = self.previous
            previous = (
                f" Dashed: the previous settings ({p['activation']}, {p['initializer']}, gain "
                f"{float(p['init_gain']):.4g})."
            )
        self.readout.setText(
            f"{settings['activation']}, {settings['initializer']} with gain "
            f"{settings['init_gain']:.4g}: variance {var[0]:.3g} at layer 1 and {var[-1]:.3g} "
            f"at layer {len(var)}; gradient {grad[0]:.3g} at layer 1 and {grad[-1]:.3g} at "
            f"layer {len(grad)} (means over {settings['seeds']} seeds).{previous}"
        )
