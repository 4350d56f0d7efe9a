"""Experiment files: loading, one clear message per mistake, atomic saving, exact round trips."""

import math
import os
import re
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradient_lab.plugins.activations
import gradient_lab.plugins.architectures
import gradient_lab.plugins.layers
import gradient_lab.plugins.losses
from gradient_lab.engine.loading.discovery import default_registry
from gradient_lab.engine.loading.registry import Registry
from gradient_lab.engine.plugin_api import (
    Dataset,
    Initializer,
    LRSchedule,
    Metric,
    Optimizer,
    Param,
    PluginError,
    Regularizer,
)
from gradient_lab.engine.training.data import FEATURES
from gradient_lab.engine.training.experiment import (
    DataSpec,
    Experiment,
    ExperimentError,
    ModelSpec,
    PluginChoice,
    TrainingSpec,
    experiment_to_dict,
    experiment_to_toml,
    load_experiment,
    parse_experiment,
    save_experiment,
    toml_dumps,
)
from tests.experiments import README_EXAMPLE, edit, experiment_text
from tests.experiments import dense as dense_layer

HIDDEN = dense_layer(8, "tanh")
OUTPUT = dense_layer(1, "tanh")
# the default experiment (assets/default_experiment.toml) as the builder's choices
CHOICES = README_EXAMPLE
EXAMPLE = experiment_text(**CHOICES)


def example(**changes) -> str:
    """EXAMPLE with some of its choices changed."""
    return experiment_text(**{**CHOICES, **changes})


# Small stand-ins for the plugin kinds other modules provide, so these tests fix the plugins.
class ToySpiral(Dataset):
    name = "spiral"
    planar = True
    params = (
        Param("n", "int", 500, "points", low=1, high=100_000),
        Param("noise", "float", 0.2, "noise", low=0.0, high=1.0),
        Param("classes", "int", 2, "classes", low=2, high=10),
    )


class ToyFile(Dataset):
    name = "csv"
    params = (Param("path", "str", ""), Param("target", "strs", ()))


class ToyXavier(Initializer):
    name = "xavier_uniform"
    params = (Param("gain", "float", 1.0, "gain", low=0.0),)


class ToySGD(Optimizer):
    name = "sgd"
    params = (
        Param("lr", "float", 0.01, "learning rate", low=0.0),
        Param("momentum", "float", 0.0, "momentum", low=0.0, high=1.0),
        Param("nesterov", "bool", False, "Nesterov"),
    )


class ToyAdam(Optimizer):
    name = "adam"
    params = (
        Param("lr", "float", 0.001, "learning rate", low=0.0),
        Param("betas", "floats", (0.9, 0.999), "smoothing"),
    )


class ToyL2(Regularizer):
    name = "l2"
    params = (Param("strength", "float", 1e-4, "strength", low=0.0),)


class ToyStep(LRSchedule):
    name = "step"
    params = (
        Param("step_size", "int", 10, "epochs per step", low=1),
        Param("gamma", "float", 0.1, "factor", low=0.0),
        Param("per", "str", "epoch", "unit", choices=("epoch", "step")),
    )


class ToyAccuracy(Metric):
    name = "accuracy"


TOYS = [ToySpiral, ToyFile, ToyXavier, ToySGD, ToyAdam, ToyL2, ToyStep, ToyAccuracy]


def toy_registry() -> Registry:
    registry = Registry()
    for module in (
        gradient_lab.plugins.activations,
        gradient_lab.plugins.losses,
        gradient_lab.plugins.layers,
        gradient_lab.plugins.architectures,
    ):
        registry.add_module(module, "builtin", module.__name__)
    registry.add_module(TOYS, "builtin", "test")
    assert not registry.failures(), registry.failures()
    return registry


REGISTRY = toy_registry()


def parse(text: str) -> Experiment:
    return parse_experiment(text, REGISTRY)


