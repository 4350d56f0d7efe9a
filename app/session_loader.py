"""What opening an experiment needs from the engine, imported and run off the GUI thread: the
engine's modules (Numba loads its cached kernels on import, about a second), the plugin
registry, and the experiment file read and checked against it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PluginOptions:
    """Where plugins come from, as the command line gave it."""

    plugins_dir: str | None = None
    safe_mode: bool = False


def load_registry(options: PluginOptions) -> Any:
    from gradient_lab.engine.loading.discovery import discover

    return discover(plugins_dir=options.plugins_dir, safe_mode=options.safe_mode)


def load(path: Path, registry: Any, options: PluginOptions) -> tuple[Any, Any]:
    """(registry, experiment): the registry given, or one discovered now; the file read and
    checked. Also imports the session service, so starting it costs the GUI thread nothing."""
    from gradient_lab.engine.service import worker  # noqa: F401  (imported here, off the GUI)
    from gradient_lab.engine.training.experiment import load_experiment

    if registry is None:
        registry = load_registry(options)
    return registry, load_experiment(path, registry)
