"""`gradient-lab bench --quick`: the report's shape only; speed is never asserted."""

import importlib.util
import json
import sys

import pytest

from gradient_lab.engine.cli.main import main

KEYS = {"workload", "unit", "value", "compile_s", "peak_rss_mb"}
WORKLOADS = [
    "W1 playground",
    "W1 + health",
    "W2 digits MLP",
    "W1 as run",
    "W1 service",
    "W5 landscape",
]
SERVICE = {"bare_value", "of_bare", "pause_ms", "note"}  # W1 through the service, and a bare twin
AS_RUN = {"bare_value", "of_bare", "note"}  # W1 recorded at every epoch end, and its twin without
UNITS = {name: "s/grid" if name == "W5 landscape" else "steps/s" for name in WORKLOADS}


def keys(record):
    """W5 also reports the seconds to its first (coarse) picture; the service row its share of
    the bare session's speed and its pause time."""
    if record["workload"] == "W1 service":
        return KEYS | SERVICE
    if record["workload"] == "W1 as run":
        return KEYS | AS_RUN
    return KEYS | ({"first_picture_s"} if record["unit"] == "s/grid" else set())


def bench_json(capsys, *extra):
    assert main(["bench", "--quick", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_quick_json_has_every_workload_and_positive_values(capsys):
    records = bench_json(capsys)
    assert [r["workload"] for r in records] == WORKLOADS
    for r in records:
        assert set(r) == keys(r)
        assert r["unit"] == UNITS[r["workload"]]
        assert r["value"] > 0 and r["compile_s"] >= 0 and r["peak_rss_mb"] > 0
    landscape = records[-1]
    assert 0 < landscape["first_picture_s"] <= landscape["value"]
    as_run, service = records[3], records[4]
    for paired in (as_run, service):  # a share of a twin's speed measured in the same rounds
        assert paired["of_bare"] > 0 and paired["bare_value"] > 0
    assert service["pause_ms"] > 0


def test_quick_table_names_the_machine_and_workloads(capsys):
    assert main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "Numba" in out and "steps/s" in out and "s/grid" in out
    assert all(name in out for name in WORKLOADS)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch not installed")
def test_quick_peers_adds_torch_speed_and_ratio(capsys):
    records = bench_json(capsys, "--peers")
    assert [r["workload"] for r in records] == WORKLOADS
    compared = [r for r in records if "of_bare" not in r]  # the others: against bare W1
    for r in compared:
        assert set(r) == keys(r) | {"torch_value", "ratio"}  # no "note": same numbers as PyTorch
        assert r["torch_value"] > 0
    for r in compared[:-1]:  # steps per second: ours over theirs
        assert r["ratio"] == pytest.approx(r["value"] / r["torch_value"])
    landscape = records[-1]  # seconds per grid: theirs over ours, still "> 1 is faster"
    assert landscape["ratio"] == pytest.approx(landscape["torch_value"] / landscape["value"])


def test_peers_without_torch_is_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    assert main(["bench", "--quick", "--peers"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "pip install torch" in captured.err and "Traceback" not in captured.err
