"""``gradient-lab bench --app`` measures the window while training (no timing is asserted:
the figures live in the README)."""

import json
import os
import subprocess
import sys


def bench(tmp_path, *options):
    """The record of a quick ``gradient-lab bench --app`` run."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "GRADIENT_LAB_CONFIG": str(tmp_path)}
    command = [sys.executable, "-m", "gradient_lab.app", "bench", "--app", "--quick", "--json"]
    result = subprocess.run(
        [*command, *options], env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_app_bench_reports_every_view_and_the_share_kept(tmp_path):
    record = bench(tmp_path)
    assert set(record["fps"]) == {
        "network",
        "output",
        "curves",
        "weights",
        "gradients",
        "landscape",
        "inspector",
    }
    assert record["docks_in_turn"] == 5
    assert record["fps"]["network"] > 0 and record["steps_per_second_window"] > 0
    assert 0 < record["share"] < 2
    assert record["timer_gap_ms_median"] <= record["timer_gap_ms_p99"] <= record["timer_gap_ms_max"]


def test_in_the_layout_the_window_opens_with_the_docks_behind_tabs_are_not_drawn(tmp_path):
    record = bench(tmp_path, "--default-layout")
    assert "the layout it opens with" in record["workload"]
    fps = record["fps"]
    assert fps["network"] > 0 and fps["curves"] > 0  # the curves are the dock shown
    assert fps["weights"] == fps["gradients"] == fps["inspector"] == fps["landscape"] == 0
