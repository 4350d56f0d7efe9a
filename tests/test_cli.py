"""The command line: outputs of `run`, reproducibility, and one-line errors for user mistakes."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gradient_lab.engine.cli.main import default_experiment_path, main
from tests.experiments import dense, edit, experiment_text

CHOICES = dict(
    layers=[dense(4, "tanh"), dense(1, "tanh")],
    seed=5,
    dataset="circle",
    data="n = 100",
    init=None,
    optimizer='{ name = "sgd", lr = 0.1 }',
    batch_size=16,
)
SMALL = experiment_text(**CHOICES)


def small(**changes):
    """SMALL with some of its choices changed."""
    return experiment_text(**{**CHOICES, **changes})


@pytest.fixture
def experiment(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(SMALL)
    return path


def run(*args):
    return main([str(a) for a in args])


def test_run_writes_history_params_and_summary(experiment, tmp_path):
    out = tmp_path / "out"
    assert run("run", experiment, "--out", out, "--quiet") == 0
    rows = list(csv.DictReader((out / "history.csv").open()))
    steps_per_epoch = 5  # 80 training samples, batch 16
    assert len(rows) == 3 * steps_per_epoch
    assert [int(r["step"]) for r in rows] == list(range(1, 16))
    assert rows[4]["val_loss"] and rows[4]["train_accuracy"] and not rows[3]["val_loss"]
    params = np.load(out / "params.npz")
    assert params["layers.0.W"].shape == (2, 4) and params["layers.0.b"].shape == (4,)
    assert params["layers.1.W"].shape == (4, 1)
    init = np.load(out / "params_init.npz")
    assert not np.array_equal(init["layers.0.W"], params["layers.0.W"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 15 and summary["epochs"] == 3 and summary["seed"] == 5


def test_steps_seed_and_init_params_reproduce(experiment, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert run("run", experiment, "--out", a, "--steps", 7, "--quiet") == 0
    assert (
        run(
            "run",
            experiment,
            "--out",
            b,
            "--steps",
            7,
            "--quiet",
            "--init-params",
            a / "params_init.npz",
        )
        == 0
    )
    assert run("run", experiment, "--out", c, "--steps", 7, "--quiet", "--seed", 6) == 0
    pa, pb, pc = (np.load(d / "params.npz") for d in (a, b, c))
    assert pa["layers.0.W"].tobytes() == pb["layers.0.W"].tobytes()
    assert pa["layers.0.W"].tobytes() != pc["layers.0.W"].tobytes()
    assert len(list(csv.DictReader((a / "history.csv").open()))) == 7


def test_init_params_shape_mismatch_is_one_clear_line(experiment, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(
        bad,
        **{
            "layers.0.W": np.zeros((3, 4)),
            "layers.0.b": np.zeros(4),
            "layers.1.W": np.zeros((4, 1)),
            "layers.1.b": np.zeros(1),
        },
    )
    assert run("run", experiment, "--init-params", bad, "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "layers.0.W" in err[0] and "(3, 4)" in err[0]


@pytest.mark.parametrize(
    "text,needle",
    [
        (small(batch_size=0), "training.batch_size"),
        (small(dataset="spirall"), "data.dataset"),
        (edit(SMALL, "epochs = 3", "epochz = 3"), "training.epochz"),
        (small(layers=[dense('"four"', "tanh"), dense(1, "tanh")]), "model.layers[0].units"),
    ],
    ids=["batch_size", "dataset", "epochz", "units"],
)
def test_bad_experiment_exits_2_with_one_line(experiment, tmp_path, capsys, text, needle):
    experiment.write_text(text)
    assert run("run", experiment, "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0]


def test_missing_file_is_a_clear_error_in_a_real_process(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gradient_lab.engine.cli.main", "run", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "nope.toml" in result.stderr


def test_default_experiment_ships_and_runs(tmp_path):
    assert default_experiment_path().is_file()
    assert run("run", default_experiment_path(), "--steps", 3, "--out", tmp_path, "--quiet") == 0


def test_plugins_list_json_covers_every_kind(capsys):
    assert run("plugins", "list", "--json", "--safe-mode") == 0
    records = json.loads(capsys.readouterr().out)
    kinds = {r["kind"] for r in records if r["status"] == "ok"}
    assert kinds >= {
        "activation",
        "loss",
        "optimizer",
        "initializer",
        "regularizer",
        "lr_schedule",
        "layer",
        "architecture",
        "dataset",
        "metric",
    }
    assert all(r["source"] == "builtin" for r in records)


def test_plugins_check_one_name_passes(capsys):
    assert run("plugins", "check", "tanh", "--safe-mode") == 0
    out = capsys.readouterr().out
    assert "activation tanh" in out and "FAIL" not in out


def test_hessian_command_writes_eigenvalues_trace_density_and_sharpness(experiment, tmp_path):
    out = tmp_path / "h.npz"
    code = run("hessian", experiment, "--epochs", 2, "--full", "--sharpness", "--out", out)
    assert code == 0
    data = np.load(out)
    spectrum = data["spectrum"]
    np.testing.assert_allclose(data["eigenvalues"], spectrum[::-1][:2], rtol=1e-6)
    grid, density = data["density_grid"], data["density"]
    assert abs(np.trapezoid(density, grid) - 1.0) < 1e-3
    assert data["sharpness"].shape == (2,) and np.all(data["stability_edge"] == 2 / 0.1)
    assert str(data["method"]) == "exact"


def test_hessian_with_params_and_steps_is_a_clear_error(experiment, tmp_path, capsys):
    assert run("run", experiment, "--out", tmp_path, "--steps", 2, "--quiet") == 0
    code = run("hessian", experiment, "--params", tmp_path / "params.npz", "--steps", 3)
    assert code == 2 and "--params" in capsys.readouterr().err


def test_diagnose_records_every_k_steps(experiment, tmp_path):
    out = tmp_path / "d.npz"
    assert run("diagnose", experiment, "--steps", 12, "--every", 4, "--out", out) == 0
    data = np.load(out)
    assert list(data["steps"]) == [4, 8, 12]
    assert data["grad_norm"].shape == (3, 4)  # two dense layers: W and b each


def test_theory_race_approximate_and_signal_write_their_files(tmp_path, capsys):
    race = tmp_path / "race.npz"
    assert (
        run(
            "theory",
            "race",
            "quadratic",
            "--set",
            "kappa=10",
            "--optimizers",
            "sgd,adam",
            "--steps",
            50,
            "--lr",
            0.1,
            "--out",
            race,
        )
        == 0
    )
    data = np.load(race)
    assert list(data["optimizers"]) == ["sgd", "adam"]
    assert data["trajectories"].shape == (2, 51, 2)
    assert run("theory", "approximate", "--out", tmp_path / "a.npz") == 0
    assert np.load(tmp_path / "a.npz")["fit_max_error"][-1] < 0.05
    assert (
        run(
            "theory",
            "signal",
            "--seeds",
            2,
            "--width",
            32,
            "--depth",
            5,
            "--out",
            tmp_path / "s.npz",
        )
        == 0
    )
    assert np.load(tmp_path / "s.npz")["pre_activation_variance"].shape == (5,)


def test_theory_bad_option_is_one_line(capsys):
    assert run("theory", "race", "quadratic", "--set", "kappa") == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_landscape_command_writes_the_grid_and_the_projected_path(experiment, tmp_path):
    out = tmp_path / "l.npz"
    code = run("landscape", experiment, "--epochs", 2, "--mode", "pca", "--grid", 11, "--out", out)
    assert code == 0
    data = np.load(out)
    assert data["loss"].shape == (11, 11) and data["x"][5] == 0.0 and data["y"][5] == 0.0
    assert data["loss"][5, 5] == data["origin_loss"]
    assert data["trajectory"].shape == (11, 2)  # the initial state and 10 steps
    assert 0.5 < data["explained_variance"].sum() <= 1.0 + 1e-12


def test_landscape_pca_without_a_trajectory_is_a_clear_error(experiment, tmp_path, capsys):
    assert run("run", experiment, "--out", tmp_path, "--steps", 2, "--quiet") == 0
    code = run("landscape", experiment, "--params", tmp_path / "params.npz", "--mode", "pca")
    assert code == 2 and "trajectory" in capsys.readouterr().err


def test_training_works_beside_other_distributions_top_level_engine_and_app(experiment, tmp_path):
    """PyPI's `app` and any package with a top-level `engine` install those names into
    site-packages; Gradient Lab lives under gradient_lab only, so it never picks theirs up.
    Their folders come first on the path here, which shadows harder than an install would."""
    site = tmp_path / "site"
    for name in ("engine", "app", "plugins", "assets"):
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text("")
    (site / "engine" / "kernels.py").write_text("NOTHING = 'a different distribution'\n")
    done = subprocess.run(
        [sys.executable, "-m", "gradient_lab.engine.cli", "run", str(experiment),
         "--epochs", "2", "--quiet", "--out", str(tmp_path / "out")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["epochs"] == 2
