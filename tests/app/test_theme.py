"""Themes and presentation mode: the palette and every plot follow the chosen theme, presentation
mode enlarges the fonts and goes full screen and back, and the chosen theme is remembered."""

import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from gradient_lab.app import theme
from gradient_lab.app.settings import app_settings
from tests.app.conftest import screenshot

DARK = theme.LOOKS["dark", False]
WINDOW = QtGui.QPalette.ColorRole.Window


@pytest.fixture(autouse=True)
def default_look(qapp):
    """Every test ends on the light theme and the font it found (other tests share the app)."""
    font, palette = QtGui.QFont(qapp.font()), QtGui.QPalette(qapp.palette())
    options = {k: pg.getConfigOption(k) for k in ("background", "foreground")}
    yield
    theme.set_presentation(None, False)
    theme.apply_theme(qapp, "light", remember=False)
    pg.setConfigOptions(**options)
    assert qapp.font() == font
    assert qapp.palette().color(WINDOW) == palette.color(WINDOW)


def plots(win):
    return [win.output.plot, win.curves.loss_plot, win.curves.metric_plot]


def diagram_texts(win):
    items = win.network.scene().items()
    return [i for i in items if isinstance(i, QtWidgets.QGraphicsSimpleTextItem)]


def colour(brush_or_pen):
    return brush_or_pen.color().name()


def test_dark_paints_the_widgets_and_every_plot(window, qapp):
    win = window()
    light_window = qapp.palette().color(WINDOW)
    theme.apply_theme(qapp, "dark")
    assert qapp.palette().color(WINDOW).name() == DARK.window
    assert qapp.palette().color(QtGui.QPalette.ColorRole.WindowText).name() == DARK.text
    for plot in plots(win):
        assert colour(plot.backgroundBrush()) == DARK.plot_background
        for name in ("left", "bottom"):
            axis = plot.getPlotItem().getAxis(name)
            assert colour(axis.pen()) == colour(axis.textPen()) == DARK.plot_foreground
    assert colour(win.network.backgroundBrush()) == DARK.plot_background
    texts = diagram_texts(win)
    assert texts and all(colour(t.brush()) == DARK.plot_foreground for t in texts)
    legend = win.curves.loss_plot.getPlotItem().legend
    assert all(DARK.plot_foreground in label.item.toHtml() for _, label in legend.items)
    screenshot(win, "main_window_dark")

    theme.apply_theme(qapp, "light")
    assert qapp.palette().color(WINDOW) == light_window
    assert all(colour(p.backgroundBrush()) == "#ffffff" for p in plots(win))


def test_a_view_laid_out_after_the_choice_follows_it(window, qapp):
    """A new session lays the diagram out again (black text) and a new dock brings a white
    plot: ``style_widget`` paints them in the theme chosen."""
    win = window()
    theme.apply_theme(qapp, "dark")
    win.network.set_facts(win.facts, win.latest)
    assert all(colour(t.brush()) == "#000000" for t in diagram_texts(win))
    theme.style_widget(win)
    texts = diagram_texts(win)
    assert texts and all(colour(t.brush()) == DARK.plot_foreground for t in texts)
    late = pg.PlotWidget(background="w", title="late")
    theme.style_widget(late)
    assert colour(late.backgroundBrush()) == DARK.plot_background
    assert DARK.plot_foreground in late.getPlotItem().titleLabel.item.toHtml()


def test_presentation_enlarges_the_fonts_goes_full_screen_and_back(window, qapp):
    win = window()
    size = qapp.font().pointSizeF()
    axis = win.curves.loss_plot.getPlotItem().getAxis("left")
    theme.apply_theme(qapp, "dark")
    theme.set_presentation(win, True)
    qtwait = QtCore.QDeadlineTimer(5000)
    while not win.isFullScreen() and not qtwait.hasExpired():
        qapp.processEvents()
    assert win.isFullScreen() and theme.in_presentation()
    assert qapp.font().pointSizeF() == pytest.approx(size * theme.PRESENTATION_SCALE)
    assert axis.style["tickFont"].pointSizeF() == pytest.approx(size * theme.PRESENTATION_SCALE)
    assert win.curves.font().pointSizeF() == pytest.approx(size * theme.PRESENTATION_SCALE)
    contrast = theme.LOOKS["dark", True]
    assert qapp.palette().color(WINDOW).name() == contrast.window == "#000000"
    assert colour(win.output.plot.backgroundBrush()) == contrast.plot_background
    assert axis.pen().widthF() == contrast.axis_width
    title = win.curves.loss_plot.getPlotItem().titleLabel.item.toHtml()
    assert f"{theme.TITLE_PT * theme.PRESENTATION_SCALE:g}pt" in title
    screenshot(win, "main_window_presentation")

    theme.set_presentation(win, False)
    while win.isFullScreen() and not qtwait.hasExpired():
        qapp.processEvents()
    assert not win.isFullScreen() and not theme.in_presentation()
    assert qapp.font().pointSizeF() == pytest.approx(size)
    assert axis.style["tickFont"].pointSizeF() == pytest.approx(size)
    assert qapp.palette().color(WINDOW).name() == DARK.window  # the theme stays


def test_the_chosen_theme_is_restored_at_the_next_start(qapp):
    theme.apply_theme(qapp, "dark")
    assert app_settings().value(theme.SETTINGS_KEY) == "dark"
    theme.apply_theme(qapp, "light", remember=False)  # as a fresh start would find it
    assert theme.restore_theme(qapp) == "dark"
    assert qapp.palette().color(WINDOW).name() == DARK.window
    app_settings().setValue(theme.SETTINGS_KEY, "purple")  # an unknown value: light
    assert theme.restore_theme(qapp) == "light"
    with pytest.raises(ValueError, match="unknown theme"):
        theme.apply_theme(qapp, "purple")


def test_the_appearance_menu_switches_and_follows(window, qapp, qtbot):
    win = window()
    menu = win.findChild(theme.AppearanceMenu)  # the window's, in its View menu
    dark = menu.findChild(QtGui.QAction, "theme dark")
    with qtbot.waitSignal(theme.notifier().changed) as changed:
        dark.trigger()
    assert changed.args == ["dark"] and dark.isChecked()
    theme.apply_theme(qapp, "light")  # elsewhere: the menu's tick follows
    assert menu.findChild(QtGui.QAction, "theme light").isChecked() and not dark.isChecked()
    qtbot.keyClick(win, QtCore.Qt.Key.Key_F11)
    qtbot.waitUntil(win.isFullScreen)
    assert menu.presentation.isChecked() and theme.in_presentation()
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Escape)  # Escape leaves presentation mode
    qtbot.waitUntil(lambda: not win.isFullScreen())
    assert not menu.presentation.isChecked()


def test_the_diagram_s_edges_mix_their_colour_with_the_new_background(window, qapp, qtbot):
    win = window()
    edge = win.network.edges[0]
    light = edge.pen().color()
    theme.apply_theme(qapp, "dark", remember=False)
    qtbot.waitUntil(lambda: edge.pen().color() != light, timeout=5000)  # redrawn, paused
    dark = QtGui.QColor(DARK.plot_background)
    mixed = edge.pen().color()
    for channel in ("red", "green", "blue"):  # a fifth of the way to the dark background
        pure = (getattr(light, channel)() - 0.18 * 255) / 0.82
        expected = 0.82 * pure + 0.18 * getattr(dark, channel)()
        assert abs(getattr(mixed, channel)() - expected) <= 1.5
