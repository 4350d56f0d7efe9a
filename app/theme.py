"""Light and dark themes and the presentation mode, for Qt's widgets and pyqtgraph's plots alike.

A theme is a QPalette for the widgets and a background, foreground and axis width for the plots
and the diagram. Presentation mode is for a projector at the back of a classroom: fonts
``PRESENTATION_SCALE`` times larger, the high-contrast variant of the theme and the window full
screen. The palettes of the data (app/palette.py's blue/orange and Okabe-Ito classes) are
colour-blind safe and readable on either background, so a theme leaves them alone.

``apply_theme`` and ``set_presentation`` restyle every view the application holds; a view laid
out again later (a new session's diagram, a new dock) calls ``style_widget`` on itself, or
connects ``notifier().changed``. The chosen theme is kept in the app's settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gradient_lab.app.settings import app_settings

THEMES = ("light", "dark")
PRESENTATION_SCALE = 1.6
SETTINGS_KEY = "appearance/theme"
TITLE_PT = 11.0  # pyqtgraph's default title and legend sizes, scaled in presentation mode
LEGEND_PT = 9.0
LEGEND_ALPHA = 200
STATE_PROPERTY = "gradientLabStateBeforePresentation"
DOCK_PROPERTY = "gradientLabPresentationFont"

Role = QtGui.QPalette.ColorRole
Group = QtGui.QPalette.ColorGroup


@dataclass(frozen=True)
class Look:
    """What a theme paints: widget colours (None: the palette the application started with),
    and the plots' background, foreground (axes, ticks, titles, legends) and axis width."""

    name: str
    plot_background: str
    plot_foreground: str
    axis_width: float = 1.0
    window: str | None = None
    base: str | None = None
    alternate: str | None = None
    text: str | None = None
    button: str | None = None
    highlight: str | None = None
    highlighted_text: str | None = None
    link: str | None = None
    disabled: str | None = None


LOOKS = {
    ("light", False): Look("light", "#ffffff", "#404040"),
    ("dark", False): Look(
        "dark",
        "#1e1f22",
        "#d4d4d4",
        window="#2b2d30",
        base="#1e1f22",
        alternate="#26282b",
        text="#e8e8e8",
        button="#3a3d41",
        highlight="#0072b2",
        highlighted_text="#ffffff",
        link="#56b4e9",
        disabled="#808080",
    ),
    ("light", True): Look(
        "light high contrast",
        "#ffffff",
        "#000000",
        axis_width=2.0,
        window="#ffffff",
        base="#ffffff",
        alternate="#f0f0f0",
        text="#000000",
        button="#e8e8e8",
        highlight="#0050a0",
        highlighted_text="#ffffff",
        link="#0050a0",
        disabled="#595959",
    ),
    ("dark", True): Look(
        "dark high contrast",
        "#000000",
        "#ffffff",
        axis_width=2.0,
        window="#000000",
        base="#262626",  # lighter than the window: check boxes and fields keep their edges
        alternate="#333333",
        text="#ffffff",
        button="#333333",
        highlight="#f0e442",
        highlighted_text="#000000",
        link="#56b4e9",
        disabled="#a0a0a0",
    ),
}


class ThemeNotifier(QtCore.QObject):
    """``changed(look name)``: the theme or the presentation mode changed; views that draw
    colours of their own connect to it."""

    changed = QtCore.Signal(str)


class _State:
    """The application's theme: what was chosen, and what the application started with (the
    light theme's palette, the normal font and style), captured at the first change."""

    def __init__(self) -> None:
        self.theme = "light"
        self.presentation = False
        self.palette: QtGui.QPalette | None = None
        self.font: QtGui.QFont | None = None
        self.style: str | None = None
        self.notifier: ThemeNotifier | None = None
        self.building: QtWidgets.QWidget | None = None  # a window restyled before it shows

    def capture(self, app: QtWidgets.QApplication) -> None:
        if self.palette is None:
            self.palette = QtGui.QPalette(app.palette())
            self.font = QtGui.QFont(app.font())
            self.style = app.style().name()


_state = _State()


def notifier() -> ThemeNotifier:
    """The one notifier of theme changes (made on first use, once a QApplication exists)."""
    if _state.notifier is None:
        _state.notifier = ThemeNotifier()
    return _state.notifier


def current_look() -> Look:
    return LOOKS[_state.theme, _state.presentation]


def current_theme() -> str:
    return _state.theme


def in_presentation() -> bool:
    return _state.presentation


# ---------------------------------------------------------------------------- choosing


def apply_theme(app: QtWidgets.QApplication, name: str, remember: bool = True) -> None:
    """Switch the whole application to theme ``name`` ("light" or "dark"), and keep the
    choice in the settings unless ``remember`` is False."""
    if name not in THEMES:
        raise ValueError(f"unknown theme {name!r}: expected one of {', '.join(THEMES)}")
    _state.capture(app)
    _state.theme = name
    if remember:
        settings = app_settings()
        settings.setValue(SETTINGS_KEY, name)
        settings.sync()
    _restyle(app)


