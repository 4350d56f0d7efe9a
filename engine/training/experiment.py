"""Experiment files: one TOML file says which data, model and training a session runs.

Files are read with the standard library's ``tomllib`` and written by the small writer at the end
of this module, which covers exactly the subset experiment files use (strings, numbers, booleans,
lists, inline tables, tables). Every mistake raises one ``ExperimentError`` naming the field path
(``training.optimizer.lr``), the bad value and what is allowed, so a student can fix a file
without reading code. Plugin options are checked against the plugin's declared parameters but
keep only what the file says (defaults are not filled in), so saving writes what the user wrote.
"""

from __future__ import annotations

import copy
import difflib
import numbers
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from gradient_lab.engine.files import atomic_write_text
from gradient_lab.engine.loading.discovery import default_registry
from gradient_lab.engine.loading.registry import Registry
from gradient_lab.engine.plugin_api import Param, Plugin, PluginError
from gradient_lab.engine.training.classroom import (
    CLASSROOM_LOCKS,
    CLASSROOM_VIEWS,
    ClassroomSpec,
)
from gradient_lab.engine.training.data import FEATURES, canonical_feature
from gradient_lab.engine.training.errors import ExperimentError

__all__ = [
    "SCHEMA",
    "SUPPORTED_SCHEMAS",
    "DataSpec",
    "Experiment",
    "ExperimentError",
    "ModelSpec",
    "PluginChoice",
    "TrainingSpec",
    "experiment_to_dict",
    "experiment_to_toml",
    "load_experiment",
    "parse_experiment",
    "save_experiment",
    "toml_dumps",
]

SCHEMA = 1
SUPPORTED_SCHEMAS = (1,)
DTYPES = ("float64", "float32")


# ------------------------------------------------------------------------------ the experiment


