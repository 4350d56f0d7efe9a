"""`gradient-lab warm-up`: every kernel compiled at install, with a progress bar."""

from gradient_lab.engine.cli.main import main
from gradient_lab.engine.cli.warm_up import warm_up_steps
from gradient_lab.engine.loading.discovery import discover


def test_the_warm_up_covers_both_precisions_every_builtin_layer_and_the_health_kernels():
    registry = discover(safe_mode=True)
    labels = [label for label, _ in warm_up_steps(registry)]
    assert any("(float32, BLAS)" in label for label in labels)
    assert any("(float64)" in label for label in labels)
    prefix = "built-in layer "
    layers = {label.removeprefix(prefix) for label in labels if label.startswith(prefix)}
    assert layers == set(registry.names("layer"))
    assert "training health" in labels


def test_the_command_compiles_and_reports_progress(capsys):
    assert main(["warm-up", "--safe-mode"]) == 0
    out = capsys.readouterr().out
    assert "compiling [" in out and out.rstrip().split("\r")[-1].startswith("compiled ")
