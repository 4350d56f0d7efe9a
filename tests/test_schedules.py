"""Built-in learning-rate schedules: closed forms, and PyTorch's lr_scheduler step by step."""

import math

import pytest

from gradient_lab.engine.plugin_api import Param
from gradient_lab.plugins.schedules import PLUGINS

BASE = 0.1
EPOCHS = range(61)


def by_name(name: str) -> type:
    return next(cls for cls in PLUGINS if cls.name == name)


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.name)
def test_declares_metadata_and_per(cls):
    assert cls.kind == "lr_schedule"
    assert cls.name and cls.version and cls.formula and cls.teaching
    assert all(isinstance(p, Param) and p.help for p in cls.params)
    per = next(p for p in cls.params if p.name == "per")
    assert per.default == "epoch" and set(per.choices) == {"epoch", "step"}
    assert cls(per="step").hp["per"] == "step"


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.name)
def test_starts_at_base_rate(cls):
    expected = BASE / 3 if cls.name == "linear_warmup" else BASE
    assert cls().lr(BASE, 0) == pytest.approx(expected, rel=1e-15)


def test_closed_forms():
    assert all(by_name("constant")().lr(BASE, t) == BASE for t in EPOCHS)
    step = by_name("step")()
    assert [step.lr(1.0, t) for t in (0, 29, 30, 59, 60)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01]
    )
    assert by_name("exponential")().lr(2.0, 10) == pytest.approx(2.0 * 0.95**10)
    cosine = by_name("cosine")(t_max=40, eta_min=0.01)
    assert cosine.lr(1.0, 20) == pytest.approx(0.505)
    assert cosine.lr(1.0, 40) == pytest.approx(0.01)
    assert cosine.lr(1.0, 80) == pytest.approx(1.0)  # PyTorch's wave rises again after t_max
    warm = by_name("linear_warmup")()
    assert [warm.lr(3.0, t) for t in (0, 1, 5, 6, 60)] == pytest.approx([1.0, 1.4, 3.0, 3.0, 3.0])


# (plugin name, hyperparameters, torch class, torch keyword arguments)
TORCH_CASES = [
    ("constant", {}, "ConstantLR", {"factor": 1.0, "total_iters": 0}),
    ("step", {}, "StepLR", {"step_size": 30, "gamma": 0.1}),
    ("step", {"step_size": 7, "gamma": 0.5}, "StepLR", {"step_size": 7, "gamma": 0.5}),
    ("exponential", {}, "ExponentialLR", {"gamma": 0.95}),
    ("exponential", {"gamma": 0.8}, "ExponentialLR", {"gamma": 0.8}),
    ("cosine", {}, "CosineAnnealingLR", {"T_max": 100, "eta_min": 0.0}),
    (
        "cosine",
        {"t_max": 25, "eta_min": 0.001},
        "CosineAnnealingLR",
        {"T_max": 25, "eta_min": 0.001},
    ),
    ("linear_warmup", {}, "LinearLR", {"start_factor": 1 / 3, "end_factor": 1.0, "total_iters": 5}),
    (
        "linear_warmup",
        {"start_factor": 0.1, "end_factor": 0.5, "total_iters": 20},
        "LinearLR",
        {"start_factor": 0.1, "end_factor": 0.5, "total_iters": 20},
    ),
]


@pytest.mark.parametrize(
    "name, hp, torch_name, torch_kw",
    TORCH_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(TORCH_CASES)],
)
def test_matches_torch_schedulers(name, hp, torch_name, torch_kw):
    torch = pytest.importorskip("torch")
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=BASE)
    scheduler = getattr(torch.optim.lr_scheduler, torch_name)(opt, **torch_kw)
    expected = []
    for _ in EPOCHS:
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    schedule = by_name(name)(**hp)
    got = [schedule.lr(BASE, t) for t in EPOCHS]
    for t, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert math.isclose(a, b, rel_tol=1e-10, abs_tol=1e-15), (t, a, b)