EXPECTED = Experiment(
    data=DataSpec("spiral", {"n": 500, "noise": 0.1}, 0.2, ["x1", "x2"], None),
    model=ModelSpec(
        layers=[
            {"type": "dense", "units": 8, "activation": "tanh"},
            {"type": "dense", "units": 8, "activation": "tanh"},
            {"type": "dense", "units": 1, "activation": "tanh"},
        ],
        architecture=None,
        output_activation="auto",
        init=PluginChoice("xavier_uniform", {}),
        dtype="float64",
    ),
    training=TrainingSpec(
        loss=PluginChoice("mse", {}),
        optimizer=PluginChoice("sgd", {"lr": 0.03}),
        batch_size=10,
        shuffle=True,
        epochs=100,
    ),
    seed=7,
    schema=1,
)


# ------------------------------------------------------------------------------------ loading


def test_example_loads_with_the_expected_values():
    exp = parse(EXAMPLE)
    assert exp == EXPECTED
    assert exp.training.regularizers == [] and exp.training.schedule is None
    assert exp.training.metrics is None and exp.data.seed is None


def test_the_spiral_example_is_the_readme_s_example_with_a_comment():
    path = Path(str(files("gradient_lab.assets").joinpath("examples", "spiral_sgd.toml")))
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#")
    assert load_experiment(path, REGISTRY) == EXPECTED


def test_example_loads_with_the_default_registry():
    assert parse_experiment(EXAMPLE) == EXPECTED
    assert load_experiment(
        Path(str(files("gradient_lab.assets").joinpath("default_experiment.toml")))
    )


def test_architecture_regularizers_schedule_with_the_default_registry():
    registry = default_registry()
    exp = parse_experiment(ARCHITECTURE_VARIANT, registry)
    assert exp.training.regularizers == [PluginChoice("l2", {"strength": 1e-4})]
    assert parse_experiment(experiment_to_toml(exp), registry) == exp


def test_omitted_engine_fields_take_their_defaults():
    exp = parse(
        """
        [data]
        dataset = "spiral"
        [model]
        layers = [{ type = "dense", units = 1 }]
        [training]
        loss = "mse"
        optimizer = "sgd"
        """
    )
    assert exp.schema == 1 and exp.seed == 0
    assert exp.data == DataSpec("spiral", {})
    assert exp.model.init == PluginChoice("xavier_uniform", {}) and exp.model.dtype == "float64"
    t = exp.training
    assert (t.batch_size, t.shuffle, t.epochs) == (32, True, 100)


def test_ints_are_accepted_for_floats_and_options_keep_what_was_written():
    exp = parse(example(optimizer='{ name = "sgd", lr = 1 }', data="n = 500\nnoise = 0"))
    assert exp.training.optimizer.options == {"lr": 1}
    assert exp.data.options == {"n": 500, "noise": 0}  # no defaults filled in


def test_a_parsed_dict_is_accepted():
    assert parse_experiment(tomllib.loads(EXAMPLE), REGISTRY) == EXPECTED
    assert parse_experiment(experiment_to_dict(EXPECTED), REGISTRY) == EXPECTED


# ------------------------------------------------------------------------------------ mistakes

