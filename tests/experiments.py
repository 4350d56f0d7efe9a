"""Small experiments for tests: TOML text from a few choices, and sessions built from it."""

from engine.experiment import parse_experiment
from engine.session import Session


def dense(units, activation):
    """One dense layer as an inline TOML table."""
    return f'{{ type = "dense", units = {units}, activation = "{activation}" }}'


def experiment_text(
    layers,
    *,
    seed=3,
    dataset="spiral",
    data="n = 60",
    validation=0.2,
    init="xavier_uniform",
    loss='"mse"',
    optimizer='{ name = "sgd", lr = 0.05 }',
    batch_size=10,
    epochs=3,
):
    """An experiment file. ``layers``: inline tables (a list, or one comma-joined string);
    ``data``, ``loss`` and ``optimizer`` are TOML as written; None leaves a line out."""
    if not isinstance(layers, str):
        layers = "".join(f"\n  {layer}," for layer in layers) + "\n"
    lines = [
        "schema = 1",
        f"seed = {seed}",
        "[data]",
        f'dataset = "{dataset}"',
        data,
        f"validation_fraction = {validation}",
        "[model]",
        None if init is None else f'init = "{init}"',
        f"layers = [{layers}]",
        "[training]",
        f"loss = {loss}",
        f"optimizer = {optimizer}",
        f"batch_size = {batch_size}",
        None if epochs is None else f"epochs = {epochs}",
    ]
    return "\n".join(line for line in lines if line is not None) + "\n"


def small_session(layers, loss='"mse"', dataset="spiral", data="n = 60", seed=3, lr=0.05,
                  registry=None):  # fmt: skip
    """A session on ``dataset`` with the given layer tables (TOML inline tables, comma-joined)."""
    text = experiment_text(
        layers, seed=seed, dataset=dataset, data=data, loss=loss,
        optimizer=f'{{ name = "sgd", lr = {lr} }}',
    )  # fmt: skip
    return Session(parse_experiment(text, registry), registry=registry)
