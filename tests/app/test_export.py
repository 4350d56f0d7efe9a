"""Export: views as PNG and SVG (pyqtgraph plots and the network diagram), the training as an
animated GIF, the weights as .npz; every write whole or not at all, every failure a message."""

import xml.etree.ElementTree as ET
from itertools import pairwise

import numpy as np
import pytest
from PIL import Image, ImageChops, ImageSequence
from PySide6 import QtGui, QtWidgets

from gradient_lab.app.export import (
    ExportMenu,
    GifRecorder,
    pillow_image,
    save_png,
    save_svg,
)

WAIT_MS = 60_000
SVG = "{http://www.w3.org/2000/svg}"
VIEWS = ("output.plot", "curves.loss_plot", "network", "curves_dock")


def views(win):
    """The widgets exported, by name: two pyqtgraph plots, the diagram, a whole dock."""
    found = {}
    for name in VIEWS:
        widget = win
        for part in name.split("."):
            widget = getattr(widget, part)
        found[name] = widget
    return found


def train(qtbot, win, steps):
    """``steps`` more steps, drawn (the curves redraw on a timer of their own)."""
    target = win.latest.step + steps
    win.service().run(steps).result(WAIT_MS / 1000)
    qtbot.waitUntil(lambda: win.latest.step == target, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: win.rendered_version == win.latest.version, timeout=WAIT_MS)
    qtbot.wait(150)
    QtWidgets.QApplication.processEvents()


def answer_dialog(monkeypatch, path):
    """The save dialog answers ``path``; the titles it was asked with are returned."""
    asked = []

    def fake(parent, title, start, kinds):
        asked.append((title, start, kinds))
        return str(path), kinds

    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", fake)
    return asked


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_views_export_as_png_at_their_size(window, tmp_path):
    win = window()
    QtWidgets.QApplication.processEvents()
    for name, widget in views(win).items():
        path = tmp_path / f"{name}.png"
        save_png(widget, path)
        image = QtGui.QImage(str(path))
        assert not image.isNull(), name
        expected = widget.size() * widget.devicePixelRatioF()
        assert (image.width(), image.height()) == (expected.width(), expected.height()), name
    assert not [p for p in leftovers(tmp_path) if p.startswith(".")]  # no temporary file left


def test_views_export_as_svg_with_their_drawing_and_size(window, tmp_path):
    win = window()
    QtWidgets.QApplication.processEvents()
    for name, widget in views(win).items():
        path = tmp_path / f"{name}.svg"
        save_svg(widget, path)
        root = ET.parse(path).getroot()
        assert root.tag == f"{SVG}svg", name
        tags = {element.tag.removeprefix(SVG) for element in root.iter()}
        assert tags & {"path", "polyline", "image"}, (name, tags)
        assert root.get("viewBox") == f"0 0 {widget.width()} {widget.height()}", name
        dpi = widget.logicalDpiX()
        width_px = float(root.get("width").removesuffix("mm")) / 25.4 * dpi
        height_px = float(root.get("height").removesuffix("mm")) / 25.4 * dpi
        assert (round(width_px), round(height_px)) == (widget.width(), widget.height()), name
    drawn = ET.parse(tmp_path / "network.svg").getroot()
    assert len(list(drawn.iter(f"{SVG}image"))) >= 2 + 4 + 4 + 1  # every neuron's thumbnail
    output = ET.parse(tmp_path / "output.plot.svg").getroot()
    images = list(output.iter(f"{SVG}image"))
    assert 1 <= len(images) < 10  # the output plane; the 500 points are paths, not pixmaps


def test_the_menu_exports_the_view_the_window_and_the_weights(window, qtbot, tmp_path, monkeypatch):
    win = window()
    train(qtbot, win, 30)
    menu = ExportMenu(lambda: win.network, lambda: win.latest, win)
    checks = (
        (menu.view_png, "view.png", win.network.size()),
        (menu.window_png, "window.png", win.size()),
    )
    for action, name, size in checks:
        answer_dialog(monkeypatch, tmp_path / name)
        action.trigger()
        image = QtGui.QImage(str(tmp_path / name))
        assert (image.width(), image.height()) == (size.width(), size.height())
    answer_dialog(monkeypatch, tmp_path / "view")  # no suffix typed: the menu adds it
    menu.view_svg.trigger()
    assert ET.parse(tmp_path / "view.svg").getroot().tag == f"{SVG}svg"

    asked = answer_dialog(monkeypatch, tmp_path / "weights.npz")
    snap = win.latest
    menu.weights_npz.trigger()
    assert asked[0][1].endswith(f"weights_step{snap.step}.npz")
    with np.load(tmp_path / "weights.npz", allow_pickle=False) as data:
        saved = {k: data[k] for k in data.files}
    parameters = snap.parameters()
    assert set(saved) == set(parameters) and snap.step == 30  # what --init-params reads
    for key, values in parameters.items():
        np.testing.assert_array_equal(saved[key], values)
    assert menu.last_error is None
    assert not [p for p in leftovers(tmp_path) if p.startswith(".")]