MISTAKES = {
    "unknown top-level key": (
        edit(EXAMPLE, "seed = 7", 'seed = 7\ncolour = "red"'),
        "colour",
        ["unknown key colour", "schema, seed, data, model, training"],
    ),
    "unknown key in [training]": (
        edit(EXAMPLE, "epochs = 100", "epochz = 100"),
        "training.epochz",
        ["unknown key training.epochz", "did you mean 'epochs'", "batch_size"],
    ),
    "unknown key in [model]": (
        edit(EXAMPLE, 'init = "xavier_uniform"', 'initializer = "xavier_uniform"'),
        "model.initializer",
        ["unknown key model.initializer", "init, layers, architecture"],
    ),
    "misspelt dataset parameter": (
        example(data="n = 500\nnoize = 0.1"),
        "data.noize",
        ["unknown key data.noize", "did you mean 'noise'", "dataset, validation_fraction", "n, "],
    ),
    "bad dataset value": (
        example(data="n = -3\nnoise = 0.1"),
        "data.n",
        ["data.n = -3 is not allowed", "whole number >= 1"],
    ),
    "bad layer parameter": (
        example(layers=[HIDDEN, HIDDEN, dense_layer(0, "tanh")]),
        "model.layers[2].units",
        ["model.layers[2].units = 0 is not allowed", "whole number >= 1"],
    ),
    "unknown layer parameter": (
        example(layers=['{ type = "dense", units = 8, activaton = "tanh" }', HIDDEN, OUTPUT]),
        "model.layers[0].activaton",
        ["unknown key model.layers[0].activaton", "for layer 'dense'", "type, units"],
    ),
    "unknown layer type": (
        example(layers=['{ type = "dens", units = 8, activation = "tanh" }', HIDDEN, OUTPUT]),
        "model.layers[0].type",
        ["model.layers[0].type = 'dens' is not allowed", "available: activation,", "dense"],
    ),
    "layer without a type": (
        example(layers=[HIDDEN, HIDDEN, '{ units = 1, activation = "tanh" }']),
        "model.layers[2].type",
        ["missing key model.layers[2].type"],
    ),
    "unknown activation name": (
        example(layers=[dense_layer(8, "tanhh"), HIDDEN, OUTPUT]),
        "model.layers[0].activation",
        ["model.layers[0].activation = 'tanhh' is not allowed", "available:", "tanh"],
    ),
    "unknown optimizer name": (
        example(optimizer='{ name = "sgdd", lr = 0.03 }'),
        "training.optimizer.name",
        ["training.optimizer.name = 'sgdd' is not allowed", "available: adam, sgd"],
    ),
    "unknown loss name": (
        example(loss="msa"),
        "training.loss",
        ["training.loss = 'msa' is not allowed", "unknown loss", "mse"],
    ),
    "bad optimizer parameter": (
        example(optimizer='{ name = "sgd", lr = -0.03 }'),
        "training.optimizer.lr",
        ["training.optimizer.lr = -0.03 is not allowed", "a number >= 0"],
    ),
    "unknown optimizer parameter": (
        example(optimizer='{ name = "sgd", learning_rate = 0.03 }'),
        "training.optimizer.learning_rate",
        ["unknown key training.optimizer.learning_rate", "for optimizer 'sgd': name, lr"],
    ),
    "optimizer table without a name": (
        example(optimizer="{ lr = 0.03 }"),
        "training.optimizer.name",
        ["training.optimizer needs a name", "adam, sgd"],
    ),
    "schema 2": (
        example(schema=2),
        "schema",
        ["schema = 2 is not supported", "supported schemas: 1"],
    ),
    "batch_size 0": (
        example(batch_size=0),
        "training.batch_size",
        ["training.batch_size = 0 is not allowed: expected a whole number >= 1"],
    ),
    "batch_size text": (
        example(batch_size='"ten"'),
        "training.batch_size",
        ["training.batch_size = 'ten' is not allowed: expected a whole number >= 1"],
    ),
    "batch_size float": (
        example(batch_size=10.0),
        "training.batch_size",
        ["training.batch_size = 10.0 is not allowed"],
    ),
    "epochs bool": (
        example(epochs=True),
        "training.epochs",
        ["training.epochs = True is not allowed"],
    ),
    "shuffle as a number": (
        example(shuffle=1),
        "training.shuffle",
        ["training.shuffle = 1 is not allowed: expected true or false"],
    ),
    "negative seed": (example(seed=-1), "seed", ["seed = -1 is not allowed"]),
    "validation fraction too big": (
        example(validation=0.95),
        "data.validation_fraction",
        ["data.validation_fraction = 0.95 is not allowed", "<= 0.9"],
    ),
    "features not a list": (
        example(features="x1"),
        "data.features",
        ["data.features = 'x1' is not allowed", "list"],
    ),
    "unknown dataset": (
        example(dataset="spiralz"),
        "data.dataset",
        ["data.dataset = 'spiralz' is not allowed", "available: csv, spiral"],
    ),
    "both layers and architecture": (
        example(architecture="mlp"),
        "model",
        ["model.layers and model.architecture are both given", "exactly one"],
    ),
    "neither layers nor architecture": (
        example(layers=None),
        "model",
        ["model needs layers or an architecture", "mlp"],
    ),
    "output activation with layers": (
        example(output_activation="tanh"),
        "model.output_activation",
        ["model.output_activation applies only to an architecture"],
    ),
    "bad dtype": (
        example(dtype="float16"),
        "model.dtype",
        ["model.dtype = 'float16' is not allowed", "'float64', 'float32'"],
    ),
    "unknown metric": (
        example(metrics=["accuracy", "acc"]),
        "training.metrics[1]",
        ["training.metrics[1] = 'acc' is not allowed", "available: accuracy"],
    ),
    "regularizers not a list": (
        example(regularizers="l2"),
        "training.regularizers",
        ["training.regularizers = 'l2' is not allowed", "list"],
    ),
    "bad regularizer parameter": (
        example(regularizers=['{ name = "l2", strength = -1 }']),
        "training.regularizers[0].strength",
        ["training.regularizers[0].strength = -1 is not allowed"],
    ),
    "bad schedule choice": (
        example(schedule='{ name = "step", per = "week" }'),
        "training.schedule.per",
        ["training.schedule.per = 'week' is not allowed", "'epoch', 'step'"],
    ),
    "missing [training]": (
        EXAMPLE[: EXAMPLE.index("[training]")],
        "training",
        ["missing table [training]"],
    ),
    "missing loss": (
        example(loss=None),
        "training.loss",
        ["missing key training.loss"],
    ),
    "init parameter": (
        example(init='{ name = "xavier_uniform", gian = 2.0 }'),
        "model.init.gian",
        ["unknown key model.init.gian", "did you mean 'gain'"],
    ),
}


