"""Small experiments for tests that need a trained network of a given shape."""

from engine.experiment import parse_experiment
from engine.session import Session

TEMPLATE = """
schema = 1
seed = {seed}
[data]
dataset = "{dataset}"
{data}
validation_fraction = 0.2
[model]
init = "xavier_uniform"
layers = [{layers}]
[training]
loss = {loss}
optimizer = {{ name = "sgd", lr = {lr} }}
batch_size = 10
epochs = 3
"""


def small_session(
    layers, loss='"mse"', dataset="spiral", data="n = 60", seed=3, lr=0.05, registry=None
):
    """A session on ``dataset`` with the given layer tables (TOML inline tables, comma-joined)."""
    text = TEMPLATE.format(layers=layers, loss=loss, dataset=dataset, data=data, seed=seed, lr=lr)
    return Session(parse_experiment(text, registry), registry=registry)
