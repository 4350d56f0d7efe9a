"""Export what the window shows: a view as PNG or SVG, the training as an animated GIF, the
weights as .npz. Every file is written whole or not at all (a temporary file beside it, then a
rename: engine/files.py), so a full disk or a crash never leaves half a picture.

SVG goes through QtSvg's QSvgGenerator and ``widget.render``: pyqtgraph 0.14's own SVGExporter
fails on these plots. The menu shows every failure in a message box, never a traceback.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PIL import Image
from PySide6 import QtCore, QtGui, QtSvg, QtWidgets

from gradient_lab.app.settings import app_settings
from gradient_lab.engine.files import atomic_save_npz, atomic_write

GIF_FRAME_MS = 100  # a frame every 0.1 s, played back at that pace (GIF counts 1/100 s)
MAX_FRAMES = 300
MAX_FRAME_BYTES = 128 * 2**20  # the recorder's frames together (one byte a pixel)
FOLDER_KEY = "export/folder"


def _write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


# ---------------------------------------------------------------------------- pictures


def png_bytes(widget: QtWidgets.QWidget) -> bytes:
    """The widget as it is on screen, as PNG (at the screen's device pixel ratio)."""
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    if not widget.grab().save(buffer, "PNG"):
        raise OSError("Qt could not encode the picture as PNG")
    return bytes(buffer.data().data())


def save_png(widget: QtWidgets.QWidget, path: str | Path) -> None:
    _write_bytes(path, png_bytes(widget))


def svg_bytes(widget: QtWidgets.QWidget, title: str = "Gradient Lab") -> bytes:
    """The widget drawn as SVG: lines and text stay vectors, images (thumbnails, the output
    plane) are embedded. Its viewBox is the widget's size in pixels; width and height are the
    same size in millimetres at the widget's resolution."""
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    generator = QtSvg.QSvgGenerator()
    generator.setOutputDevice(buffer)
    generator.setResolution(widget.logicalDpiX())
    generator.setSize(widget.size())
    generator.setViewBox(QtCore.QRect(QtCore.QPoint(0, 0), widget.size()))
    generator.setTitle(title)
    generator.setDescription("Exported from Gradient Lab")
    painter = QtGui.QPainter()
    if not painter.begin(generator):
        raise OSError("Qt could not start drawing the SVG")
    items = _plot_items(widget)
    try:
        for item in items:
            item.setExportMode(True, {"antialias": True})
        QtWidgets.QWidget.render(widget, painter, QtCore.QPoint())  # the widget, frame and all
    finally:
        for item in items:
            item.setExportMode(False)
        painter.end()
    return bytes(buffer.data().data())


def _plot_items(widget: QtWidgets.QWidget) -> list[Any]:
    """pyqtgraph's items inside ``widget``: in export mode a scatter draws each point as a
    path (its cached pixmap atlas comes out scrambled in SVG) and a plot hides its buttons."""
    views = widget.findChildren(pg.GraphicsView)
    if isinstance(widget, pg.GraphicsView):
        views.insert(0, widget)
    return [i for v in views for i in v.scene().items() if hasattr(i, "setExportMode")]


def save_svg(widget: QtWidgets.QWidget, path: str | Path) -> None:
    _write_bytes(path, svg_bytes(widget))


# ---------------------------------------------------------------------------- weights


def weight_arrays(snapshot: Any) -> dict[str, Any]:
    """Every trainable weight by key: the keys of a run's params.npz, so the file starts a run
    again (``gradient-lab run --init-params``); the step is in the file name."""
    return dict(snapshot.parameters())


def save_weights(snapshot: Any, path: str | Path) -> None:
    """The snapshot's weights as .npz, through the engine's one .npz writer."""
    atomic_save_npz(path, weight_arrays(snapshot))


# ---------------------------------------------------------------------------- GIF


def pillow_image(image: QtGui.QImage) -> Image.Image:
    """An RGB Pillow image holding a copy of ``image``'s pixels (no file in between)."""
    rgb = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    size = (rgb.width(), rgb.height())
    return Image.frombytes("RGB", size, bytes(rgb.constBits()), "raw", "RGB", rgb.bytesPerLine())


class GifRecorder:
    """Frames for an animated GIF, bounded in memory: once ``max_frames`` are kept (fewer if
    they would pass ``max_bytes``), every other one is dropped and from then on only every
    second frame offered is kept, and so on: the whole run survives, at a coarser pace.

    Frames are stored with a palette of 255 colours (one byte a pixel), at the first frame's
    size. Identical frames in a row play as one, for their total time."""

    def __init__(
        self,
        max_frames: int = MAX_FRAMES,
        frame_ms: int = GIF_FRAME_MS,
        max_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        if max_frames < 2:
            raise ValueError(f"max_frames {max_frames}: expected 2 or more")
        if frame_ms < 10 or frame_ms % 10:
            raise ValueError(f"frame_ms {frame_ms}: a GIF counts whole 10 ms, expected 10, 20…")
        self.max_frames, self.frame_ms, self.max_bytes = max_frames, frame_ms, max_bytes
        self.frames: list[Image.Image] = []
        self.stride = 1  # keep one frame in ``stride`` offered
        self.offered = 0
        self.limit = max_frames

    def __len__(self) -> int:
        return len(self.frames)

    def clear(self) -> None:
        self.frames, self.stride, self.offered, self.limit = [], 1, 0, self.max_frames

    def add(self, image: QtGui.QImage) -> bool:
        """Offer a frame; True when it is kept."""
        offered, self.offered = self.offered, self.offered + 1
        if offered % self.stride:
            return False
        if len(self.frames) >= self.limit:  # full: keep every other frame, and take fewer
            self.frames = self.frames[::2]
            self.stride *= 2
            if offered % self.stride:
                return False
        frame = pillow_image(image)
        if not self.frames:
            pixels = max(frame.width * frame.height, 1)
            self.limit = max(2, min(self.max_frames, self.max_bytes // pixels) // 2 * 2)
        elif frame.size != self.frames[0].size:
            frame = frame.resize(self.frames[0].size)
        self.frames.append(
            frame.quantize(255, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        )
        return True

    def gif_bytes(self) -> bytes:
        if not self.frames:
            raise ValueError("no frames recorded")
        buffer = io.BytesIO()
        first, *rest = self.frames
        first.save(
            buffer,
            format="GIF",
            save_all=True,
            append_images=rest,
            duration=self.frame_ms,
            loop=0,
        )
        return buffer.getvalue()

    def save(self, path: str | Path) -> None:
        """Write the animated GIF (looping forever)."""
        _write_bytes(path, self.gif_bytes())


# ---------------------------------------------------------------------------- the menu


class ExportMenu(QtWidgets.QMenu):
    """The "Export" menu. ``view()`` gives the widget to export (None: nothing to export),
    ``snapshot()`` the newest snapshot (None before a session is built). While "Record GIF" is
    on, the view chosen when it started is grabbed every ``GIF_FRAME_MS`` when the snapshot has
    changed."""

    def __init__(
        self,
        view: Callable[[], QtWidgets.QWidget | None],
        snapshot: Callable[[], Any],
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__("&Export", parent)
        self.view, self.snapshot = view, snapshot
        self.recorder = GifRecorder()
        self.recording: QtWidgets.QWidget | None = None
        self.recorded_version: Any = None
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(GIF_FRAME_MS)
        self.timer.timeout.connect(self.record_frame)
        self.last_error: QtWidgets.QMessageBox | None = None
        self.view_png = self.addAction("View as &PNG…", self.export_view_png)
        self.view_svg = self.addAction("View as &SVG…", self.export_view_svg)
        self.window_png = self.addAction("&Window as PNG…", self.export_window_png)
        self.addSeparator()
        self.record_gif = self.addAction("&Record GIF")
        self.record_gif.setCheckable(True)
        self.record_gif.setStatusTip("Record the view as it trains, for an animated GIF")
        self.record_gif.toggled.connect(self.set_recording)
        self.save_gif = self.addAction("Save &GIF…", self.export_gif)
        self.save_gif.setEnabled(False)
        self.addSeparator()
        self.weights_npz = self.addAction("Weights as .&npz…", self.export_weights)

    # ------------------------------------------------------------------ actions
    def export_view_png(self) -> None:
        self._export_picture(self.view(), "view.png", "PNG images (*.png)", save_png)

    def export_view_svg(self) -> None:
        self._export_picture(self.view(), "view.svg", "SVG drawings (*.svg)", save_svg)

    def export_window_png(self) -> None:
        widget = self.view() or self.parentWidget()
        window = None if widget is None else widget.window()
        self._export_picture(window, "window.png", "PNG images (*.png)", save_png)

    def export_weights(self) -> None:
        snap = self.snapshot()
        if snap is None:
            self._error("No weights yet", "The session is not built yet: there is nothing to save.")
            return
        path = self._ask("Save the weights", f"weights_step{snap.step}.npz", "NumPy (*.npz)")
        if path is not None:
            self._write(path, lambda: save_weights(snap, path))

    def export_gif(self) -> None:
        if not len(self.recorder):
            self._error("No frames", "Record GIF first: no frame has been recorded.")
            return
        path = self._ask("Save the recording", "training.gif", "Animated GIF (*.gif)")
        if path is not None:
            self._write(path, lambda: self.recorder.save(path))

    # ------------------------------------------------------------------ recording
    def set_recording(self, on: bool) -> None:
        """Start a new recording of the current view (the first frame at once), or stop."""
        if not on:
            self.timer.stop()
            self.recording = None
            self.save_gif.setEnabled(bool(len(self.recorder)))
            return
        self.recording = self.view()
        if self.recording is None:
            self.record_gif.setChecked(False)
            self._error("Nothing to record", "There is no view to record.")
            return
        self.recorder.clear()
        self.recorded_version = None
        self.save_gif.setEnabled(False)
        self.record_frame()
        self.timer.start()

    def record_frame(self) -> None:
        """Grab the recorded view, if the session moved since the last frame."""
        if self.recording is None:
            return
        snap = self.snapshot()
        version = None if snap is None else snap.version
        if self.recorded_version is not None and version == self.recorded_version:
            return
        self.recorded_version = version
        try:
            image = self.recording.grab().toImage()
        except RuntimeError:  # the view was deleted (its dock closed for good): stop
            self.record_gif.setChecked(False)
            return
        self.recorder.add(image)

    # ------------------------------------------------------------------ helpers
    def _export_picture(
        self,
        widget: QtWidgets.QWidget | None,
        name: str,
        kinds: str,
        save: Callable[[QtWidgets.QWidget, Path], None],
    ) -> None:
        if widget is None:
            self._error("Nothing to export", "There is no view to export.")
            return
        path = self._ask("Export", name, kinds)
        if path is None:
            return
        QtWidgets.QApplication.processEvents()  # the axes drawn up to date, the menu gone
        self._write(path, lambda: save(widget, path))

    def _ask(self, title: str, name: str, kinds: str) -> Path | None:
        """A file name from the save dialog (the suffix added when missing), None if cancelled."""
        settings = app_settings()
        folder = Path(str(settings.value(FOLDER_KEY, str(Path.home()))))
        chosen, _ = QtWidgets.QFileDialog.getSaveFileName(
            self.parentWidget(), title, str(folder / name), kinds
        )
        if not chosen:
            return None
        path = Path(chosen)
        if not path.suffix:
            path = path.with_suffix(Path(name).suffix)
        settings.setValue(FOLDER_KEY, str(path.parent))
        return path

    def _write(self, path: Path, write: Callable[[], None]) -> bool:
        try:
            write()
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self._error("Export failed", f"Could not write {path}:\n{reason}")
            return False
        return True

    def _error(self, title: str, text: str) -> None:
        box = QtWidgets.QMessageBox(
            QtWidgets.QMessageBox.Icon.Warning, title, text, parent=self.parentWidget()
        )
        box.setObjectName("export error")
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.last_error = box