def test_a_recording_becomes_an_animated_gif_of_the_training(window, qtbot, tmp_path, monkeypatch):
    """Frames recorded with training in between differ; the GIF holds each of them, loops
    forever and plays each for the recorder's time."""
    win = window()
    plot = win.output.plot
    recorder = GifRecorder()
    for _ in range(3):
        QtWidgets.QApplication.processEvents()
        assert recorder.add(plot.grab().toImage())
        train(qtbot, win, 80)
    path = tmp_path / "training.gif"
    recorder.save(path)
    with Image.open(path) as gif:
        frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(gif)]
        assert gif.info["loop"] == 0 and gif.info["duration"] == recorder.frame_ms
    assert len(frames) == len(recorder) == 3
    assert frames[0].size == (plot.width(), plot.height())
    for a, b in pairwise(frames):
        assert ImageChops.difference(a, b).getbbox() is not None

    menu = ExportMenu(lambda: win.output.plot, lambda: win.latest, win)
    menu.record_gif.setChecked(True)
    assert len(menu.recorder) == 1 and not menu.save_gif.isEnabled()
    win.service().play(50)
    qtbot.waitUntil(lambda: len(menu.recorder) >= 4, timeout=WAIT_MS)
    win.service().pause().result(WAIT_MS / 1000)
    menu.record_gif.setChecked(False)
    assert menu.save_gif.isEnabled() and not menu.timer.isActive()
    answer_dialog(monkeypatch, tmp_path / "menu.gif")
    menu.save_gif.trigger()
    with Image.open(tmp_path / "menu.gif") as gif:
        assert gif.n_frames >= 2
    assert menu.last_error is None


def test_the_recorder_stays_bounded_and_thins_out_evenly(qapp):
    def frame(k):
        image = QtGui.QImage(8, 6, QtGui.QImage.Format.Format_RGB32)
        image.fill(QtGui.QColor(k, 255 - k, 0))
        return image

    recorder = GifRecorder(max_frames=4)
    kept = [k for k in range(13) if recorder.add(frame(k))]
    assert len(recorder) <= 4
    assert kept == [0, 1, 2, 3, 4, 6, 8, 12]  # every frame, then every 2nd, then every 4th
    reds = [f.convert("RGB").getpixel((0, 0))[0] for f in recorder.frames]
    assert reds == [0, 4, 8, 12]  # evenly spread over the whole run
    small = GifRecorder(max_frames=100, max_bytes=8 * 6 * 10)  # room for 10 frames of 8×6
    for k in range(50):
        small.add(frame(k))
    assert len(small) <= 10


def test_qimages_reach_pillow_pixel_for_pixel(qapp):
    image = QtGui.QImage(7, 3, QtGui.QImage.Format.Format_RGB32)  # odd width: padded rows
    for x in range(7):
        for y in range(3):
            image.setPixelColor(x, y, QtGui.QColor(30 * x, 80 * y, 200))
    converted = pillow_image(image)
    assert converted.size == (7, 3) and converted.mode == "RGB"
    assert all(
        converted.getpixel((x, y)) == (30 * x, 80 * y, 200) for x in range(7) for y in range(3)
    )


@pytest.mark.parametrize("target", ["existing folder", "under a file"])
def test_an_unwritable_target_gives_a_message_and_no_partial_file(
    window, qtbot, tmp_path, monkeypatch, target
):
    win = window()
    folder = tmp_path / "out"
    folder.mkdir()
    if target == "existing folder":  # the write completes, the rename fails: cleaned up
        path = folder / "taken.png"
        path.mkdir()
    else:
        (folder / "file").write_text("x")
        path = folder / "file" / "view.png"
    before = leftovers(folder)
    menu = ExportMenu(lambda: win.network, lambda: win.latest, win)
    for action in (menu.view_png, menu.view_svg, menu.weights_npz):
        answer_dialog(monkeypatch, path)
        menu.last_error = None
        action.trigger()
        box = menu.last_error
        assert box is not None and box.isVisible()
        assert str(path) in box.text()
        box.close()
    assert leftovers(folder) == before
    assert path.is_dir() if target == "existing folder" else not path.exists()


def test_weights_before_a_session_and_an_empty_recording_are_messages(qtbot, tmp_path):
    parent = QtWidgets.QWidget()
    qtbot.addWidget(parent)
    menu = ExportMenu(lambda: None, lambda: None, parent)
    menu.weights_npz.trigger()
    assert "not built" in menu.last_error.text()
    menu.last_error.close()
    menu.record_gif.setChecked(True)
    assert not menu.record_gif.isChecked() and menu.last_error.isVisible()
    menu.last_error.close()
    assert not menu.save_gif.isEnabled()
    menu.export_gif()
    assert "no frame" in menu.last_error.text()
    menu.last_error.close()