@pytest.mark.parametrize("case", list(MISTAKES), ids=list(MISTAKES))
def test_each_mistake_names_its_field(case):
    text, field, fragments = MISTAKES[case]
    with pytest.raises(ExperimentError) as info:
        parse(text)
    message = str(info.value)
    assert info.value.field == field, message
    assert isinstance(info.value, PluginError)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_activation_params_are_checked_against_the_activation():
    leaky = dense_layer(1, "leaky_relu", activation_params="{ negative_slope = 0.2 }")
    good = example(layers=[HIDDEN, HIDDEN, leaky])
    assert parse(good).model.layers[2]["activation_params"] == {"negative_slope": 0.2}
    bad = edit(good, "negative_slope", "slope")
    with pytest.raises(
        ExperimentError, match=r"unknown key model\.layers\[2\]\.activation_params\.slope"
    ):
        parse(bad)


def test_bad_toml_syntax_names_the_file_line_and_column(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("schema = 1\nseed = 7\n[data\ndataset = 'spiral'\n", encoding="utf-8")
    with pytest.raises(ExperimentError) as info:
        load_experiment(path, REGISTRY)
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "column" in message


def test_validation_errors_from_a_file_start_with_its_name(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(example(batch_size=0), encoding="utf-8")
    with pytest.raises(ExperimentError, match=re.escape(f"{path}: training.batch_size = 0")):
        load_experiment(path, REGISTRY)


def test_missing_file_gives_a_clear_message(tmp_path):
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ExperimentError, match=r"experiment file not found: .*nowhere\.toml"):
        load_experiment(path, REGISTRY)


def test_a_folder_or_non_utf8_file_is_a_clear_error(tmp_path):
    with pytest.raises(ExperimentError, match="cannot read experiment file"):
        load_experiment(tmp_path, REGISTRY)
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ExperimentError, match="not UTF-8"):
        load_experiment(path, REGISTRY)


# ---------------------------------------------------------------------------------- round trip

ARCHITECTURE_VARIANT = experiment_text(
    seed=3,
    dataset="spiral",
    data="n = 300\nnoise = 0.05",
    validation=0.0,
    data_seed=11,
    init='{ name = "xavier_uniform", gain = 1.5 }',
    architecture='{ name = "mlp", depth = 2, width = 8, activation = "relu" }',
    output_activation="sigmoid",
    dtype="float32",
    loss="bce",
    optimizer='{ name = "sgd", lr = 1e-08, momentum = 0.9, nesterov = true }',
    batch_size=16,
    shuffle=False,
    epochs=5,
    regularizers=['{ name = "l2", strength = 1e-4 }'],
    schedule='{ name = "step", step_size = 10, gamma = 0.5 }',
)

