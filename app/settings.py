"""Where the app keeps its own settings (window layout, recent files): an INI file in the
platform's user config folder, or in GRADIENT_LAB_CONFIG when that is set (tests, portable use)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from PySide6 import QtCore


def config_folder() -> Path:
    chosen = os.environ.get("GRADIENT_LAB_CONFIG")
    if chosen:
        return Path(chosen)
    return platformdirs.user_config_path("gradient-lab", appauthor=False)


def app_settings() -> QtCore.QSettings:
    folder = config_folder()
    folder.mkdir(parents=True, exist_ok=True)
    return QtCore.QSettings(str(folder / "app.ini"), QtCore.QSettings.Format.IniFormat)
