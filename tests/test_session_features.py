"""Session features end to end: architectures, schedules, regularizers, LM, N-d data, CSV."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gradient_lab.engine.loading.discovery import discover
from gradient_lab.engine.loading.registry import Registry
from tests.experiments import central_differences, dense, small_session

BASE = dict(
    seed=11,
    dataset="circle",
    data="n = 120",
    validation=0.25,
    init=None,
    loss="mse",
    optimizer='{ name = "sgd", lr = 0.1 }',
    batch_size=12,
    epochs=4,
)
DENSE = [dense(6, "tanh"), dense(1, "tanh")]


def session(layers=DENSE, registry=None, **changes):
    """A session of BASE with ``layers`` and some of its choices changed."""
    return small_session(layers, registry=registry, **{**BASE, **changes})


def test_mlp_architecture_builds_the_layers_and_picks_the_output():
    s = session(
        None,
        architecture='{ name = "mlp", depth = 3, width = 5, activation = "relu" }',
        loss="bce",
    )
    assert [layer.hp["units"] for layer in s.model.layers] == [5, 5, 5, 1]
    assert s.model.layers[-1].hp["activation"] == "sigmoid"  # auto output for bce
    assert s.fused is not None
    s.run_epochs(2)
    assert s.epoch == 2


def test_step_schedule_changes_the_learning_rate_per_epoch():
    s = session(schedule='{ name = "step", step_size = 2, gamma = 0.5 }')
    s.run_epochs(4)
    assert [r["lr"] for r in s.history.epochs] == [0.1, 0.1, 0.05, 0.05]


def without_fast_paths(registry: Registry) -> Registry:
    """The same plugins with every inline fast path switched off (plugin NumPy code only)."""
    slow = Registry()
    for record in registry.ok_records():
        cls = record.cls
        if record.kind in ("optimizer", "regularizer"):
            cls = type(cls.__name__, (cls,), {"inline": ""})
        slow.add_class(cls, record.source, record.origin)
    return slow


@pytest.mark.parametrize(
    "optimizer",
    [
        '{ name = "sgd", lr = 0.1, momentum = 0.5, weight_decay = 0.01 }',
        '{ name = "nesterov", lr = 0.05 }',
        '{ name = "adagrad", lr = 0.1, lr_decay = 0.01 }',
        '{ name = "rmsprop", lr = 0.01, centered = true, momentum = 0.3 }',
        '{ name = "adadelta" }',
        '{ name = "adam", lr = 0.01, amsgrad = true, weight_decay = 0.001 }',
        '{ name = "adamw", lr = 0.01 }',
    ],
)
def test_fused_rules_agree_with_the_plugins_numpy_code(optimizer):
    regs = [
        '{ name = "l2", strength = 0.001 }',
        '{ name = "l1", strength = 0.0005 }',
        '{ name = "clip_norm", max_norm = 0.5 }',
        '{ name = "weight_decay", decay = 0.01 }',
    ]
    registry = discover(safe_mode=True)
    fast = session(optimizer=optimizer, regularizers=regs, registry=registry)
    slow = session(optimizer=optimizer, regularizers=regs, registry=without_fast_paths(registry))
    assert fast.fused is not None and slow.fused is None
    fast.run_steps(25)
    slow.run_steps(25)
    np.testing.assert_allclose(fast.model.theta, slow.model.theta, rtol=1e-9, atol=1e-12)


def test_levenberg_marquardt_fits_a_curve_full_batch():
    s = session(
        [dense(6, "tanh"), dense(1, "linear")],
        optimizer="levenberg_marquardt",
        dataset="sine",
        data="n = 60\nnoise = 0.0",
    )
    assert s.batch_size == len(s.x_train) and s.steps_per_epoch == 1
    start = s.evaluate("train")["loss"]
    s.run_steps(30)
    assert s.evaluate("train")["loss"] < 0.01 * start


def test_image_shaped_digits_flow_through_flatten():
    s = session(
        ['{ type = "flatten" }', dense(16, "relu"), dense(10, "linear")],
        loss="cross_entropy",
        optimizer='{ name = "adam", lr = 0.01 }',
        dataset="digits",
        data='shape = "image"',
    )
    assert s.data.input_shape == (1, 8, 8) and s.fused is None
    s.run_epochs(2)
    assert s.history.epochs[-1]["val_accuracy"] > 0.7


def test_csv_regression_trains(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (80, 2))
    y = 0.5 * x[:, 0] - x[:, 1]
    path = tmp_path / "plane.csv"
    rows = "\n".join(f"{a},{b},{c}" for (a, b), c in zip(x, y, strict=True))
    path.write_text("a,b,y\n" + rows + "\n")
    s = session(
        [dense(1, "linear")],
        dataset="csv",
        data=f'path = "{path.as_posix()}"\ntarget = "y"',
        optimizer='{ name = "sgd", lr = 0.2 }',
    )
    assert s.data.task == "regression"
    s.run_epochs(30)
    np.testing.assert_allclose(s.parameters()["layers.0.W"].ravel(), [0.5, -1.0], atol=0.02)


def test_a_wrong_output_width_is_a_clear_error():
    with pytest.raises(Exception, match="units = 1"):
        session([dense(3, "tanh")])


def test_a_new_process_loads_the_kernels_without_compiling():
    script = textwrap.dedent("""
        from gradient_lab.engine.cli.main import default_experiment_path
        from gradient_lab.engine.training.experiment import load_experiment
        from gradient_lab.engine.training.session import Session
        from gradient_lab.engine.compute import kernels
        s = Session(load_experiment(default_experiment_path()))
        s.run_steps(5)
        s.step_batch()
        misses = sum(sum(k.stats.cache_misses.values()) for k in
                     (kernels.train_steps, kernels.forward_layer, kernels.backward_layer,
                      kernels.loss_and_grad, kernels.optimizer_step))
        print(misses)
    """)
    run = [sys.executable, "-c", script]
    subprocess.run(run, check=True, capture_output=True, timeout=600)  # compiles on a cold cache
    result = subprocess.run(run, check=True, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "0"


def test_regression_without_validation_data():
    s = session([dense(1, "linear")], dataset="plane", data="n = 50", validation=0.0)
    assert s.data.task == "regression" and len(s.data.X_val) == 0
    assert s.targets_val.shape == (0, 1)
    s.run_epochs(2)
    assert "val_loss" not in s.history.epochs[-1]


def test_levenberg_marquardt_jacobian_keeps_samples_fitted_exactly():
    """Samples whose prediction equals the target still belong in J: the residual's
    derivative does not depend on the residual. (The Jacobian was scaled by r / (pred - t)
    with 1 for a zero denominator, so those rows came out 0 and one step was 35% off.)"""
    s = session(
        [dense(4, "tanh"), dense(1, "linear")],
        optimizer="levenberg_marquardt",
        dataset="sine",
        data="n = 25\nnoise = 0.0",
    )
    s.targets_train[:5] = s.predict(s.x_train[:5])  # five samples fitted exactly
    theta = s.model.theta.copy()
    jac = s.context.jacobian(theta)
    numeric = central_differences(s.context.residuals, theta)
    assert np.abs(jac[:5]).max() > 0.0
    np.testing.assert_allclose(jac, numeric, rtol=1e-6, atol=1e-9)
