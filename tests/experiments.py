"""Small experiments for tests: TOML text from a few choices, checked edits, and sessions."""

import numpy as np

from gradient_lab.engine.loading.discovery import default_registry
from gradient_lab.engine.model.single import SingleLayer
from gradient_lab.engine.training.experiment import parse_experiment
from gradient_lab.engine.training.session import Session


def dense(units, activation="tanh", **options):
    """One dense layer as an inline TOML table; ``options`` are more keys, values as written
    (``use_bias="false"``, ``activation_params="{ negative_slope = 0.2 }"``)."""
    extra = "".join(f", {key} = {value}" for key, value in options.items())
    return f'{{ type = "dense", units = {units}, activation = "{activation}"{extra} }}'


def value(item):
    """``item`` as a TOML value: numbers and booleans as TOML, lists item by item, and a string
    as a quoted name unless it is TOML already (starts with ``{``, ``[`` or ``"``)."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, (list, tuple)):
        return "[" + ", ".join(value(x) for x in item) + "]"
    if isinstance(item, str) and not item.startswith(("{", "[", '"')):
        return f'"{item}"'
    return str(item)


def experiment_text(
    layers=None,
    *,
    schema=1,
    seed=3,
    dataset="spiral",
    data="n = 60",
    validation=0.2,
    features=None,
    data_seed=None,
    init="xavier_uniform",
    dtype=None,
    architecture=None,
    output_activation=None,
    loss="mse",
    optimizer='{ name = "sgd", lr = 0.05 }',
    batch_size=10,
    shuffle=None,
    epochs=3,
    regularizers=None,
    schedule=None,
    metrics=None,
):
    """An experiment file; every keyword is one line of it, and None leaves the line out.

    ``layers``: inline tables (a list, or one comma-joined string), e.g. from ``dense``.
    ``data``: the dataset's own options, [data] lines as written (``"n = 60\\nnoise = 0.1"``).
    ``data_seed``: [data] seed. ``validation``: validation_fraction.
    The rest are written with ``value``: plugin choices (``init``, ``architecture``, ``loss``,
    ``optimizer``, ``schedule``) are a name or an inline table as written, ``features`` and
    ``metrics`` lists of names, ``regularizers`` a list of choices; a string that starts with
    ``{``, ``[`` or ``"`` is TOML as written (``regularizers="l2"`` gives ``"l2"``, not a list).
    """
    if layers is not None and not isinstance(layers, str):
        layers = "".join(f"\n  {layer}," for layer in layers) + "\n"

    def line(key, item):
        return None if item is None else f"{key} = {value(item)}"

    lines = [
        line("schema", schema),
        line("seed", seed),
        "[data]",
        line("dataset", dataset),
        data,
        line("validation_fraction", validation),
        line("features", features),
        line("seed", data_seed),
        "[model]",
        line("init", init),
        line("dtype", dtype),
        None if layers is None else f"layers = [{layers}]",
        line("architecture", architecture),
        line("output_activation", output_activation),
        "[training]",
        line("loss", loss),
        line("optimizer", optimizer),
        line("batch_size", batch_size),
        line("shuffle", shuffle),
        line("epochs", epochs),
        line("regularizers", regularizers),
        line("schedule", schedule),
        line("metrics", metrics),
    ]
    return "\n".join(text for text in lines if text) + "\n"


def edit(text, old, new):
    """``text`` with ``old`` replaced by ``new``, for a mistake the builder cannot write (an
    unknown key). ``old`` must occur exactly once, so an edit never silently changes nothing."""
    count = text.count(old)
    if count != 1:
        raise AssertionError(f"edit: {old!r} occurs {count} times in the experiment, not once")
    return text.replace(old, new)


def small_session(layers=None, *, lr=0.05, registry=None, **options):
    """A session of ``experiment_text(layers, **options)`` with ``registry``; the optimizer is
    plain SGD at ``lr`` unless ``optimizer`` is given."""
    options.setdefault("optimizer", f'{{ name = "sgd", lr = {lr} }}')
    text = experiment_text(layers, **options)
    return Session(parse_experiment(text, registry), registry=registry)


README_EXAMPLE = dict(
    layers=[dense(8, "tanh"), dense(8, "tanh"), dense(1, "tanh")],
    seed=7,
    dataset="spiral",
    data="n = 500\nnoise = 0.1",
    validation=0.2,
    features=["x1", "x2"],
    init="xavier_uniform",
    loss="mse",
    optimizer='{ name = "sgd", lr = 0.03 }',
    batch_size=10,
    shuffle=True,
    epochs=100,
)
"""The README's example experiment as builder choices (tests vary its size and epochs)."""


def single_layer(name, input_shape, seed=0, init="xavier_uniform", **hp):
    """The built-in layer ``name`` built alone for samples of ``input_shape`` (a SingleLayer:
    writable ``params``, ``grads`` and ``state``, ``forward`` and ``backward``)."""
    registry = default_registry()
    return SingleLayer(
        registry.create("layer", name, **hp),
        input_shape,
        registry.create,
        registry.create("initializer", init),
        np.random.default_rng(seed),
    )


def central_differences(fun, theta, step=1e-6):
    """d fun / d theta by central differences, one column per coordinate: a vector (n,) for a
    scalar ``fun``, a matrix (outputs, n) for a vector one."""
    columns = []
    for i in range(theta.size):
        h = step * max(1.0, abs(theta[i]))
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        columns.append((np.asarray(fun(up)) - np.asarray(fun(down))) / (2 * h))
    return np.stack(columns, axis=-1)
