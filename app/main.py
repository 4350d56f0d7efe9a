"""Open the desktop app: check that a window can open here, then show the main window on an
experiment file (the default one unless told) and run Qt's event loop."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

from gradient_lab.app import platform_check
from gradient_lab.app.collector import collect_in_gui_thread
from gradient_lab.app.session_loader import PluginOptions
from gradient_lab.engine.plugin_api import PluginError

FIRST_PAINT_MS = 30  # the engine starts loading this long after the window shows


def main(args: argparse.Namespace) -> int:
    """``args``: the command line's (``experiment``, ``plugins_dir``, ``safe_mode``).
    Returns Qt's exit code, or 2 with one line when no window can open here."""
    from gradient_lab.engine.cli.main import default_experiment_path

    problem = platform_check.problem()
    if problem is not None:
        raise PluginError(problem)
    path = Path(getattr(args, "experiment", None) or default_experiment_path())
    if not path.is_file():
        raise PluginError(f"{path}: no such experiment file")
    options = PluginOptions(plugins_dir=args.plugins_dir, safe_mode=args.safe_mode)
    app = application()
    window = open_window(path, options=options)
    # the last session was killed or crashed: offer its run back (once the window is up)
    QtCore.QTimer.singleShot(FIRST_PAINT_MS, window.offer_recovery)
    code = app.exec()
    del window
    return int(code)


def application() -> QtWidgets.QApplication:
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication([sys.argv[0] if sys.argv else "gradient-lab"])
        app.setApplicationName("Gradient Lab")
        app.setOrganizationName("Gradient Lab")
    collect_in_gui_thread()
    assert isinstance(app, QtWidgets.QApplication)
    return app


def open_window(path: Path, registry: Any = None, options: PluginOptions | None = None) -> Any:
    """The main window, shown, opening ``path``: the engine and the plugins load behind it,
    once the window has painted (on these 2 cores, loading them beside the window's own imports
    or its first paint slowed both)."""
    from gradient_lab.app.main_window import MainWindow

    window = MainWindow(registry, options)
    window.show()
    window.repaint()
    QtCore.QTimer.singleShot(FIRST_PAINT_MS, lambda: window.open_experiment(path))
    return window
