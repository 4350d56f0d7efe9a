"""Gradient Lab's engine: numerics, sessions, plugins and files, with no Qt.

The common entry points load on first use, so importing the plugin API stays light:

    from gradient_lab.engine import Session, load_experiment
"""

from typing import Any

if __name__ != "gradient_lab.engine":
    raise ImportError(
        f"this folder is the package gradient_lab.engine, imported here as {__name__!r}: "
        "install Gradient Lab and write `import gradient_lab.engine`",
        name=__name__,
    )

_LAZY = {
    "Session": "gradient_lab.engine.training.session",
    "load_experiment": "gradient_lab.engine.training.experiment",
    "parse_experiment": "gradient_lab.engine.training.experiment",
    "discover": "gradient_lab.engine.loading.discovery",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_LAZY)
