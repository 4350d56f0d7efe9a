"""The experiment editor: data, model and training as forms generated from the plugins' declared
parameters, so a new plugin appears with a working form and no change here.

The editor keeps the experiment as its document (the TOML tables) and checks every change with
the engine's own parser: a refused value is marked on its field with the engine's message. A
change of the learning rate, a momentum or any other optimizer or regularizer hyperparameter,
or the batch size, applies live to the running session (a recorded edit, so a rewind replays
it); any other change waits for "Re-initialize", which asks first. Every change is one step on
the undo stack (Ctrl+Z, Ctrl+Y).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from gradient_lab.app.editor.fields import ParamField
from gradient_lab.app.formula import latex_to_html
from gradient_lab.engine.plugin_api import Param
from gradient_lab.engine.training.data import FEATURES
from gradient_lab.engine.training.errors import ExperimentError

MAX_LAYERS = 8
NEW_LAYER = {"type": "dense", "units": 4, "activation": "tanh"}
# the experiment's own fields, typed for their widgets (the parser checks their ranges)
SEED = Param("seed", "int", 0, "seed of every random generator: the same seed, the same run")
BATCH = Param("batch_size", "int", 32, "samples per step (applies live, from the next epoch)")
EPOCHS = Param("epochs", "int", 100, "passes over the training data")
VALIDATION = Param("validation_fraction", "float", 0.2, "share of the data held out")
Path = tuple[Any, ...]


def choice(value: Any) -> tuple[str, dict[str, Any]]:
    """A plugin choice as written (a name, or a table with a name) as (name, options)."""
    if isinstance(value, dict):
        return value["name"], {k: v for k, v in value.items() if k != "name"}
    return str(value), {}


def written(name: str, options: dict[str, Any]) -> Any:
    return {"name": name, **options} if options else name


def field_name(path: Path) -> str:
    """("model", "layers", 1, "units") as the parser names it: model.layers[1].units."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def live_change(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, str, Any] | None:
    """(target, name, value) when ``new`` differs from ``old`` only by one value a running
    session can take as an edit; None when it needs a re-initialization."""
    a, b = old["training"], new["training"]
    rest_a = {k: v for k, v in a.items() if k not in ("optimizer", "regularizers", "batch_size")}
    rest_b = {k: v for k, v in b.items() if k not in ("optimizer", "regularizers", "batch_size")}
    if {k: v for k, v in old.items() if k != "training"} != {
        k: v for k, v in new.items() if k != "training"
    } or rest_a != rest_b:
        return None
    changes: list[tuple[str, str, Any]] = []
    if a.get("batch_size") != b.get("batch_size"):
        changes.append(("batch_size", "", b.get("batch_size")))
    pairs = [("optimizer", a["optimizer"], b["optimizer"])]
    regs_a, regs_b = a.get("regularizers", []), b.get("regularizers", [])
    if len(regs_a) != len(regs_b):
        return None
    pairs += [
        (f"regularizers[{i}]", x, y) for i, (x, y) in enumerate(zip(regs_a, regs_b, strict=True))
    ]
    for target, x, y in pairs:
        (name_x, opts_x), (name_y, opts_y) = choice(x), choice(y)
        if name_x != name_y:
            return None
        for key in set(opts_x) | set(opts_y):
            if opts_x.get(key) != opts_y.get(key):
                changes.append((target, key, opts_y.get(key)))
    return changes[0] if len(changes) == 1 else None


class DocumentChange(QtGui.QUndoCommand):
    """One change of the document; undo and redo hand the document to the editor."""

    def __init__(self, editor: ExperimentEditor, old: dict, new: dict, text: str) -> None:
        super().__init__(text)
        self.editor, self.old, self.new = editor, old, new

    def redo(self) -> None:
        self.editor.adopt(self.new, self.old)

    def undo(self) -> None:
        self.editor.adopt(self.old, self.new)


