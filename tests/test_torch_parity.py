"""Whole training runs agree with PyTorch started from the same weights on the same batches."""

import numpy as np
import pytest

from gradient_lab.engine.training.experiment import parse_experiment
from gradient_lab.engine.training.session import Session

torch = pytest.importorskip("torch")

TEMPLATE = """
schema = 1
seed = 3
[data]
dataset = "{dataset}"
n = 120
noise = 0.1
validation_fraction = 0.0
[model]
init = "xavier_uniform"
layers = [
  {{ type = "dense", units = 6, activation = "{hidden}" }},
  {{ type = "dense", units = {outputs}, activation = "{output}" }},
]
[training]
loss = "{loss}"
optimizer = {optimizer}
batch_size = 16
shuffle = false
epochs = 1
{extra}
"""

TORCH_ACT = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "linear": lambda z: z,
    "gelu": torch.nn.functional.gelu,
    "elu": torch.nn.functional.elu,
    "silu": torch.nn.functional.silu,
    "softplus": torch.nn.functional.softplus,
    "softmax": lambda z: torch.softmax(z, dim=1),
}


def torch_loss(name, pred, target):
    f = torch.nn.functional
    if name == "mse":
        return f.mse_loss(pred, target)
    if name == "mae":
        return f.l1_loss(pred, target)
    if name == "huber":
        return f.huber_loss(pred, target)
    if name == "bce":
        return f.binary_cross_entropy(pred, target)
    if name == "bce_with_logits":
        return f.binary_cross_entropy_with_logits(pred, target)
    if name == "cross_entropy":
        return f.cross_entropy(pred, target.argmax(dim=1))
    raise AssertionError(name)


def torch_optimizer(spec, params):
    name, hp = spec
    if name == "sgd":
        return torch.optim.SGD(params, **hp)
    if name == "adam":
        return torch.optim.Adam(params, **hp)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, **hp)
    if name == "adamw":
        return torch.optim.AdamW(params, **hp)
    raise AssertionError(name)


CASES = [
    ("circle", "tanh", "tanh", 1, "mse", '{ name = "sgd", lr = 0.1 }', ("sgd", {"lr": 0.1})),
    (
        "circle",
        "relu",
        "sigmoid",
        1,
        "bce",
        '{ name = "momentum", lr = 0.05 }',
        ("sgd", {"lr": 0.05, "momentum": 0.9}),
    ),
    (
        "xor",
        "gelu",
        "linear",
        1,
        "bce_with_logits",
        '{ name = "adam", lr = 0.01 }',
        ("adam", {"lr": 0.01}),
    ),
    (
        "blobs",
        "elu",
        "linear",
        3,
        "cross_entropy",
        '{ name = "rmsprop", lr = 0.01, momentum = 0.5, centered = true }',
        ("rmsprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
    ),
    (
        "blobs",
        "silu",
        "softmax",
        3,
        "cross_entropy",
        '{ name = "adamw", lr = 0.01 }',
        ("adamw", {"lr": 0.01}),
    ),
    (
        "circle",
        "softplus",
        "linear",
        1,
        "huber",
        '{ name = "nesterov", lr = 0.05 }',
        ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ),
]


@pytest.mark.parametrize(
    "dataset,hidden,output,outputs,loss,optimizer,torch_opt",
    CASES,
    ids=[f"{c[4]}-{c[6][0]}-{c[1]}" for c in CASES],
)
def test_training_matches_pytorch(dataset, hidden, output, outputs, loss, optimizer, torch_opt):
    text = TEMPLATE.format(
        dataset=dataset,
        hidden=hidden,
        output=output,
        outputs=outputs,
        loss=loss,
        optimizer=optimizer,
        extra="",
    )
    session = Session(parse_experiment(text))
    init = session.initial_params
    weights = [
        torch.tensor(init[f"layers.{i}.{n}"], requires_grad=True)
        for i in range(2)
        for n in ("W", "b")
    ]
    opt = torch_optimizer(torch_opt, weights)
    x = torch.tensor(session.x_train)
    t = torch.tensor(session.targets_train)
    steps = 3 * session.steps_per_epoch
    session.run_steps(steps)
    ours = session.history.steps.column("train_loss")
    theirs = []
    bs = session.batch_size
    for step in range(steps):
        start = (step % session.steps_per_epoch) * bs
        xb, tb = x[start : start + bs], t[start : start + bs]
        h = TORCH_ACT[hidden](xb @ weights[0] + weights[1])
        out = TORCH_ACT[output](h @ weights[2] + weights[3])
        if loss == "cross_entropy" and output == "softmax":
            value = torch.nn.functional.nll_loss(torch.log(out), tb.argmax(dim=1))
        else:
            value = torch_loss(loss, out, tb)
        opt.zero_grad()
        value.backward()
        opt.step()
        theirs.append(value.item())
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    final = session.parameters()
    for i, name in enumerate(("layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b")):
        np.testing.assert_allclose(final[name], weights[i].detach().numpy(), rtol=1e-9, atol=1e-12)
