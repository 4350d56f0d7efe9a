"""Starting the app: the checks before Qt starts (no display, missing X libraries) give one line
and exit code 2, the default experiment teaches at first sight, and both ways of launching
reach the same command line."""

import os
import subprocess
import sys

import pytest

from gradient_lab.app import platform_check
from gradient_lab.app.training_controls import DEFAULT_SPEED, SPEEDS
from gradient_lab.engine.cli.main import default_experiment_path
from gradient_lab.engine.training.experiment import load_experiment
from gradient_lab.engine.training.session import Session


def test_without_a_display_the_check_says_so_in_one_line():
    line = platform_check.problem({}, loadable=lambda name: True)
    assert "DISPLAY is not set" in line and "xvfb-run gradient-lab" in line
    assert "\n" not in line
    assert platform_check.problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert platform_check.problem({"WAYLAND_DISPLAY": "wayland-0"}) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xcb is Linux's")
def test_missing_xcb_libraries_are_named_with_the_command_that_installs_them():
    missing = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1"}
    line = platform_check.problem({"DISPLAY": ":0"}, loadable=lambda name: name not in missing)
    assert "libxcb-icccm4, libxcb-keysyms1" in line
    assert line.endswith("apt-get install -y libxcb-icccm4 libxcb-keysyms1")
    assert platform_check.problem({"DISPLAY": ":0"}, loadable=lambda name: True) is None


def test_the_command_without_a_display_exits_2_with_one_line_and_no_core_dump(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    for command in (
        ["-m", "gradient_lab.app"],
        ["-m", "gradient_lab.app", "open", str(default_experiment_path())],
    ):
        result = subprocess.run(
            [sys.executable, *command], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "no display" in lines[0]


def test_opening_a_missing_file_names_it(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    missing = tmp_path / "nowhere.toml"
    result = subprocess.run(
        [sys.executable, "-m", "gradient_lab.app", "open", str(missing)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {missing}: no such experiment file"


def test_the_default_experiment_learns_within_ten_seconds_of_play():
    """At the default speed, ten seconds of Play reach 95% validation accuracy."""
    rate = dict(SPEEDS)[DEFAULT_SPEED]
    session = Session(load_experiment(default_experiment_path()))
    session.run_steps(int(10 * rate))
    assert session.history.epochs[-1]["val_accuracy"] >= 0.95