@dataclass
class PluginChoice:
    """A plugin by name plus the hyperparameters the user wrote (defaults not filled in)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataSpec:
    """Which dataset plugin makes the data, and how the engine splits and extends it."""

    dataset: str
    options: dict[str, Any] = field(default_factory=dict)
    validation_fraction: float = 0.2
    features: list[str] | None = None
    seed: int | None = None
    # Dataset file paths as the file wrote them, where ``options`` holds them resolved against
    # ``base_dir``, the experiment file's folder (so any working directory reads the same file).
    written_paths: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    base_dir: str | None = field(default=None, compare=False, repr=False)


def _default_init() -> PluginChoice:
    return PluginChoice("xavier_uniform", {})


@dataclass
class ModelSpec:
    """Explicit layers ({"type": name, **params}) or an architecture plugin: exactly one."""

    layers: list[dict[str, Any]] | None = None
    architecture: PluginChoice | None = None
    output_activation: str = "auto"
    init: PluginChoice = field(default_factory=_default_init)
    dtype: str = "float64"


@dataclass
class GroupSpec:
    """A parameter group's own optimizer and schedule (None: the experiment's)."""

    optimizer: PluginChoice | None = None
    schedule: PluginChoice | None = None


@dataclass
class TrainingSpec:
    """The loss, the optimizer and how the data is fed to them."""

    loss: PluginChoice
    optimizer: PluginChoice
    batch_size: int = 32
    shuffle: bool = True
    epochs: int = 100
    regularizers: list[PluginChoice] = field(default_factory=list)
    schedule: PluginChoice | None = None
    metrics: list[str] | None = None
    groups: dict[str, GroupSpec] = field(default_factory=dict)


@dataclass
class Experiment:
    """Everything a session needs to train, reproducibly from ``seed``."""

    data: DataSpec
    model: ModelSpec
    training: TrainingSpec
    seed: int = 0
    schema: int = SCHEMA
    classroom: ClassroomSpec = field(default_factory=ClassroomSpec)


# ---------------------------------------------------------------------------- keys and params

TOP_KEYS = ("schema", "seed", "data", "model", "training", "classroom")
CLASSROOM_KEYS = ("hide", "lock")
DATA_KEYS = ("dataset", "validation_fraction", "features", "seed")
MODEL_KEYS = ("init", "layers", "architecture", "output_activation", "dtype")
TRAINING_KEYS = (
    "loss",
    "optimizer",
    "batch_size",
    "shuffle",
    "epochs",
    "regularizers",
    "schedule",
    "metrics",
    "groups",
)
GROUP_KEYS = ("optimizer", "schedule")

_SEED = Param("seed", "int", 0, "seed of the experiment's random generators", low=0)
_DATA_SEED = Param("seed", "int", 0, "seed of the data alone", low=0)
_VALIDATION = Param(
    "validation_fraction", "float", 0.2, "share held out for validation", low=0.0, high=0.9
)
_BATCH = Param("batch_size", "int", 32, "samples per step", low=1)
_EPOCHS = Param("epochs", "int", 100, "passes over the training data", low=1)
_SHUFFLE = Param("shuffle", "bool", True, "reshuffle the training data every epoch")
_DTYPE = Param("dtype", "str", "float64", "floating-point precision", choices=DTYPES)


def _path(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _label(kind: str) -> str:
    return kind.replace("_", " ")


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str], prefix: str, scope: str) -> None:
    """Unknown keys are errors, so a typo never silently falls back to a default."""
    for key in table:
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), list(allowed), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = _path(prefix, str(key))
        raise ExperimentError(
            f"unknown key {where}{hint}; allowed {scope}: {', '.join(allowed) or 'none'}", where
        )


def _check(param: Param, value: Any, prefix: str) -> Any:
    """The value checked (and converted) by its Param; ints must really be ints."""
    where = _path(prefix, param.name)
    error = ExperimentError(
        f"{where} = {value!r} is not allowed: expected {param.allowed()}", where
    )
    if param.type == "int" and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise error
    try:
        return param.validate(value, prefix)
    except PluginError:
        raise error from None  # shows the value as written, not as converted (-1, not -1.0)


def _available(registry: Registry, kind: str) -> str:
    return ", ".join(registry.names(kind)) or "none installed"


def _plugin(registry: Registry, kind: str, name: Any, where: str) -> type[Plugin]:
    """The plugin class for a name, or an error listing the names that would work."""
    if not isinstance(name, str):
        raise ExperimentError(
            f"{where} = {name!r} is not allowed: expected a {_label(kind)} name; "
            f"available: {_available(registry, kind)}",
            where,
        )
    if name in registry.names(kind):
        return registry.get(kind, name)
    failed = [r for r in registry.failures() if r.kind == kind and r.name == name]
    if failed:
        raise ExperimentError(
            f"{where} = {name!r} cannot be used: this {_label(kind)} failed to load "
            f"({failed[0].error})",
            where,
        )
    raise ExperimentError(
        f"{where} = {name!r} is not allowed: unknown {_label(kind)}; "
        f"available: {_available(registry, kind)}",
        where,
    )


def _plugin_options(
    cls: type[Plugin],
    table: Mapping[str, Any],
    prefix: str,
    reserved: Sequence[str],
    scope: str,
    registry: Registry,
) -> dict[str, Any]:
    """The plugin's options from a table, each checked; reserved keys belong to the engine."""
    params = {p.name: p for p in cls.params}
    _check_keys(table, [*reserved, *params], prefix, scope)
    options = {k: copy.deepcopy(v) for k, v in table.items() if k not in reserved}
    for key, value in options.items():
        _check(params[key], value, prefix)
    _check_activation_names(cls, options, prefix, registry)
    try:
        cls(**options)  # the plugin's own cross-checks between parameters
    except (ValueError, TypeError) as exc:
        raise ExperimentError(f"{prefix}: {exc}", prefix) from None
    return options


def _check_activation_names(
    cls: type[Plugin], options: Mapping[str, Any], prefix: str, registry: Registry
) -> None:
    """By convention a text parameter ``activation`` (or ``*_activation``) names an activation
    plugin and ``<that>_params`` holds its parameters: check both now, not at build time."""
    for p in cls.params:
        if p.type != "str" or not (p.name == "activation" or p.name.endswith("_activation")):
            continue
        if p.name not in options and f"{p.name}_params" not in options:
            continue  # nothing written here: a wrong default is the plugin's fault, not the file's
        name = options.get(p.name, p.default)
        act = _plugin(registry, "activation", name, _path(prefix, p.name))
        extra = options.get(f"{p.name}_params")
        if isinstance(extra, Mapping):
            where = _path(prefix, f"{p.name}_params")
            _plugin_options(act, extra, where, (), f"for activation {name!r}", registry)