VARIANTS = {
    "example": EXAMPLE,
    "architecture": ARCHITECTURE_VARIANT,
    "auto output, metrics, adam betas": example(
        optimizer='{ name = "adam", lr = 0.001, betas = [0.5, 0.999] }', metrics=["accuracy"]
    ),
    "dataset file, strs param": example(
        dataset="csv", data='path = "my data/\\"x\\".csv"\ntarget = ["y"]', features=None
    ),
    "two regularizers, empty features": example(
        features=[], regularizers=["l2", '{ name = "l2", strength = 0.5 }']
    ),
}


@pytest.mark.parametrize("name", list(VARIANTS), ids=list(VARIANTS))
def test_save_then_load_gives_an_equal_experiment_and_the_same_text(tmp_path, name):
    exp = parse_experiment(VARIANTS[name], REGISTRY, base_dir=tmp_path)  # as if read from there
    path = tmp_path / "exp.toml"
    save_experiment(exp, path)
    again = load_experiment(path, REGISTRY)
    assert again == exp
    assert experiment_to_toml(again) == path.read_text(encoding="utf-8")


def test_written_text_is_what_a_person_would_write():
    text = experiment_to_toml(parse(EXAMPLE))
    assert '[training.optimizer]\nname = "sgd"\nlr = 0.03\n' in text  # tomli-w: a table
    assert '  { type = "dense", units = 8, activation = "tanh" },\n' in text
    assert 'loss = "mse"' in text and "shuffle = true" in text and "[training]" in text
    arch = experiment_to_toml(parse(ARCHITECTURE_VARIANT))
    assert (
        "lr = 1e-08" in arch
        and 'regularizers = [\n  { name = "l2", strength = 0.0001 },\n]' in arch
    )


@pytest.mark.parametrize(
    "value",
    [0.03, 1e-08, 5e-324, 1.7976931348623157e308, -0.0, 1e16, 123456789.125, 2.5e-300],
)
def test_floats_round_trip_exactly(value):
    text = toml_dumps({"x": value})
    assert tomllib.loads(text)["x"] == value
    assert math.copysign(1.0, tomllib.loads(text)["x"]) == math.copysign(1.0, value)


def test_writer_covers_the_subset():
    doc = {
        "s": 'quote " backslash \\ newline \n tab \t bell \x07 del \x7f é ✓',
        "i": -12,
        "b": False,
        "f": [1.5, -2.0, 3],
        "empty": [],
        "t": {
            "inline": {"a": 1, "nested": {"b": [1, 2]}, "odd key": "v"},
            "rows": [{"a": 1}, {"b": "x"}],
            "none": {},
        },
    }
    assert tomllib.loads(toml_dumps(doc)) == doc
    assert math.isinf(tomllib.loads(toml_dumps({"x": float("-inf")}))["x"])
    with pytest.raises(TypeError):
        toml_dumps({"x": None})


# --------------------------------------------------------------------------- property: any valid

finite_nonneg = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)
activations = st.sampled_from(["tanh", "relu", "sigmoid", "linear", "gelu"])
dense = st.fixed_dictionaries(
    {"type": st.just("dense"), "units": st.integers(1, 100_000)},
    optional={"activation": activations, "use_bias": st.booleans()},
)
dropout = st.fixed_dictionaries(
    {"type": st.just("dropout")}, optional={"rate": st.floats(0.0, 0.95)}
)

