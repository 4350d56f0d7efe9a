"""What every theory lab shares: a window of its own with two sentences on what to look for, a
button that opens the example experiment showing the same thing in a network, and a runner
that computes off the GUI thread with a busy bar and Cancel.

A lab's numbers all come from the engine; the runner only moves them between threads. The
worker never touches a Qt object: a timer on the GUI thread polls the job, so no signal
crosses threads (the same rule as app/background.py, with a thread per job so a long sweep
never queues the main window's loading behind it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

from PySide6 import QtCore, QtGui, QtWidgets

from gradient_lab.app.editor.fields import ParamField

THREAD_NAME = "gradient-lab lab"
POLL_MS = 30


class Cancelled(Exception):
    """Raised inside a job's work by ``LabJob.check`` once the job was cancelled."""


class LabJob:
    """``work(job)`` on a thread of its own. The work calls ``job.check()`` between its parts
    (a cancelled job stops there) and ``job.report(text, partial)`` to say how far it got; the
    GUI reads ``message`` and ``partial`` when it polls."""

    def __init__(self, work: Callable[[LabJob], Any]) -> None:
        self.work = work
        self.future: Future[Any] = Future()
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._message = ""
        self._partial: Any = None
        self.thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def start(self) -> LabJob:
        self.thread.start()
        return self

    def _run(self) -> None:
        self.future.set_running_or_notify_cancel()
        try:
            result = self.work(self)
        except BaseException as exc:  # said on the lab, never raised on the GUI thread
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled

    def report(self, message: str, partial: Any = None) -> None:
        with self._lock:
            self._message, self._partial = message, partial

    def progress(self) -> tuple[str, Any]:
        with self._lock:
            return self._message, self._partial


def example_path(name: str) -> Path:
    """An example experiment shipped with the app (assets/examples/<name>)."""
    return Path(str(files("gradient_lab.assets").joinpath("examples", name)))


