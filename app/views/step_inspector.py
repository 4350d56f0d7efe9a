"""The step inspector: the formula of the phase just run for one neuron, with the real numbers
of the step in progress (z = Σ wᵢxᵢ + b = …; δ = ∂L/∂a · f′(z) = …; w ← w − η·g = …), rendered
as formulas. The numbers come from the engine's ``neuron_detail`` and the snapshot."""

from __future__ import annotations

from typing import Any

from PySide6 import QtWidgets

from gradient_lab.engine.service.neuron_detail import neuron_detail

SHOWN_TERMS = 4  # terms of a sum written out before "…"


def num(value: float) -> str:
    text = f"{value:.4g}"
    return f"({text})" if value < 0 else text


def sub(name: str, *index: Any) -> str:
    return f"{name}<sub>{','.join(str(i) for i in index)}</sub>"


class StepInspector(QtWidgets.QWidget):
    """Pick a neuron (here, or by clicking it in the diagram) and a sample of the minibatch;
    each phase shows its formula for them."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer = QtWidgets.QComboBox()
        self.layer.setToolTip("The layer of the neuron to explain")
        self.unit = QtWidgets.QSpinBox()
        self.unit.setToolTip("The neuron of that layer")
        self.sample = QtWidgets.QSpinBox()
        self.sample.setToolTip("The sample of the minibatch whose numbers are shown")
        self.text = QtWidgets.QTextBrowser()
        self.text.setObjectName("step formulas")
        font = self.text.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)  # read from the back of a classroom
        self.text.setFont(font)
        pick = QtWidgets.QHBoxLayout()
        for label, widget in (
            ("layer", self.layer),
            ("neuron", self.unit),
            ("sample", self.sample),
        ):
            pick.addWidget(QtWidgets.QLabel(label))
            pick.addWidget(widget)
        pick.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(pick)
        layout.addWidget(self.text, 1)
        self.layer.currentIndexChanged.connect(self._layer_changed)
        for box in (self.unit, self.sample):
            box.valueChanged.connect(self._redraw)
        self.facts: Any = None
        self.snapshot: Any = None
        self.phase: str | None = None

    def set_facts(self, facts: Any) -> None:
        self.facts = facts
        self.layer.blockSignals(True)
        self.layer.clear()
        for k, node in enumerate(facts.model.nodes):
            if "W" in node.slots and len(node.slots["W"].shape) == 2:
                self.layer.addItem(f"{type(node.layer).name} {k}", k)
        self.layer.blockSignals(False)
        self._layer_changed()

    def select(self, layer: int, unit: int) -> None:
        """Explain ``unit`` of ``layer`` (a click on a neuron of the diagram)."""
        index = self.layer.findData(layer)
        if index >= 0:
            self.layer.setCurrentIndex(index)
            self.unit.setValue(unit)

    def _layer_changed(self) -> None:
        k = self.layer.currentData()
        if self.facts is not None and k is not None:
            self.unit.setMaximum(self.facts.model.nodes[k].slots["W"].shape[1] - 1)
        self._redraw()

    def show_snapshot(self, snapshot: Any, phase: str | None) -> None:
        self.snapshot, self.phase = snapshot, phase
        if snapshot.batch_inputs is not None:
            self.sample.setMaximum(len(snapshot.batch_inputs) - 1)
        self._redraw()

    # ------------------------------------------------------------------ formulas
    def _redraw(self) -> None:
        snap, k = self.snapshot, self.layer.currentData()
        if snap is None or k is None:
            return
        j, n = self.unit.value(), self.sample.value()
        kind = (self.phase or "").partition(" ")[0]
        if snap.batch_inputs is None:
            self.text.setHtml(self._update(snap, k, j) if kind == "update" else _idle(snap))
            return
        detail = neuron_detail(snap, k, j, min(n, len(snap.batch_inputs) - 1))
        if kind == "backward":
            html = self._backward(detail)
        elif kind == "loss":
            html = (
                self._backward(detail) if k == len(snap.facts.model.nodes) - 1 else _forward(detail)
            )
        else:
            html = _forward(detail)
        title = (
            f"<p><i>{self.phase or 'step in progress'}</i> — minibatch of {detail.batch_size}, "
            f"sample {detail.sample}</p>"
        )
        self.text.setHtml(title + html)

    def _backward(self, d: Any) -> str:
        terms = [f"{num(x)}·{num(d.delta)}" for x in d.inputs[:SHOWN_TERMS]]
        grads = ", ".join(
            f"∂L/∂{sub('w', i, d.unit)} = {num(g)}"
            for i, g in enumerate(d.weight_grads[:SHOWN_TERMS])
        )
        return (
            f"<p>δ = ∂L/∂a · f′(z) = {num(d.upstream)} × {num(d.slope)} = <b>{num(d.delta)}</b></p>"
            f"<p>for this sample, ∂L/∂{sub('w', 'i', d.unit)} = {sub('x', 'i')} δ: "
            f"{', '.join(terms)}{' …' if len(d.inputs) > SHOWN_TERMS else ''}</p>"
            f"<p>over the minibatch, ∂L/∂{sub('w', 'i', d.unit)} = Σ<sub>n</sub> "
            f"{sub('x', 'n,i')} {sub('δ', 'n')}: {grads}; "
            f"∂L/∂{sub('b', d.unit)} = {num(d.bias_grad)}</p>"
        )

    def _update(self, snap: Any, k: int, j: int) -> str:
        key = snap.facts.model.nodes[k].slots["W"].key
        new = snap.parameters()[key][:, j]
        step = snap.updates()[key][:, j]
        grad = snap.gradients()[key][:, j]
        rows = []
        for i in range(min(SHOWN_TERMS, len(new))):
            old = new[i] - step[i]
            rule = (
                f"{num(old)} − {num(snap.lr)} × {num(grad[i])}"
                if snap.facts.optimizer_name == "sgd" and not _has_momentum(snap)
                else f"{num(old)} + {num(step[i])}"
            )
            rows.append(f"<p>{sub('w', i, j)} ← {rule} = <b>{num(new[i])}</b></p>")
        name = snap.facts.optimizer_name
        head = (
            "<p><i>update</i>: w ← w − η·g (η = learning rate, g = gradient)</p>"
            if name == "sgd" and not _has_momentum(snap)
            else f"<p><i>update</i>: w ← w + Δw, Δw from {name}'s rule (η = {num(snap.lr)})</p>"
        )
        return head + "".join(rows)


def _forward(d: Any) -> str:
    terms = [f"{num(w)}·{num(x)}" for w, x in zip(d.weights, d.inputs, strict=True)]
    shown = " + ".join(terms[:SHOWN_TERMS]) + (" + …" if len(terms) > SHOWN_TERMS else "")
    return (
        f"<p>{sub('z', d.unit)} = Σ<sub>i</sub> {sub('w', 'i', d.unit)} {sub('x', 'i')} + "
        f"{sub('b', d.unit)} = {shown} + {num(d.bias)} = <b>{num(d.z)}</b></p>"
        f"<p>{sub('a', d.unit)} = {d.activation}({sub('z', d.unit)}) = <b>{num(d.a)}</b></p>"
    )


def _idle(snap: Any) -> str:
    return (
        f"<p>Step {snap.step}: between steps. Press → to select the next minibatch and step "
        "through its phases; each shows its formula here with the real numbers.</p>"
    )


def _has_momentum(snap: Any) -> bool:
    """Plain SGD (w − η·g) only without momentum and weight decay."""
    hp = snap.optimizer_hp
    return bool(hp.get("momentum") or hp.get("weight_decay"))