def restore_theme(app: QtWidgets.QApplication, window: QtWidgets.QWidget | None = None) -> str:
    """Apply the theme the settings remember (light when none or an unknown one) to the open
    windows and to ``window``, one being built; returns the theme's name."""
    name = str(app_settings().value(SETTINGS_KEY, "light"))
    name = name if name in THEMES else "light"
    _state.building = window
    try:
        apply_theme(app, name, remember=False)
    finally:
        _state.building = None
    return name


def set_presentation(window: QtWidgets.QWidget | None, on: bool) -> None:
    """Presentation mode on or off: larger fonts, high contrast, ``window`` full screen (and
    back to the state it had, maximized or normal; None: fonts and colours only). Not
    remembered: the app always starts normal."""
    app = QtWidgets.QApplication.instance()
    assert isinstance(app, QtWidgets.QApplication)
    _state.capture(app)
    if window is not None and on and not window.isFullScreen():
        window.setProperty(STATE_PROPERTY, window.isMaximized())
    _state.presentation = on
    assert _state.font is not None
    app.setFont(scaled_font(_state.font, PRESENTATION_SCALE if on else 1.0))
    _restyle(app)
    if window is None:
        return
    if on:
        window.showFullScreen()
    elif window.isFullScreen():
        if window.property(STATE_PROPERTY):
            window.showMaximized()
        else:
            window.showNormal()


def scaled_font(font: QtGui.QFont, scale: float) -> QtGui.QFont:
    """``font`` ``scale`` times larger, whether its size is in points or in pixels."""
    out = QtGui.QFont(font)
    if font.pointSizeF() > 0:
        out.setPointSizeF(font.pointSizeF() * scale)
    elif font.pixelSize() > 0:
        out.setPixelSize(round(font.pixelSize() * scale))
    return out


# ---------------------------------------------------------------------------- painting


def _restyle(app: QtWidgets.QApplication) -> None:
    look = current_look()
    _set_style(app, look)
    app.setPalette(_palette(look))
    pg.setConfigOptions(background=look.plot_background, foreground=look.plot_foreground)
    for widget in _live_widgets(app):
        if isinstance(widget, QtWidgets.QGraphicsView):
            _style_view(widget, look)
        elif isinstance(widget, QtWidgets.QDockWidget):
            _dock_title_font(widget)
    notifier().changed.emit(look.name)


def _live_widgets(app: QtWidgets.QApplication) -> list[QtWidgets.QWidget]:
    """The widgets of the windows open now, found from the windows down: ``allWidgets()`` also
    lists widgets of closed windows waiting for deletion, and touching one of those crashed."""
    found: list[QtWidgets.QWidget] = []
    for window in app.topLevelWidgets():
        if window.isVisible() or window is _state.building:
            found.append(window)
            found += window.findChildren(QtWidgets.QWidget)
    return found


def _dock_title_font(dock: QtWidgets.QDockWidget) -> None:
    """A dock draws its title in the font the application had when the dock was made, unless
    the dock's own font differs from the application's: in presentation mode it gets the
    application's font, marked by a style strategy that changes nothing on screen."""
    if _state.presentation:
        font = QtGui.QFont(QtWidgets.QApplication.font())
        font.setStyleStrategy(QtGui.QFont.StyleStrategy.PreferQuality)
        dock.setFont(font)
    elif dock.property(DOCK_PROPERTY):
        dock.setFont(QtGui.QFont())  # inherit again
    dock.setProperty(DOCK_PROPERTY, _state.presentation)


def _set_style(app: QtWidgets.QApplication, look: Look) -> None:
    """Fusion honours every palette colour; some native styles (Windows' classic, macOS) draw
    their own light controls whatever the palette says, so a custom palette needs Fusion."""
    native = _state.style or "fusion"
    wanted = native if look.window is None or native in ("fusion", "windows11") else "fusion"
    if app.style().name().lower() != wanted.lower():
        app.setStyle(wanted)


def _palette(look: Look) -> QtGui.QPalette:
    if look.window is None:
        assert _state.palette is not None
        return QtGui.QPalette(_state.palette)
    palette = QtGui.QPalette()
    colour = QtGui.QColor
    text, window, base, button = look.text, look.window, look.base, look.button
    for role, value in (
        (Role.Window, window),
        (Role.WindowText, text),
        (Role.Base, base),
        (Role.AlternateBase, look.alternate),
        (Role.Text, text),
        (Role.Button, button),
        (Role.ButtonText, text),
        (Role.BrightText, "#ff5555"),
        (Role.ToolTipBase, button),
        (Role.ToolTipText, text),
        (Role.PlaceholderText, look.disabled),
        (Role.Highlight, look.highlight),
        (Role.HighlightedText, look.highlighted_text),
        (Role.Link, look.link),
        (Role.LinkVisited, look.link),
        (Role.Light, button),
        (Role.Midlight, button),
        (Role.Mid, look.disabled),
        (Role.Dark, window),
        (Role.Shadow, "#000000"),
    ):
        palette.setColor(role, colour(value))
    for role in (Role.WindowText, Role.Text, Role.ButtonText):
        palette.setColor(Group.Disabled, role, colour(look.disabled))
    return palette