models = st.one_of(
    st.builds(
        ModelSpec,
        layers=st.lists(st.one_of(dense, dropout), min_size=1, max_size=6),
        architecture=st.none(),
        init=st.one_of(
            st.just(PluginChoice("xavier_uniform", {})),
            st.builds(
                PluginChoice,
                st.just("xavier_uniform"),
                st.fixed_dictionaries({"gain": finite_nonneg}),
            ),
        ),
        dtype=st.sampled_from(["float64", "float32"]),
    ),
    st.builds(
        ModelSpec,
        layers=st.none(),
        architecture=st.builds(
            PluginChoice,
            st.just("mlp"),
            st.fixed_dictionaries(
                {},
                optional={
                    "depth": st.integers(0, 64),
                    "width": st.integers(1, 512),
                    "activation": activations,
                },
            ),
        ),
        output_activation=st.one_of(st.just("auto"), activations),
    ),
)
optimizers = st.builds(
    PluginChoice,
    st.just("sgd"),
    st.fixed_dictionaries(
        {"lr": finite_nonneg},
        optional={"momentum": st.floats(0.0, 1.0), "nesterov": st.booleans()},
    ),
)
trainings = st.builds(
    TrainingSpec,
    loss=st.sampled_from([PluginChoice("mse", {}), PluginChoice("bce", {})]),
    optimizer=optimizers,
    batch_size=st.integers(1, 2**40),
    shuffle=st.booleans(),
    epochs=st.integers(1, 10**6),
    regularizers=st.lists(
        st.builds(
            PluginChoice,
            st.just("l2"),
            st.fixed_dictionaries({}, optional={"strength": finite_nonneg}),
        ),
        max_size=2,
    ),
    schedule=st.one_of(
        st.none(),
        st.builds(
            PluginChoice,
            st.just("step"),
            st.fixed_dictionaries({"step_size": st.integers(1, 1000), "gamma": finite_nonneg}),
        ),
    ),
    metrics=st.one_of(st.none(), st.just([]), st.just(["accuracy"])),
)
datas = st.builds(
    DataSpec,
    dataset=st.just("spiral"),
    options=st.fixed_dictionaries(
        {}, optional={"n": st.integers(1, 100_000), "noise": st.floats(0.0, 1.0)}
    ),
    validation_fraction=st.floats(0.0, 0.9),
    features=st.one_of(
        st.none(), st.lists(st.sampled_from(list(FEATURES)), unique=True, max_size=4)
    ),
    seed=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
)
experiments = st.builds(
    Experiment, data=datas, model=models, training=trainings, seed=st.integers(0, 2**63 - 1)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(experiments)
def test_any_valid_experiment_round_trips_through_toml(exp):
    text = experiment_to_toml(exp)
    again = parse_experiment(text, REGISTRY)
    assert again == exp
    assert experiment_to_toml(again) == text


# -------------------------------------------------------------------------------- atomic saving


def test_save_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "sub" / "exp.toml"
    save_experiment(EXPECTED, path)
    save_experiment(EXPECTED, path)
    assert [p.name for p in path.parent.iterdir()] == ["exp.toml"]
    assert load_experiment(path, REGISTRY) == EXPECTED


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_save_keeps_the_old_file_whole(tmp_path, monkeypatch, failing):
    path = tmp_path / "exp.toml"
    save_experiment(EXPECTED, path)
    before = path.read_bytes()
    changed = Experiment(EXPECTED.data, EXPECTED.model, EXPECTED.training, seed=99)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(OSError, match="disk full"):
        save_experiment(changed, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["exp.toml"]
    save_experiment(changed, path)
    assert load_experiment(path, REGISTRY).seed == 99


def test_a_plugins_own_cross_checks_run_at_load_time():
    registry = default_registry()
    text = example(optimizer='{ name = "sgd", lr = 0.03, nesterov = true }')
    doc = tomllib.loads(text)
    with pytest.raises(ExperimentError) as info:
        parse_experiment(doc, registry)
    assert info.value.field == "training.optimizer"
    assert "training.optimizer: " in str(info.value) and "Nesterov" in str(info.value)


def test_a_teacher_s_classroom_settings_round_trip_and_bad_names_are_named():
    text = EXAMPLE + '\n[classroom]\nhide = ["landscape", "plugins"]\nlock = ["editor"]\n'
    exp = parse_experiment(text)
    assert exp.classroom.hide == ["landscape", "plugins"] and exp.classroom.lock == ["editor"]
    assert parse_experiment(experiment_to_toml(exp)) == exp
    assert "classroom" not in experiment_to_dict(parse_experiment(EXAMPLE))
    for bad, field_name in (
        ('hide = ["radar"]', "classroom.hide[0]"),
        ('lock = ["editor", "play"]', "classroom.lock[1]"),
        ('paint = ["x"]', "classroom"),
        ('hide = "landscape"', "classroom.hide"),
    ):
        with pytest.raises(ExperimentError) as info:
            parse_experiment(EXAMPLE + f"\n[classroom]\n{bad}\n")
        assert info.value.field.startswith(field_name), (bad, info.value.field)