def _choice(value: Any, kind: str, where: str, registry: Registry) -> PluginChoice:
    """A plugin choice written as a name or as an inline table { name = ..., params... }."""
    if isinstance(value, str):
        table: Mapping[str, Any] = {"name": value}
    elif isinstance(value, Mapping):
        if "name" not in value:
            raise ExperimentError(
                f'{where} needs a name, e.g. {{ name = "...", ... }}; '
                f"available {_label(kind)}s: {_available(registry, kind)}",
                _path(where, "name"),
            )
        table = value
    else:
        raise ExperimentError(
            f"{where} = {value!r} is not allowed: expected a {_label(kind)} name or a table "
            f'{{ name = "...", <parameters> }}; available: {_available(registry, kind)}',
            where,
        )
    name = table["name"]
    cls = _plugin(registry, kind, name, where if isinstance(value, str) else f"{where}.name")
    options = _plugin_options(
        cls, table, where, ("name",), f"for {_label(kind)} {name!r}", registry
    )
    return PluginChoice(name, options)


def _list(value: Any, where: str, what: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ExperimentError(
            f"{where} = {value!r} is not allowed: expected a list of {what}", where
        )
    return list(value)


def _table(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    if key not in doc:
        raise ExperimentError(
            f"missing table [{key}]: an experiment needs [data], [model] and [training]", key
        )
    value = doc[key]
    if not isinstance(value, Mapping):
        raise ExperimentError(f"{key} = {value!r} is not allowed: expected a table [{key}]", key)
    return value


def _subtable(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ExperimentError(
            f"{where} = {value!r} is not allowed: expected a table [{where}]", where
        )
    return value


def _required(table: Mapping[str, Any], prefix: str, key: str, example: str) -> Any:
    if key not in table:
        where = _path(prefix, key)
        raise ExperimentError(f"missing key {where}, e.g. {example}", where)
    return table[key]


# ---------------------------------------------------------------------------------- sections


def _parse_document(
    doc: Mapping[str, Any], registry: Registry, base_dir: Path | None = None
) -> Experiment:
    schema = doc.get("schema", SCHEMA)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema not in SUPPORTED_SCHEMAS:
        supported = ", ".join(str(s) for s in SUPPORTED_SCHEMAS)
        raise ExperimentError(
            f"schema = {schema!r} is not supported; supported schemas: {supported}", "schema"
        )
    _check_keys(doc, TOP_KEYS, "", "at the top level")
    seed = _check(_SEED, doc.get("seed", 0), "")
    return Experiment(
        data=_parse_data(_table(doc, "data"), registry, base_dir),
        model=_parse_model(_table(doc, "model"), registry),
        training=_parse_training(_table(doc, "training"), registry),
        seed=seed,
        schema=SCHEMA,
        classroom=_parse_classroom(doc.get("classroom", {})),
    )


def _parse_classroom(value: Any) -> ClassroomSpec:
    table = _subtable(value, "classroom")
    _check_keys(table, CLASSROOM_KEYS, "classroom", "in [classroom]")
    spec = ClassroomSpec()
    for key, allowed in (("hide", CLASSROOM_VIEWS), ("lock", CLASSROOM_LOCKS)):
        names = _list(table.get(key, []), f"classroom.{key}", "names")
        for i, name in enumerate(names):
            if name not in allowed:
                where = f"classroom.{key}[{i}]"
                raise ExperimentError(
                    f"{where} = {name!r} is not allowed: one of {', '.join(allowed)}", where
                )
        getattr(spec, key).extend(dict.fromkeys(names))
    return spec


def _parse_data(
    table: Mapping[str, Any], registry: Registry, base_dir: Path | None = None
) -> DataSpec:
    """[data] mixes the engine's keys with the dataset plugin's own parameters."""
    name = _required(table, "data", "dataset", 'dataset = "spiral"')
    cls = _plugin(registry, "dataset", name, "data.dataset")
    scope = f"in [data]: the engine's keys and dataset {name!r}'s parameters"
    options = _plugin_options(cls, table, "data", DATA_KEYS, scope, registry)
    features = None
    if "features" in table:
        features = _list(table["features"], "data.features", "feature names")
        if not all(isinstance(f, str) for f in features):
            raise ExperimentError(
                f"data.features = {table['features']!r} is not allowed: "
                "expected a list of feature names (texts)",
                "data.features",
            )
        _check_features(features, cls)
    seed = _check(_DATA_SEED, table["seed"], "data") if "seed" in table else None
    written = _resolve_paths(cls, options, base_dir)
    return DataSpec(
        dataset=name,
        options=options,
        validation_fraction=_check(_VALIDATION, table.get("validation_fraction", 0.2), "data"),
        features=features,
        seed=seed,
        written_paths=written,
        base_dir=None if base_dir is None else str(base_dir),
    )


def _check_features(features: list[str], cls: type[Plugin]) -> None:
    """Derived inputs exist for 2D playground sets only, each once, by a known name."""
    if not getattr(cls, "planar", False):
        if features:
            raise ExperimentError(
                f"data.features = {features!r} is not allowed: input features apply to 2D "
                f"playground sets only, and dataset {cls.name!r} uses its own inputs; "
                "expected no features key (or an empty list)",
                "data.features",
            )
        return
    seen: list[str] = []
    for i, name in enumerate(features):
        where = f"data.features[{i}]"
        try:
            key = canonical_feature(name)
        except PluginError:
            raise ExperimentError(
                f"{where} = {name!r} is not allowed: expected one of {', '.join(FEATURES)}",
                where,
            ) from None
        if key in seen:
            raise ExperimentError(f"{where} = {name!r} is listed twice (as {key!r})", where)
        seen.append(key)


def _is_path(param: Param) -> bool:
    """By convention a dataset's text parameter ``path`` (or ``*_path``) names a file."""
    return param.type == "str" and (param.name == "path" or param.name.endswith("_path"))


def _resolve_paths(
    cls: type[Plugin], options: dict[str, Any], base_dir: Path | None
) -> dict[str, str]:
    """Make relative file paths relative to the experiment file's folder, in place; the
    paths as written, by parameter, for saving."""
    written: dict[str, str] = {}
    for param in cls.params:
        value = options.get(param.name)
        if not _is_path(param) or not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if str(path) != value:
            written[param.name] = value
            options[param.name] = str(path)
    return written


def _parse_model(table: Mapping[str, Any], registry: Registry) -> ModelSpec:
    _check_keys(table, MODEL_KEYS, "model", "in [model]")
    has_layers, has_arch = "layers" in table, "architecture" in table
    if has_layers and has_arch:
        raise ExperimentError(
            "model.layers and model.architecture are both given: use exactly one "
            "(explicit layers, or an architecture that builds them)",
            "model",
        )
    if not has_layers and not has_arch:
        raise ExperimentError(
            'model needs layers or an architecture: model.layers = [{ type = "dense", ... }] '
            f"or model.architecture = {{ name = ... }} (available architectures: "
            f"{_available(registry, 'architecture')})",
            "model",
        )
    spec = ModelSpec(dtype=_check(_DTYPE, table.get("dtype", "float64"), "model"))
    if "init" in table:
        spec.init = _choice(table["init"], "initializer", "model.init", registry)
    if has_layers:
        items = _list(table["layers"], "model.layers", "layer tables")
        if not items:
            raise ExperimentError("model.layers is empty: give at least one layer", "model.layers")
        spec.layers = [
            _parse_layer(item, f"model.layers[{i}]", registry) for i, item in enumerate(items)
        ]
    else:
        spec.architecture = _choice(
            table["architecture"], "architecture", "model.architecture", registry
        )
    if "output_activation" in table:
        spec.output_activation = _parse_output_activation(table, has_layers, registry)
    return spec


def _parse_layer(item: Any, where: str, registry: Registry) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise ExperimentError(
            f'{where} = {item!r} is not allowed: expected a table {{ type = "...", ... }}', where
        )
    name = _required(item, where, "type", 'type = "dense"')
    cls = _plugin(registry, "layer", name, f"{where}.type")
    options = _plugin_options(cls, item, where, ("type",), f"for layer {name!r}", registry)
    return {"type": name, **options}


def _parse_output_activation(table: Mapping[str, Any], has_layers: bool, registry: Registry) -> str:
    value = table["output_activation"]
    where = "model.output_activation"
    if has_layers:
        raise ExperimentError(
            f"{where} applies only to an architecture; with explicit layers the last layer's "
            "activation is the output activation",
            where,
        )
    if value == "auto":
        return "auto"
    if isinstance(value, str) and value in registry.names("activation"):
        return value
    raise ExperimentError(
        f"{where} = {value!r} is not allowed: expected 'auto' or an activation; "
        f"available: {_available(registry, 'activation')}",
        where,
    )


def _parse_training(table: Mapping[str, Any], registry: Registry) -> TrainingSpec:
    _check_keys(table, TRAINING_KEYS, "training", "in [training]")
    loss = _required(table, "training", "loss", 'loss = "mse"')
    optimizer = _required(table, "training", "optimizer", 'optimizer = { name = "sgd", lr = 0.03 }')
    spec = TrainingSpec(
        loss=_choice(loss, "loss", "training.loss", registry),
        optimizer=_choice(optimizer, "optimizer", "training.optimizer", registry),
        batch_size=_check(_BATCH, table.get("batch_size", 32), "training"),
        shuffle=_check(_SHUFFLE, table.get("shuffle", True), "training"),
        epochs=_check(_EPOCHS, table.get("epochs", 100), "training"),
    )
    if "regularizers" in table:
        items = _list(table["regularizers"], "training.regularizers", "regularizers")
        spec.regularizers = [
            _choice(item, "regularizer", f"training.regularizers[{i}]", registry)
            for i, item in enumerate(items)
        ]
    if "schedule" in table:
        spec.schedule = _choice(table["schedule"], "lr_schedule", "training.schedule", registry)
    if "metrics" in table:
        spec.metrics = _parse_metrics(table["metrics"], registry)
    if "groups" in table:
        spec.groups = _parse_groups(_subtable(table["groups"], "training.groups"), registry)
    return spec


def _parse_groups(table: Mapping[str, Any], registry: Registry) -> dict[str, GroupSpec]:
    """[training.groups.<name>]: a parameter group's own optimizer and schedule."""
    groups = {}
    for name in table:
        where = f"training.groups.{name}"
        group = _subtable(table[name], where)
        _check_keys(group, GROUP_KEYS, where, f"in [{where}]")
        spec = GroupSpec()
        if "optimizer" in group:
            spec.optimizer = _choice(
                group["optimizer"], "optimizer", f"{where}.optimizer", registry
            )
        if "schedule" in group:
            spec.schedule = _choice(group["schedule"], "lr_schedule", f"{where}.schedule", registry)
        groups[str(name)] = spec
    return groups


def _parse_metrics(value: Any, registry: Registry) -> list[str]:
    names = _list(value, "training.metrics", "metric names")
    for i, name in enumerate(names):
        _plugin(registry, "metric", name, f"training.metrics[{i}]")
        if name in names[:i]:
            where = f"training.metrics[{i}]"
            raise ExperimentError(f"{where} = {name!r} is listed twice", where)
    return names


# ------------------------------------------------------------------------------------- public


def parse_experiment(
    text_or_dict: str | Mapping[str, Any],
    registry: Registry | None = None,
    source: str = "<text>",
    base_dir: str | Path | None = None,
) -> Experiment:
    """An experiment from TOML text or an already parsed dict, checked against the registry.

    ``base_dir``: the folder relative dataset file paths are relative to (the experiment file's
    folder; None keeps them relative to the working directory)."""
    if isinstance(text_or_dict, str):
        doc: Mapping[str, Any] = _read_toml(text_or_dict, source)
    elif isinstance(text_or_dict, Mapping):
        doc = text_or_dict
    else:
        raise TypeError(f"expected TOML text or a dict, got {type(text_or_dict).__name__}")
    reg = default_registry() if registry is None else registry
    base = None if base_dir is None else Path(base_dir).absolute()
    try:
        return _parse_document(doc, reg, base)
    except ExperimentError as exc:
        raise ExperimentError(f"{source}: {exc}", exc.field, source, str(exc)) from None


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text.removeprefix("\ufeff"))  # a byte-order mark, as in CSV files
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message carries "(at line L, column C)".
        raise ExperimentError(f"{source}: not valid TOML: {exc}", "", source) from None


def load_experiment(path: str | Path, registry: Registry | None = None) -> Experiment:
    """Read and check an experiment file; every problem is one ExperimentError."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")  # a byte-order mark is allowed
    except FileNotFoundError:
        raise ExperimentError(f"experiment file not found: {file}", "", str(file)) from None
    except UnicodeDecodeError as exc:
        raise ExperimentError(
            f"{file}: not UTF-8 text (byte {exc.start}); save the file as UTF-8", "", str(file)
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ExperimentError(
            f"cannot read experiment file {file}: {reason}", "", str(file)
        ) from None
    return parse_experiment(text, registry, source=str(file), base_dir=file.parent)


def _choice_value(choice: PluginChoice) -> str | dict[str, Any]:
    """A bare name when there are no options, as a person would write it."""
    if not choice.options:
        return choice.name
    return {"name": choice.name, **copy.deepcopy(choice.options)}


def _layer_value(layer: Mapping[str, Any]) -> dict[str, Any]:
    """``type`` first, as the loader rebuilds it, so the text is the same after a round trip."""
    rest = {k: copy.deepcopy(v) for k, v in layer.items() if k != "type"}
    return {"type": layer.get("type"), **rest}


def experiment_to_dict(exp: Experiment, folder: str | Path | None = None) -> dict[str, Any]:
    """The TOML-shaped dict of an experiment (what ``parse_experiment`` accepts back).

    Engine fields are always written so a saved file records the whole setup; optional fields
    that are unset (None, no regularizers) are left out. A dataset path is written as the
    experiment file wrote it, except that a relative one is made relative to ``folder`` (where
    the text will be saved) when that is another folder.
    """
    data: dict[str, Any] = {"dataset": exp.data.dataset, **copy.deepcopy(exp.data.options)}
    for key, written in exp.data.written_paths.items():
        if isinstance(data.get(key), str):
            data[key] = _path_text(written, data[key], exp.data.base_dir, folder)
    data["validation_fraction"] = exp.data.validation_fraction
    if exp.data.features is not None:
        data["features"] = list(exp.data.features)
    if exp.data.seed is not None:
        data["seed"] = exp.data.seed
    model: dict[str, Any] = {"init": _choice_value(exp.model.init)}
    if exp.model.layers is not None:
        model["layers"] = [_layer_value(layer) for layer in exp.model.layers]
    if exp.model.architecture is not None:
        model["architecture"] = _choice_value(exp.model.architecture)
        model["output_activation"] = exp.model.output_activation
    model["dtype"] = exp.model.dtype
    t = exp.training
    training: dict[str, Any] = {
        "loss": _choice_value(t.loss),
        "optimizer": _choice_value(t.optimizer),
        "batch_size": t.batch_size,
        "shuffle": t.shuffle,
        "epochs": t.epochs,
    }
    if t.regularizers:
        training["regularizers"] = [_choice_value(r) for r in t.regularizers]
    if t.schedule is not None:
        training["schedule"] = _choice_value(t.schedule)
    if t.metrics is not None:
        training["metrics"] = list(t.metrics)
    for name, group in t.groups.items():
        entry: dict[str, Any] = {}
        if group.optimizer is not None:
            entry["optimizer"] = _choice_value(group.optimizer)
        if group.schedule is not None:
            entry["schedule"] = _choice_value(group.schedule)
        training.setdefault("groups", {})[name] = entry
    doc: dict[str, Any] = {
        "schema": exp.schema,
        "seed": exp.seed,
        "data": data,
        "model": model,
        "training": training,
    }
    classroom = {k: list(v) for k, v in vars(exp.classroom).items() if v}
    if classroom:
        doc["classroom"] = classroom
    return doc


def _path_text(written: str, current: str, base_dir: str | None, folder: str | Path | None) -> str:
    """How a dataset path the file wrote as ``written`` (resolved: ``current``) is saved."""
    as_written = Path(written).expanduser()
    resolved = as_written if as_written.is_absolute() or base_dir is None else base_dir / as_written
    if str(resolved) != current:
        return current  # changed since it was read
    if as_written.is_absolute() or folder is None or Path(folder).absolute() == Path(str(base_dir)):
        return written
    try:
        return Path(os.path.relpath(current, Path(folder).absolute())).as_posix()
    except ValueError:  # another drive (Windows)
        return current


def experiment_to_toml(exp: Experiment, folder: str | Path | None = None) -> str:
    """TOML text of ``exp``; ``folder``: where it will be saved (see ``experiment_to_dict``)."""
    return toml_dumps(experiment_to_dict(exp, folder))


def save_experiment(exp: Experiment, path: str | Path) -> None:
    """Write atomically: the file on disk is always the old one or the complete new one."""
    atomic_write_text(path, experiment_to_toml(exp, Path(path).parent))


# --------------------------------------------------------------------------------- TOML writer


def toml_dumps(doc: Mapping[str, Any]) -> str:
    """TOML text for a dict (tomli-w, lists of layer tables one per line); NumPy numbers become
    Python ones, and values TOML cannot hold (None, objects) raise TypeError."""
    return tomli_w.dumps(_plain(doc), indent=2)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if value is None or not isinstance(value, str):
        raise TypeError(f"cannot write {value!r} ({type(value).__name__}) to TOML")
    return value