def style_widget(widget: QtWidgets.QWidget) -> None:
    """Paint ``widget`` and the views inside it in the current theme: for a view created or
    laid out again after the theme was chosen (its plots start white, its texts black)."""
    look = current_look()
    views = widget.findChildren(QtWidgets.QGraphicsView)
    if isinstance(widget, QtWidgets.QGraphicsView):
        views.insert(0, widget)
    for view in views:
        _style_view(view, look)


def _style_view(view: QtWidgets.QGraphicsView, look: Look) -> None:
    if isinstance(view, pg.GraphicsView):
        view.setBackground(look.plot_background)
        for item in view.scene().items():
            if isinstance(item, pg.PlotItem):
                _style_plot_item(item, look)
        return
    view.setBackgroundBrush(QtGui.QColor(look.plot_background))
    if view.scene() is None:
        return
    foreground = QtGui.QColor(look.plot_foreground)
    for item in view.scene().items():
        if isinstance(item, QtWidgets.QGraphicsSimpleTextItem):
            item.setBrush(foreground)
        elif isinstance(item, QtWidgets.QGraphicsTextItem):
            item.setDefaultTextColor(foreground)


def _style_plot_item(plot: Any, look: Look) -> None:
    """Axes, ticks, title and legend of one pyqtgraph plot, in the look's colour and in the
    application's font (larger in presentation mode)."""
    scale = PRESENTATION_SCALE if _state.presentation else 1.0
    fg = look.plot_foreground
    font = QtGui.QFont(QtWidgets.QApplication.font())
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(name)
        axis.setTickFont(font)
        axis.setTextPen(fg)
        axis.setPen(pg.mkPen(fg, width=look.axis_width))  # also the label's colour
    title = plot.titleLabel
    if title.text:
        title.setText(title.text, color=fg, size=f"{TITLE_PT * scale:g}pt")
    legend = plot.legend
    if legend is not None:
        backdrop = QtGui.QColor(look.plot_background)
        backdrop.setAlpha(LEGEND_ALPHA if _state.presentation else 0)
        legend.setBrush(backdrop)  # large labels stay readable where they cover the curves
        legend.setLabelTextColor(fg)
        legend.setLabelTextSize(f"{LEGEND_PT * scale:g}pt")
        for _, label in legend.items:
            label.setText(label.text)
        legend.setGeometry(QtCore.QRectF(legend.pos(), QtCore.QSizeF(0, 0)))  # shrink to fit
        legend.layout.activate()
        legend.updateSize()


# ---------------------------------------------------------------------------- menu


class AppearanceMenu(QtWidgets.QMenu):
    """A menu "Appearance" for the main window's View menu: Light / Dark (the one in use
    checked) and "Presentation mode" (F11, checkable); it follows changes made elsewhere."""

    def __init__(self, window: QtWidgets.QWidget) -> None:
        super().__init__("&Appearance", window)
        self.window_ = window
        self.group = QtGui.QActionGroup(self)
        for name in THEMES:
            action = self.addAction(name.capitalize())
            action.setObjectName(f"theme {name}")
            action.setCheckable(True)
            action.setStatusTip(f"Show the whole app in the {name} theme")
            action.triggered.connect(partial(self._choose, name))
            self.group.addAction(action)
        self.addSeparator()
        self.presentation = self.addAction("&Presentation mode")
        self.presentation.setObjectName("presentation mode")
        self.presentation.setCheckable(True)
        self.presentation.setShortcut(QtGui.QKeySequence("F11"))
        self.presentation.setStatusTip("Larger fonts, high contrast, full screen: for a projector")
        self.presentation.toggled.connect(self._present)
        self._follow()
        notifier().changed.connect(self._follow)

    def _choose(self, name: str, _checked: bool = False) -> None:
        app = QtWidgets.QApplication.instance()
        assert isinstance(app, QtWidgets.QApplication)
        apply_theme(app, name)

    def _present(self, on: bool) -> None:
        set_presentation(self.window_, on)

    def _follow(self, _name: str = "") -> None:
        for action in self.group.actions():
            action.setChecked(action.objectName() == f"theme {_state.theme}")
        blocker = QtCore.QSignalBlocker(self.presentation)
        self.presentation.setChecked(_state.presentation)
        blocker.unblock()