class ExperimentEditor(QtWidgets.QScrollArea):
    """``live_edit(target, name, value)``: apply to the running session ("batch_size" as the
    target for the batch size); ``reinitialize(experiment)``: start again with this experiment
    (the user confirmed); ``changed(experiment)``: the working experiment, whenever it is valid
    (what Save writes)."""

    live_edit = QtCore.Signal(str, str, object)
    reinitialize = QtCore.Signal(object)
    changed = QtCore.Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setMinimumWidth(360)
        self.undo_stack = QtGui.QUndoStack(self)
        self.registry: Any = None
        self.doc: dict[str, Any] = {}
        self.running: dict[
            str, Any
        ] = {}  # the document the session was built from, plus live edits
        self.fields: dict[str, ParamField] = {}
        self.confirm: Callable[[], bool] = self._ask
        self.pending = QtWidgets.QLabel()
        self.pending.setWordWrap(True)
        self.apply_button = QtWidgets.QPushButton("Re-initialize")
        self.apply_button.setToolTip("Start training again from new weights with these changes")
        self.apply_button.clicked.connect(self.request_reinitialize)

    # ------------------------------------------------------------------ documents
    def set_experiment(self, experiment: Any, registry: Any) -> None:
        """A session was built from ``experiment``: edit it from here."""
        self.registry = registry
        self.doc = _experiments().experiment_to_dict(experiment)
        self.running = copy.deepcopy(self.doc)
        self.undo_stack.clear()
        self._rebuild()

    def set_registry(self, registry: Any) -> None:
        """New plugins (a drop-in saved, reloaded): the forms offer them; the document and the
        undo steps stay."""
        self.registry = registry
        self._rebuild()

    def propose(self, change: Callable[[dict[str, Any]], None], text: str) -> bool:
        """Apply ``change`` to a copy of the document; take it (as an undoable step) if the
        engine accepts the result, else mark the field the engine names."""
        new = copy.deepcopy(self.doc)
        change(new)
        try:
            _experiments().parse_experiment(new, self.registry)
        except ExperimentError as exc:
            self._mark(exc.field, exc.detail.split(": ", 1)[-1] if exc.detail else str(exc))
            return False
        self.undo_stack.push(DocumentChange(self, self.doc, new, text))
        return True

    def adopt(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Make ``new`` the document (a change, an undo or a redo) and apply what can be."""
        structure = _structure(new) != _structure(old)
        self.doc = new
        experiment = _experiments().parse_experiment(new, self.registry)
        self.changed.emit(experiment)
        live = live_change(self.running, new)
        if live is not None:
            self.running = copy.deepcopy(new)
            self.live_edit.emit(*live)
        if structure:
            self._rebuild()
        else:
            self._show_values()
        self._show_pending()

    def request_reinitialize(self) -> None:
        if self.doc == self.running or not self.confirm():
            return
        self.running = copy.deepcopy(self.doc)
        self._show_pending()
        self.reinitialize.emit(_experiments().parse_experiment(self.doc, self.registry))

    def _ask(self) -> bool:
        answer = QtWidgets.QMessageBox.question(
            self,
            "Re-initialize?",
            "These changes need new weights: training starts again from step 0. Go on?",
        )
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------------ the forms
    def _rebuild(self) -> None:
        self.fields = {}
        body = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(body)
        layout.addWidget(self._data_section(body))
        layout.addWidget(self._model_section(body))
        layout.addWidget(self._training_section(body))
        self.pending = QtWidgets.QLabel(body)
        self.pending.setWordWrap(True)
        self.apply_button = QtWidgets.QPushButton("Re-initialize", body)
        self.apply_button.setToolTip("Start training again from new weights with these changes")
        self.apply_button.clicked.connect(self.request_reinitialize)
        layout.addWidget(self.pending)
        layout.addWidget(self.apply_button)
        layout.addStretch(1)
        self.setWidget(body)
        self._show_pending()

    def _field(
        self, form: QtWidgets.QFormLayout, param: Param, path: Path, label: str = ""
    ) -> None:
        """A field for ``param`` editing the value at ``path`` of the document."""
        value = _get(self.doc, path, param.default)
        field = ParamField(param, value, self.registry, form.parentWidget())
        field.changed.connect(
            lambda v, path=path: self.propose(
                lambda d: _set(d, path, v), f"{field_name(path)} = {v}"
            )
        )
        form.addRow(label or param.name.replace("_", " "), field.widget)
        self.fields[field_name(path)] = field

    def _plugin(
        self, form: QtWidgets.QFormLayout, kind: str, path: Path, label: str, optional: bool = False
    ) -> None:
        """A plugin choice: the list of plugins of ``kind`` ("none" first when ``optional``),
        then its own parameters' form."""
        name, options = choice(_get(self.doc, path, "")) if _get(self.doc, path, None) else ("", {})
        box = QtWidgets.QComboBox(form.parentWidget())
        box.setObjectName(f"choice {field_name(path)}")
        if optional:
            box.addItem("none", "")
        for option in self.registry.names(kind):
            box.addItem(option, option)
        box.setCurrentIndex(max(0, box.findData(name)))
        cls = self.registry.get(kind, name) if name in self.registry.names(kind) else None
        if cls is not None:
            box.setToolTip(cls.teaching or cls.__doc__ or "")
        box.activated.connect(
            lambda _i, path=path: self.propose(
                lambda d: _set(d, path, box.currentData()),
                f"{field_name(path)} = {box.currentData() or 'none'}",
            )
        )
        form.addRow(label, box)
        if cls is not None and cls.formula:
            form.addRow("", formula_label(cls, form.parentWidget()))
        for param in () if cls is None else cls.params:
            if param.type in ("dict", "floats", "strs"):
                continue
            value = options.get(param.name, param.default)
            self._option(form, param, path, value)

    def _option(self, form: QtWidgets.QFormLayout, param: Param, path: Path, value: Any) -> None:
        field = ParamField(param, value, self.registry, form.parentWidget())

        def change(d: dict[str, Any], v: Any, path: Path = path, name: str = param.name) -> None:
            plugin, options = choice(_get(d, path, ""))
            _set(d, path, written(plugin, {**options, name: v}))

        field.changed.connect(
            lambda v, path=path: self.propose(
                lambda d: change(d, v), f"{field_name(path)}.{param.name} = {v}"
            )
        )
        form.addRow(f"   {param.name.replace('_', ' ')}", field.widget)
        self.fields[f"{field_name(path)}.{param.name}"] = field

    def _data_section(self, parent: QtWidgets.QWidget) -> QtWidgets.QGroupBox:
        group = QtWidgets.QGroupBox("Data", parent)
        form = QtWidgets.QFormLayout(group)
        data = self.doc["data"]
        box = QtWidgets.QComboBox(group)
        box.setObjectName("choice data.dataset")
        for option in self.registry.names("dataset"):
            box.addItem(option, option)
        box.setCurrentIndex(max(0, box.findData(data["dataset"])))
        box.activated.connect(lambda _i: self._choose_dataset(box.currentData()))
        form.addRow("dataset", box)
        cls = self.registry.get("dataset", data["dataset"])
        box.setToolTip(cls.teaching or "")
        for param in cls.params:
            if param.type not in ("dict", "floats", "strs"):
                self._field(form, param, ("data", param.name))
        self._field(form, VALIDATION, ("data", "validation_fraction"))
        if getattr(cls, "planar", False):
            features = QtWidgets.QWidget(group)
            row = QtWidgets.QGridLayout(features)
            row.setContentsMargins(0, 0, 0, 0)
            chosen = set(data.get("features", ["x1", "x2"]))
            for i, name in enumerate(FEATURES):
                toggle = QtWidgets.QCheckBox(name, features)
                toggle.setObjectName(f"feature {name}")
                toggle.setChecked(name in chosen)
                toggle.toggled.connect(lambda on, name=name: self._toggle_feature(name, on))
                row.addWidget(toggle, i // 3, i % 3)
            form.addRow("features", features)
        regenerate = QtWidgets.QPushButton("Regenerate", group)
        regenerate.setToolTip("Draw a new sample of the data set (a new data seed)")
        regenerate.clicked.connect(lambda: self.propose(_next_data_seed, "regenerate the data"))
        form.addRow("", regenerate)
        return group

    def _choose_dataset(self, name: str) -> None:
        planar = bool(getattr(self.registry.get("dataset", name), "planar", False))
        if not self.propose(lambda d: _new_dataset(d, name, planar), f"data set {name}"):
            self._rebuild()

    def _toggle_feature(self, name: str, on: bool) -> None:
        def change(d: dict[str, Any]) -> None:
            now = set(d["data"].get("features", ["x1", "x2"])) - {name}
            d["data"]["features"] = [f for f in FEATURES if f in now or (on and f == name)]

        if not self.propose(change, f"feature {name} {'on' if on else 'off'}"):
            self._rebuild()

    def _model_section(self, parent: QtWidgets.QWidget) -> QtWidgets.QGroupBox:
        group = QtWidgets.QGroupBox("Model", parent)
        form = QtWidgets.QFormLayout(group)
        model = self.doc["model"]
        layers = model.get("layers")
        if layers is None:
            self._plugin(form, "architecture", ("model", "architecture"), "architecture")
        else:
            for i, layer in enumerate(layers):
                self._layer_row(form, i, layer, last=i == len(layers) - 1)
            buttons = QtWidgets.QWidget(group)
            row = QtWidgets.QHBoxLayout(buttons)
            row.setContentsMargins(0, 0, 0, 0)
            add = QtWidgets.QPushButton("+ layer", buttons)
            add.setObjectName("add layer")
            add.clicked.connect(self.add_layer)
            remove = QtWidgets.QPushButton("− layer", buttons)
            remove.setObjectName("remove layer")
            remove.clicked.connect(self.remove_layer)
            remove.setEnabled(len(layers) > 1)
            row.addWidget(add)
            row.addWidget(remove)
            form.addRow("hidden layers", buttons)
        self._plugin(form, "initializer", ("model", "init"), "initializer")
        return group

    def _layer_row(self, form: QtWidgets.QFormLayout, i: int, layer: dict, last: bool) -> None:
        label = f"layer {i}" + (" (output)" if last else "")
        box = QtWidgets.QComboBox(form.parentWidget())
        box.setObjectName(f"choice model.layers[{i}].type")
        for option in self.registry.names("layer"):
            box.addItem(option, option)
        box.setCurrentIndex(max(0, box.findData(layer["type"])))
        box.activated.connect(
            lambda _i, i=i: self.propose(
                lambda d: d["model"]["layers"].__setitem__(i, {"type": box.currentData()}),
                f"layer {i} type",
            )
        )
        form.addRow(label, box)
        cls = self.registry.get("layer", layer["type"])
        for param in cls.params:
            if param.type in ("dict", "floats", "strs"):
                continue
            if param.name == "units" and not last:
                self._units_row(form, param, i)
            else:
                self._field(form, param, ("model", "layers", i, param.name), f"   {param.name}")

    def _units_row(self, form: QtWidgets.QFormLayout, param: Param, i: int) -> None:
        """Units with − and + beside them, as the network diagram counts them."""
        path = ("model", "layers", i, "units")
        row = QtWidgets.QWidget(form.parentWidget())
        layout = QtWidgets.QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        field = ParamField(param, _get(self.doc, path, param.default), self.registry, row)
        field.changed.connect(
            lambda v: self.propose(lambda d: _set(d, path, v), f"layer {i} units")
        )
        for text, step in (("−", -1), ("+", 1)):
            button = QtWidgets.QToolButton(row)
            button.setText(text)
            button.setObjectName(f"units {i} {text}")
            button.clicked.connect(lambda _c=False, step=step: self.change_units(i, step))
            layout.addWidget(button)
        layout.insertWidget(1, field.widget)
        form.addRow("   units", row)
        self.fields[field_name(path)] = field

    def _training_section(self, parent: QtWidgets.QWidget) -> QtWidgets.QGroupBox:
        group = QtWidgets.QGroupBox("Training", parent)
        form = QtWidgets.QFormLayout(group)
        self._plugin(form, "loss", ("training", "loss"), "loss")
        self._plugin(form, "optimizer", ("training", "optimizer"), "optimizer")
        self._plugin(form, "lr_schedule", ("training", "schedule"), "schedule", optional=True)
        for i, _ in enumerate(self.doc["training"].get("regularizers", [])):
            self._plugin(form, "regularizer", ("training", "regularizers", i), f"regularizer {i}")
        regs = QtWidgets.QWidget(group)
        row = QtWidgets.QHBoxLayout(regs)
        row.setContentsMargins(0, 0, 0, 0)
        add = QtWidgets.QPushButton("+ regularizer", regs)
        add.clicked.connect(self.add_regularizer)
        remove = QtWidgets.QPushButton("− regularizer", regs)
        remove.clicked.connect(self.remove_regularizer)
        remove.setEnabled(bool(self.doc["training"].get("regularizers")))
        row.addWidget(add)
        row.addWidget(remove)
        form.addRow("", regs)
        self._field(form, BATCH, ("training", "batch_size"))
        self._field(form, EPOCHS, ("training", "epochs"))
        self._field(form, SEED, ("seed",))
        return group

    # ------------------------------------------------------------------ structure edits
    def add_layer(self) -> bool:
        layers = self.doc["model"]["layers"]
        if len(layers) >= MAX_LAYERS:
            self.pending.setText(f"At most {MAX_LAYERS} layers here: the diagram stays readable.")
            return False
        return self.propose(
            lambda d: d["model"]["layers"].insert(len(d["model"]["layers"]) - 1, dict(NEW_LAYER)),
            "add a layer",
        )

    def remove_layer(self) -> bool:
        if len(self.doc["model"]["layers"]) <= 1:
            return False
        return self.propose(
            lambda d: d["model"]["layers"].pop(len(d["model"]["layers"]) - 2), "remove a layer"
        )

    def change_units(self, i: int, step: int) -> bool:
        units = int(self.doc["model"]["layers"][i].get("units", 1)) + step
        return self.propose(
            lambda d: d["model"]["layers"][i].__setitem__("units", units), f"layer {i} units"
        )

    def add_regularizer(self) -> bool:
        names = self.registry.names("regularizer")
        if not names:
            return False
        first = "l2" if "l2" in names else names[0]
        return self.propose(
            lambda d: d["training"].setdefault("regularizers", []).append(first),
            "add a regularizer",
        )

    def remove_regularizer(self) -> bool:
        if not self.doc["training"].get("regularizers"):
            return False
        return self.propose(lambda d: d["training"]["regularizers"].pop(), "remove a regularizer")

    # ------------------------------------------------------------------ showing
    def _show_values(self) -> None:
        for name, field in self.fields.items():
            path = _path_of(name)
            value = _get(self.doc, path, None)
            if value is None:
                continue
            field.set_value(choice(value)[0] if isinstance(value, dict) else value)

    def _mark(self, field: str, message: str) -> None:
        target = self.fields.get(field)
        if target is not None:
            target.set_error(message)
        self.pending.setText(f"Not applied: {field or 'the experiment'}: {message}")
        self.pending.setStyleSheet("color: #c0392b;")

    def _show_pending(self) -> None:
        waiting = self.doc != self.running
        self.apply_button.setEnabled(waiting)
        self.pending.setStyleSheet("")
        self.pending.setText(
            "Changed: press Re-initialize to train with these changes from new weights."
            if waiting
            else "Learning rate, momentum, regularization and batch size apply live."
        )


def _experiments() -> Any:
    """The engine's experiment module, imported on first use: it loads the plugin checks and
    the compiled kernels, which the window does not wait for before it shows."""
    from gradient_lab.engine.training import experiment

    return experiment


def formula_label(cls: Any, parent: QtWidgets.QWidget | None) -> QtWidgets.QLabel:
    """The plugin's formula, rendered; its teaching text as the tooltip."""
    label = QtWidgets.QLabel(latex_to_html(cls.formula), parent)
    label.setObjectName(f"formula {cls.kind} {cls.name}")
    label.setTextFormat(QtCore.Qt.TextFormat.RichText)
    label.setWordWrap(True)
    label.setToolTip(cls.teaching or "")
    return label


def _structure(doc: dict[str, Any]) -> Any:
    """What the forms are built from: the plugins chosen and the number of layers."""
    model, training = doc["model"], doc["training"]
    return (
        doc["data"]["dataset"],
        [layer["type"] for layer in model.get("layers") or []],
        choice(model.get("architecture", ""))[0] if model.get("architecture") else "",
        choice(model.get("init", ""))[0],
        choice(training["loss"])[0],
        choice(training["optimizer"])[0],
        [choice(r)[0] for r in training.get("regularizers", [])],
        choice(training["schedule"])[0] if training.get("schedule") else "",
    )


def _get(doc: Any, path: Path, default: Any) -> Any:
    for part in path:
        try:
            doc = doc[part]
        except (KeyError, IndexError, TypeError):
            return default
    return doc


def _set(doc: Any, path: Path, value: Any) -> None:
    """Set the value at ``path``; "" for an optional plugin choice removes the key."""
    for part in path[:-1]:
        doc = doc[part]
    if value == "" and isinstance(doc, dict):
        doc.pop(path[-1], None)
    else:
        doc[path[-1]] = value


def _path_of(name: str) -> Path:
    """field_name's inverse: model.layers[1].units as ("model", "layers", 1, "units")."""
    out: list[Any] = []
    for part in name.replace("[", ".[").split("."):
        if part.startswith("["):
            out.append(int(part[1:-1]))
        elif part:
            out.append(part)
    return tuple(out)


def _new_dataset(doc: dict[str, Any], name: str, planar: bool) -> None:
    """Another data set, with its own defaults; the features stay for a planar one."""
    data = doc["data"]
    kept = (
        ("validation_fraction", "seed", "features") if planar else ("validation_fraction", "seed")
    )
    doc["data"] = {"dataset": name, **{k: data[k] for k in kept if k in data}}


def _next_data_seed(doc: dict[str, Any]) -> None:
    data = doc["data"]
    data["seed"] = int(data.get("seed", doc.get("seed", 0))) + 1