class LabWindow(QtWidgets.QWidget):
    """The frame of a lab. Subclasses set ``title``, ``summary`` (two sentences: what to look
    for), ``example`` (a file of assets/examples) and fill ``controls`` and ``body``; they
    implement ``compute``, which runs the first time the window shows.

    Signals: ``open_experiment(Path)`` from the Open-the-experiment button; ``computed()``
    after a result is drawn."""

    open_experiment = QtCore.Signal(object)
    computed = QtCore.Signal()

    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    example: ClassVar[str] = ""
    example_hint: ClassVar[str] = ""

    def __init__(self, registry: Any = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, QtCore.Qt.WindowType.Window)
        self.setWindowTitle(f"Gradient Lab — {self.title}")
        if registry is None:
            from gradient_lab.engine.loading.discovery import default_registry

            registry = default_registry()
        self.registry = registry
        self.job: LabJob | None = None
        self.error: str | None = None
        self._on_progress: Callable[[str, Any], None] | None = None
        self._on_done: Callable[[Any], None] | None = None
        self._stale = True  # nothing computed yet: compute when shown
        self._debouncers: list[QtCore.QTimer] = []
        self._first_pending = False  # shown, the first computation about to start

        self.summary_label = QtWidgets.QLabel(self.summary)
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        font = self.summary_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.summary_label.setFont(font)
        self.open_button = QtWidgets.QPushButton("Open the experiment")
        self.open_button.setToolTip(
            f"Open the example '{Path(self.example).stem.replace('_', ' ')}' in the main window"
            + (f": {self.example_hint}" if self.example_hint else "")
        )
        self.open_button.clicked.connect(self._open)
        header = QtWidgets.QHBoxLayout()
        header.addWidget(self.summary_label, 1)
        header.addWidget(self.open_button, 0, QtCore.Qt.AlignmentFlag.AlignTop)

        self.controls = QtWidgets.QHBoxLayout()
        self.body = QtWidgets.QVBoxLayout()

        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.busy = QtWidgets.QProgressBar()
        self.busy.setRange(0, 0)  # busy, length unknown
        self.busy.setMaximumWidth(160)
        self.busy.setTextVisible(False)
        self.busy.hide()
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop computing; what is drawn stays")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        footer = QtWidgets.QHBoxLayout()
        footer.addWidget(self.busy)
        footer.addWidget(self.cancel_button)
        footer.addWidget(self.status, 1)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(header)
        layout.addLayout(self.controls)
        layout.addLayout(self.body, 1)
        layout.addLayout(footer)

        self._poll = QtCore.QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._check_job)

    # ------------------------------------------------------------------ for subclasses
    def compute(self) -> None:
        """Start computing what the lab shows (from its current settings)."""
        raise NotImplementedError

    def run_job(
        self,
        work: Callable[[LabJob], Any],
        done: Callable[[Any], None],
        busy_text: str,
        progress: Callable[[str, Any], None] | None = None,
    ) -> LabJob:
        """Run ``work`` off the GUI thread, replacing (cancelling) the job running; ``done``
        gets its result on the GUI thread, ``progress`` what it reported since the last poll."""
        self.cancel(quiet=True)
        self._stale = False
        self.error = None
        self._on_done, self._on_progress = done, progress
        self.job = LabJob(work).start()
        self.busy.show()
        self.cancel_button.show()
        self.status.setText(busy_text)
        self._poll.start()
        return self.job

    def cancel(self, quiet: bool = False) -> None:
        """Cancel the running job: it stops at its next part and its result is ignored."""
        job, self.job = self.job, None
        self._poll.stop()
        self.busy.hide()
        self.cancel_button.hide()
        if job is not None:
            job.cancel()
            if not quiet:
                self.status.setText("Cancelled.")

    def debounce(self, ms: int, action: Callable[[], None]) -> QtCore.QTimer:
        """A single-shot timer: ``start()`` it on every change and ``action`` runs once the
        changes pause for ``ms`` (once the window shows, if it is hidden); closing the window
        stops it."""
        timer = QtCore.QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(ms)
        timer.timeout.connect(lambda: self._when_shown(action))
        self._debouncers.append(timer)
        return timer

    def _when_shown(self, action: Callable[[], None]) -> None:
        """A hidden lab computes nothing: it computes when it is shown."""
        if self.isVisible():
            action()
        else:
            self._stale = True

    @property
    def computing(self) -> bool:
        return self.job is not None

    @property
    def idle(self) -> bool:
        """Nothing computing and no change waiting to be computed."""
        waiting = self._first_pending or any(t.isActive() for t in self._debouncers)
        return self.job is None and not waiting

    def show_error(self, message: str) -> None:
        """A refused setting or a failed computation, said in the status line."""
        self.error = message
        self.status.setText(message)

    # ------------------------------------------------------------------ internals
    def _check_job(self) -> None:
        job = self.job
        if job is None:
            self._poll.stop()
            return
        message, partial = job.progress()
        if message and self._on_progress is not None:
            self._on_progress(message, partial)
        elif message:
            self.status.setText(message)
        if not job.future.done():
            return
        self.job = None
        self._poll.stop()
        self.busy.hide()
        self.cancel_button.hide()
        exc = job.future.exception()
        if isinstance(exc, Cancelled):
            return
        if exc is not None:
            self.show_error(f"{type(exc).__name__}: {exc}")
            return
        self.status.setText("")
        assert self._on_done is not None
        self._on_done(job.future.result())
        self.computed.emit()

    def _open(self) -> None:
        self.open_experiment.emit(example_path(self.example))

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        from gradient_lab.app import theme

        theme.style_widget(self)  # the plots in the current theme, light or dark
        super().showEvent(event)
        if self._stale and not self._first_pending:
            self._first_pending = True
            QtCore.QTimer.singleShot(0, self, self._first_compute)  # not once it is gone

    def _first_compute(self) -> None:
        self._first_pending = False
        if self._stale and self.isVisible() and self.job is None:
            self._stale = False
            self.compute()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        """A closed lab computes nothing: the job is cancelled, and computed again if the
        window is shown again."""
        if self.job is not None or not self.idle:
            self.cancel(quiet=True)
            self._stale = True
        for timer in self._debouncers:
            timer.stop()
        self.stop()
        super().closeEvent(event)

    def stop(self) -> None:
        """Stop the lab's own timers (an animation); called on close."""


def spin(low: int, high: int, value: int, tip: str, step: int = 1) -> QtWidgets.QSpinBox:
    """A whole-number box that reports only finished edits."""
    box = QtWidgets.QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setSingleStep(step)
    box.setKeyboardTracking(False)
    box.setToolTip(tip)
    return box


def labelled(text: str, widget: QtWidgets.QWidget) -> QtWidgets.QWidget:
    """``widget`` with a short label before it, as one item of a control row."""
    box = QtWidgets.QWidget()
    row = QtWidgets.QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(4)
    row.addWidget(QtWidgets.QLabel(text))
    row.addWidget(widget)
    return box


def param_box(param: Any, value: Any, registry: Any) -> tuple[QtWidgets.QWidget, ParamField]:
    """A field generated from a plugin's declared parameter, labelled with its name; the
    field belongs to the box, so deleting the box deletes both."""
    box = QtWidgets.QWidget()
    field = ParamField(param, value, registry, box)
    row = QtWidgets.QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(4)
    row.addWidget(QtWidgets.QLabel(param.name))
    row.addWidget(field.widget)
    return box, field
