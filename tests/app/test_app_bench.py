"""``gradient-lab bench --app`` measures the window while training (no timing is asserted:
the figures live in the README)."""

import json
import os
import subprocess
import sys


def test_the_app_bench_reports_every_view_and_the_share_kept(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "GRADIENT_LAB_CONFIG": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "gradient_lab.app", "bench", "--app", "--quick", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
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
