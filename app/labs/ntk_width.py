"""The neural tangent kernel against width: one hidden layer of each width trained by full-batch
gradient descent on the same points, and how far its tangent kernel Θ = J Jᵀ moved during
training. In the NTK parameterization the change falls as the width grows (about as
1/√width): a wide network trains like a linear model in its kernel at initialization.

The numbers are the engine's ``ntk_width_experiment``, run one width at a time off the GUI
thread, so each width is drawn when it is done and Cancel stops before the next one. The
activation, parameterization and learning rate fields are generated from the ``mlp``
architecture's and the ``sgd`` optimizer's declared parameters."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from gradient_lab.app.labs.lab_window import LabJob, LabWindow, labelled, param_box, spin
from gradient_lab.engine.plugin_api import PluginError

DEFAULT_WIDTHS = (64, 256, 1024)
MEAN = (0, 114, 178)
SEED = (0, 114, 178, 90)
LOSS = (213, 94, 0)


class NTKWidth(LabWindow):
    """Signals: ``open_experiment(Path)``, ``computed()`` (every width is in)."""

    title = "Neural tangent kernel"
    summary = (
        "Networks with one hidden layer of each width are trained by full-batch gradient "
        "descent on the same 20 points, and the plot shows how far each one's tangent kernel "
        "Θ = J Jᵀ moved. The wider the layer, the less it moves (about as 1/√width) while "
        "the loss falls just as well: a wide network learns like a fixed kernel machine."
    )
    example = "spiral_sgd.toml"
    example_hint = (
        "mean squared error and plain gradient descent, the NTK's setting: widen its layers "
        "and the Weights dock's histograms barely move"
    )

    def __init__(self, registry: Any = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(registry, parent)
        self.parts: list[dict[str, np.ndarray]] = []
        self.widths_edit = QtWidgets.QLineEdit(", ".join(str(w) for w in DEFAULT_WIDTHS))
        self.widths_edit.setToolTip("Hidden-layer widths, separated by commas")
        self.widths_edit.setMinimumWidth(160)
        self.steps_box = spin(10, 20000, 500, "Full-batch gradient-descent steps", step=100)
        self.seeds_box = spin(1, 10, 2, "Networks drawn per width (the faint lines)")
        mlp = {p.name: p for p in self.registry.get("architecture", "mlp").params}
        sgd = {p.name: p for p in self.registry.get("optimizer", "sgd").params}
        activation_box, self.activation = param_box(mlp["activation"], "relu", self.registry)
        param_box_, self.parameterization = param_box(mlp["parameterization"], "ntk", self.registry)
        lr_box, self.lr = param_box(sgd["lr"], 1.0, self.registry)
        self.width_param = mlp["width"]
        self.compute_button = QtWidgets.QPushButton("Compute")
        self.compute_button.setToolTip("Train every width and measure its kernel's change")
        self.compute_button.clicked.connect(self.compute)
        self.controls.addWidget(labelled("widths", self.widths_edit))
        self.controls.addWidget(labelled("steps", self.steps_box))
        self.controls.addWidget(lr_box)
        self.controls.addWidget(labelled("seeds", self.seeds_box))
        self.controls.addWidget(activation_box)
        self.controls.addWidget(param_box_)
        self.controls.addWidget(self.compute_button)
        self.controls.addStretch(1)

        self.change_plot = pg.PlotWidget(
            title="relative change of the kernel: ‖Θ_T − Θ_0‖_F / ‖Θ_0‖_F"
        )
        self.loss_plot = pg.PlotWidget(title="training loss (MSE) after the last step, per seed")
        for plot in (self.change_plot, self.loss_plot):
            plot.setMenuEnabled(False)
            plot.setLabel("bottom", "width")
            plot.showGrid(x=True, y=True, alpha=0.25)
        self.change_plot.setLogMode(x=True, y=True)
        self.change_plot.addLegend(offset=(-10, 10))
        self.loss_plot.setLogMode(x=True, y=False)
        self.change_runs: list[pg.PlotDataItem] = []
        self.loss_runs: list[pg.PlotDataItem] = []
        self.change_mean = self.change_plot.plot(
            pen=pg.mkPen(MEAN, width=3), symbol="o", symbolSize=8, symbolBrush=MEAN,
            name="mean over seeds",
        )  # fmt: skip
        plots = QtWidgets.QHBoxLayout()
        plots.addWidget(self.change_plot, 3)
        plots.addWidget(self.loss_plot, 2)
        self.body.addLayout(plots, 1)
        self.readout = QtWidgets.QLabel("")
        self.readout.setWordWrap(True)
        self.body.addWidget(self.readout)
        self.resize(1200, 680)

    # ------------------------------------------------------------------ settings
    def widths(self) -> list[int]:
        """The typed widths, each checked by the ``mlp`` architecture's ``width`` parameter."""
        texts = [t for t in re.split(r"[,\s]+", self.widths_edit.text()) if t]
        if not texts:
            raise PluginError("widths: type at least one, e.g. 64, 256, 1024")
        values = []
        for text in texts:
            try:
                number: Any = int(text)
            except ValueError:
                number = text
            values.append(int(self.width_param.validate(number, "widths")))
        return values

    def current_settings(self) -> dict[str, Any]:
        """The keyword arguments of ``ntk_width_experiment`` the controls stand for."""
        return {
            "widths": tuple(self.widths()),
            "steps": self.steps_box.value(),
            "lr": float(self.lr.value),
            "activation": self.activation.value,
            "parameterization": self.parameterization.value,
            "seeds": self.seeds_box.value(),
        }

    # ------------------------------------------------------------------ computing
    def compute(self) -> None:
        try:
            settings = self.current_settings()
        except PluginError as exc:
            self.show_error(str(exc))
            return
        registry = self.registry
        widths = settings.pop("widths")
        self.parts = []
        self._draw([])

        def work(job: LabJob) -> list[dict[str, np.ndarray]]:
            from gradient_lab.engine.instruments.theory import ntk_width_experiment

            parts: list[dict[str, np.ndarray]] = []
            for i, width in enumerate(widths):
                job.check()
                job.report(f"Training width {width} ({i + 1} of {len(widths)})…", list(parts))
                parts.append(ntk_width_experiment((width,), registry=registry, **settings))
            return parts

        self.run_job(work, self._finish, "Training…", self._progress)

    def _progress(self, message: str, parts: Any) -> None:
        self.status.setText(message)
        if parts is not None and len(parts) != len(self.parts):
            self.parts = parts
            self._draw(parts)

    def _finish(self, parts: list[dict[str, np.ndarray]]) -> None:
        self.parts = parts
        self._draw(parts)

    # ------------------------------------------------------------------ drawing
    def arrays(self, parts: list[dict[str, np.ndarray]] | None = None) -> dict[str, np.ndarray]:
        """The widths done so far, joined as ``ntk_width_experiment`` would give them for all
        of them at once: ``widths``, ``relative_change`` (W,), ``relative_change_runs`` and
        ``final_loss`` (seeds, W)."""
        parts = self.parts if parts is None else parts
        if not parts:
            empty = np.zeros((0,))
            return {
                "widths": empty,
                "relative_change": empty,
                "relative_change_runs": np.zeros((0, 0)),
                "final_loss": np.zeros((0, 0)),
            }
        return {
            "widths": np.concatenate([p["widths"] for p in parts]),
            "relative_change": np.concatenate([p["relative_change"] for p in parts]),
            "relative_change_runs": np.hstack([p["relative_change_runs"] for p in parts]),
            "final_loss": np.hstack([p["final_loss"] for p in parts]),
        }

    def _draw(self, parts: list[dict[str, np.ndarray]]) -> None:
        arrays = self.arrays(parts)
        widths = arrays["widths"]
        self._lines(self.change_plot, self.change_runs, widths, arrays["relative_change_runs"])
        self._lines(self.loss_plot, self.loss_runs, widths, arrays["final_loss"], LOSS)
        self.change_mean.setData(widths, arrays["relative_change"])
        ticks = [[(math.log10(w), str(int(w))) for w in widths], []]  # on the log axis
        for plot in (self.change_plot, self.loss_plot):
            plot.getPlotItem().getAxis("bottom").setTicks(ticks if len(widths) else None)
        if not len(widths):
            self.readout.setText("")
            return
        losses = arrays["final_loss"][np.isfinite(arrays["final_loss"])]
        if len(losses):  # from 0, so equal losses look equal
            self.loss_plot.setYRange(0.0, float(losses.max()), padding=0.05)
        self.readout.setText(
            "; ".join(
                f"width {int(w)}: the kernel moved {c:.3g}, loss {loss:.3g}"
                for w, c, loss in zip(
                    widths, arrays["relative_change"], arrays["final_loss"][0], strict=True
                )
            )
            + " (the mean change over the seeds; the first seed's loss)."
        )

    @staticmethod
    def _lines(
        plot: pg.PlotWidget,
        curves: list[pg.PlotDataItem],
        widths: np.ndarray,
        runs: np.ndarray,
        colour: tuple[int, ...] = SEED,
    ) -> None:
        """One faint line per seed across the widths."""
        while len(curves) > len(runs):
            plot.removeItem(curves.pop())
        while len(curves) < len(runs):
            name = "each seed" if not curves else None
            curves.append(
                plot.plot(
                    pen=pg.mkPen(colour, width=1), symbol="o", symbolSize=5,
                    symbolBrush=colour, symbolPen=None, name=name,
                )
            )  # fmt: skip
        for curve, run in zip(curves, runs, strict=True):
            curve.setData(widths, run)
