"""The plugin manager: every plugin with its kind, source, version and status, the
conformance check on demand, and new plugins written from templates and checked as they are
saved, an activation's or a loss's curves drawn beside the finite-difference slope.

A plugin is arbitrary code, so nothing here runs one on the GUI thread: discovery, checks
and curves run in the background one job at a time (``background.in_background``), a
drop-in file is scanned in a worker process before it is imported (``conformance.check_path``),
and whatever fails shows as the plugin's status and error text, never as a dialog.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gradient_lab.app.background import in_background, when_done
from gradient_lab.app.plugin_watch import PluginFolderWatcher
from gradient_lab.app.plugin_writer import TEMPLATE_KINDS, write_plugin
from gradient_lab.app.session_loader import PluginOptions, load_registry

COLUMNS = ("kind", "name", "source", "version", "status", "check", "error")
ALL_KINDS = "all kinds"
ESTIMATE_EVERY = 10  # draw every tenth finite-difference estimate as a ring
FAILED_COLOUR = QtGui.QColor(176, 0, 32)
FAILED_ROW = QtGui.QColor(253, 226, 225)
PASSED_COLOUR = QtGui.QColor(0, 110, 60)
VALUE_RGB, SLOPE_RGB, ESTIMATE_RGB = (0, 114, 178), (213, 94, 0), (40, 40, 40)
VALUE_PEN = pg.mkPen(VALUE_RGB, width=2)
SLOPE_PEN = pg.mkPen(SLOPE_RGB, width=2)
ESTIMATE_PEN = pg.mkPen(ESTIMATE_RGB, width=1.2)
RECORD_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1


def _swatch(rgb: tuple[int, int, int], mark: str) -> str:
    return f"<span style='color: rgb{rgb}'>{mark}</span>"


def record_key(record: Any) -> tuple[str, str, str]:
    """(kind, name, where from): a drop-in by its resolved path, as the check reports it."""
    origin = str(record.origin)
    if record.source == "folder":
        origin = str(Path(origin).resolve())
    return str(record.kind), str(record.name), origin


def source_text(source: str) -> str:
    """builtin, package or user file (a package's distribution is in the row's tooltip)."""
    if source == "folder":
        return "user file"
    return "package" if source.startswith("package:") else source


def report_text(report: Any) -> str:
    """A check's report, what failed first (a student reads the top of it)."""
    if report.passed:
        return str(report.describe())
    passed = [item.name for item in report.items if item.passed]
    tail = f"\n  passed: {', '.join(passed)}" if passed else ""
    return f"{report.describe(only_failures=True)}{tail}"


# ------------------------------------------------------------------ work done in the background
# Each returns plain results; the engine is imported here, off the GUI thread.


def check_files(paths: tuple[Path, ...], options: PluginOptions) -> tuple[list[Any], Any]:
    """Every saved file checked (scanned in a worker process first), then a registry
    discovered afresh; ``None`` results for files that are gone."""
    from gradient_lab.engine.loading.conformance import check_path

    checked = [(path, check_path(path) if path.is_file() else None) for path in paths]
    return checked, load_registry(options)


def check_records(records: list[Any], registry: Any) -> list[tuple[Any, Any]]:
    """(record, report) for each record: a drop-in through its file, the rest in-process."""
    from gradient_lab.engine.loading import conformance

    def failed(record: Any, item: str, why: str) -> tuple[Any, Any]:
        report = conformance.CheckReport(record.kind, record.name)
        report.items.append(conformance.CheckItem(item, False, why))
        return record, report

    results: list[tuple[Any, Any]] = []
    for record in records:
        if record.source == "folder" and Path(record.origin).is_file():
            results += conformance.check_path(record.origin)  # all the file's plugins: one scan
        elif not record.ok:
            results.append(failed(record, "load", record.error))
        else:
            try:
                results.append((record, conformance.check_plugin(record.cls, registry)))
            except Exception as exc:  # its import here failed (record.cls), or the check did
                results.append(failed(record, "load", f"{type(exc).__name__}: {exc}"))
    return results


@dataclass(frozen=True)
class Curves:
    """What the curve plot draws: a value and its slope over x, the slope's finite-difference
    estimate, and the largest gap between the two slopes (away from ``kinks``)."""

    x: Any
    value: Any
    slope: Any
    estimate: Any
    gap: float
    kinks: tuple[float, ...] = ()
    target: Any = None  # a loss's fixed target row


def curves_of(record: Any) -> Curves:
    """An activation's f and f′ over z, or a loss against one prediction, from the engine."""
    from gradient_lab.engine.instruments import plugin_curves as pc

    cls = record.cls
    if record.kind == "activation":
        z, kinks = pc.activation_sweep(), tuple(cls.kinks)
        f, df, df_fd = pc.activation_curves(cls, z)
        return Curves(z, f, df, df_fd, pc.largest_gap(df, df_fd, z, kinks), kinks)
    pred, target = pc.loss_sweep(cls)
    value, grad, grad_fd = pc.loss_curves(cls, pred, target)
    return Curves(pred, value, grad, grad_fd, pc.largest_gap(grad, grad_fd, pred), (), target)


# ------------------------------------------------------------------ one job at a time


@dataclass
class _Tally:
    """The checks of one Check all: how many jobs are still out, what came back."""

    left: int
    results: list[tuple[Any, Any]] = field(default_factory=list)


@dataclass
class _Job:
    label: str
    prepare: Callable[[], Callable[[], Any]]  # on the GUI thread, when the job starts
    done: Callable[[Any], None]  # on the GUI thread, with the work's result


class _Jobs:
    """Runs background jobs in order, one at a time; an urgent one (a saved file) goes first.
    A job that raises, or whose result cannot be shown, reports to ``failed`` and the next
    one runs."""

    def __init__(
        self,
        owner: QtCore.QObject,
        status: Callable[[str], None],
        failed: Callable[[str, BaseException], None],
        idle: Callable[[], None],
    ) -> None:
        self.owner, self.status, self.failed, self.idle = owner, status, failed, idle
        self.queue: deque[_Job] = deque()
        self.running: _Job | None = None

    def add(self, label: str, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run ``work()`` in the background after the jobs waiting, then ``done(result)``."""
        self.queue.append(_Job(label, lambda: work, done))
        self._next()

    def add_urgent(
        self, label: str, prepare: Callable[[], Callable[[], Any]], done: Callable[[Any], None]
    ) -> None:
        """Run next: ``prepare()`` on the GUI thread when the job starts gives the work."""
        self.queue.appendleft(_Job(label, prepare, done))
        self._next()

    def _next(self) -> None:
        if self.running is not None or not self.queue:
            return
        job = self.running = self.queue.popleft()
        self.status(f"{job.label}…")
        try:
            work = job.prepare()
        except Exception as exc:
            self._finish(job, None, exc)
            return
        when_done(self.owner, in_background(work), partial(self._finished, job))

    def _finished(self, job: _Job, future: Any) -> None:
        try:
            value = future.result()
        except BaseException as exc:  # a plugin's SystemExit must not end the app either
            self._finish(job, None, exc)
            return
        self._finish(job, value, None)

    def _finish(self, job: _Job, value: Any, error: BaseException | None) -> None:
        try:
            if error is None:
                job.done(value)
        except Exception as exc:
            error = exc
        self.running = None
        if error is not None:
            self.failed(job.label, error)
        elif not self.queue:
            self.idle()
        self._next()

    @property
    def busy(self) -> bool:
        return self.running is not None or bool(self.queue)


# ------------------------------------------------------------------ the table's filter


class _Filter(QtCore.QSortFilterProxyModel):
    """Rows of one kind (or all), optionally failed ones only, containing a text."""

    def __init__(self, parent: QtCore.QObject) -> None:
        super().__init__(parent)
        self.kind = ALL_KINDS
        self.failed_only = False
        self.text = ""

    def set(self, **changes: Any) -> None:
        self.beginFilterChange()
        for name, value in changes.items():
            setattr(self, name, value)
        self.endFilterChange(QtCore.QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(
        self, row: int, parent: QtCore.QModelIndex | QtCore.QPersistentModelIndex
    ) -> bool:
        model = self.sourceModel()

        def cell(column: str) -> str:
            return str(model.index(row, COLUMNS.index(column), parent).data() or "")

        if self.kind != ALL_KINDS and cell("kind") != self.kind:
            return False
        if self.failed_only and cell("status") == "ok" and cell("check") != "failed":
            return False
        needle = self.text.lower()
        return not needle or any(needle in cell(c).lower() for c in ("name", "error", "source"))


# ------------------------------------------------------------------ the curves


class CurvePlot(QtWidgets.QWidget):
    """An activation's f and f′, or a loss and its gradient, with the finite-difference
    slope as rings on the analytic one: a wrong derivative shows as rings off the curve."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.value_curve = self.plot.plot(pen=VALUE_PEN)
        self.slope_curve = self.plot.plot(pen=SLOPE_PEN)
        self.estimate_points = self.plot.plot(
            pen=None, symbol="o", symbolSize=6, symbolPen=ESTIMATE_PEN, symbolBrush=None
        )
        self.note = QtWidgets.QLabel(" ")  # the legend, and how far the slopes agree
        self.note.setWordWrap(True)
        self.note.setTextFormat(QtCore.Qt.TextFormat.RichText)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.note)
        self.clear()

    def show_curves(self, kind: str, name: str, curves: Curves) -> None:
        x, every = curves.x, ESTIMATE_EVERY
        self.value_curve.setData(x, curves.value)
        self.slope_curve.setData(x, curves.slope)
        self.estimate_points.setData(x[::every], curves.estimate[::every])
        if kind == "loss":
            names = ("L", "dL/dŷ")
            target = ", ".join(f"{t:g}" for t in curves.target)
            title = f"{name}: loss and gradient against the prediction ŷ, target [{target}]"
            self.plot.setLabel("bottom", "prediction ŷ (first output)")
        else:
            names = ("f", "f′")
            title = f"{name}: f and f′ over z"
            self.plot.setLabel("bottom", "z")
        self.plot.setTitle(title, size="10pt")
        self.plot.enableAutoRange()
        away = " away from its kinks" if curves.kinks else ""
        self.note.setText(
            f"{_swatch(VALUE_RGB, '━━')} {names[0]} &nbsp; {_swatch(SLOPE_RGB, '━━')} {names[1]}"
            f" &nbsp; {_swatch(ESTIMATE_RGB, '○')} {names[1]} by finite differences"
            f" &nbsp;·&nbsp; largest gap between the slopes{away}: {curves.gap:.1e}"
        )
        self.setVisible(True)

    def clear(self) -> None:
        """Nothing to draw: hidden, so the report below takes the room."""
        for item in (self.value_curve, self.slope_curve, self.estimate_points):
            item.setData([], [])
        self.plot.setTitle(None)
        self.note.setText(" ")
        self.setVisible(False)


# ------------------------------------------------------------------ the view


class PluginManagerView(QtWidgets.QWidget):
    """The dock's contents. ``set_registry`` shows a registry; ``registry_changed(registry)``
    carries one discovered here (after Reload, or once a saved plugin file is checked) for the
    window to use. ``new_plugin(kind)`` writes a plugin from its template and opens it."""

    registry_changed = QtCore.Signal(object)

    def __init__(
        self,
        plugin_options: PluginOptions | None = None,
        parent: QtWidgets.QWidget | None = None,
        registry: Any = None,
    ) -> None:
        super().__init__(parent)
        from gradient_lab.engine.loading.registry import plugin_folders

        self.plugin_options = plugin_options or PluginOptions()
        self.folders = plugin_folders(self.plugin_options.plugins_dir)
        self.folder = self.folders[0]  # where new plugins are written
        self.registry: Any = None
        self.records: list[Any] = []
        self.reports: dict[tuple[str, str, str], Any] = {}
        # The records the check loaded, by key: a plugin that failed its check (a wrong
        # derivative) is out of the registry's use, but its curves still show the mistake.
        self.checked: dict[tuple[str, str, str], Any] = {}
        self._dirty: set[Path] = set()  # saved files waiting for their check
        self._curves_for: tuple[str, str, str] | None = None
        self.jobs = _Jobs(self, self._set_status, self._job_failed, self._idle)

        self._build_table()
        self._build_bar()
        self._build_details()
        self.status = QtWidgets.QLabel(" ")
        self.status.setWordWrap(True)
        split = QtWidgets.QSplitter()
        split.addWidget(self.table)
        split.addWidget(self.details)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([640, 460])
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(self.bar)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)

        self.watcher = PluginFolderWatcher(self.folders, self)
        self.watcher.files_changed.connect(self.files_saved)
        if registry is not None:
            self.set_registry(registry)
        else:
            self._set_status("no plugins listed yet: press Reload")

    # ------------------------------------------------------------------ building
    def _build_table(self) -> None:
        self.model = QtGui.QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.filter = _Filter(self)
        self.filter.setSourceModel(self.model)
        self.table = QtWidgets.QTableView()
        self.table.setModel(self.filter)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, QtCore.Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setTextElideMode(QtCore.Qt.TextElideMode.ElideRight)
        self.table.setWordWrap(False)
        self.table.selectionModel().selectionChanged.connect(self._selected)

    def _build_bar(self) -> None:
        self.kind_box = QtWidgets.QComboBox()
        self.kind_box.addItem(ALL_KINDS)
        self.kind_box.currentTextChanged.connect(lambda kind: self.filter.set(kind=kind))
        self.failed_only = QtWidgets.QCheckBox("Failed only")
        self.failed_only.toggled.connect(lambda on: self.filter.set(failed_only=on))
        self.search = QtWidgets.QLineEdit()
        self.search.setPlaceholderText("filter by name or error")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda text: self.filter.set(text=text))
        self.new_button = QtWidgets.QToolButton()
        self.new_button.setText("New plugin…")
        self.new_button.setToolTip(
            "Write a working plugin of this kind into the user plugin folder and open it"
        )
        self.new_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        self.new_menu = QtWidgets.QMenu(self.new_button)
        for kind in TEMPLATE_KINDS:
            self.new_menu.addAction(kind.replace("_", " "), partial(self.new_plugin, kind))
        self.new_button.setMenu(self.new_menu)
        self.check_button = self._button("Check", "Run the conformance check on the selection")
        self.check_button.clicked.connect(self.check_selected)
        self.check_all_button = self._button("Check all", "Check every plugin listed, one by one")
        self.check_all_button.clicked.connect(self.check_all)
        self.reload_button = self._button("Reload", "Discover the plugins again")
        self.reload_button.clicked.connect(self.reload)
        self.folder_button = self._button("Open folder", "Open the user plugin folder")
        self.folder_button.clicked.connect(self.open_folder)
        self.bar = QtWidgets.QHBoxLayout()
        self.bar.addWidget(self.kind_box)
        self.bar.addWidget(self.failed_only)
        self.bar.addWidget(self.search, 1)
        for widget in (
            self.new_button,
            self.check_button,
            self.check_all_button,
            self.reload_button,
            self.folder_button,
        ):
            self.bar.addWidget(widget)

    def _button(self, text: str, tip: str) -> QtWidgets.QPushButton:
        button = QtWidgets.QPushButton(text)
        button.setToolTip(tip)
        return button

    def _build_details(self) -> None:
        self.curves = CurvePlot()
        self.report = QtWidgets.QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.report.setFont(
            QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        )
        self.report.setPlaceholderText("select a plugin, or press Check")
        self.details = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.details.addWidget(self.curves)
        self.details.addWidget(self.report)
        self.details.setSizes([280, 160])

    # ------------------------------------------------------------------ the registry
    def set_registry(self, registry: Any) -> None:
        """Show ``registry``'s plugins (the selection stays on the same plugin when it can)."""
        kept = self._selected_keys()
        self.registry = registry
        self.records = sorted(registry.records, key=lambda r: (r.kind, r.name))
        self.table.setSortingEnabled(False)
        self.model.removeRows(0, self.model.rowCount())
        for index, record in enumerate(self.records):
            self.model.appendRow(self._row(record, index))
        self.table.setSortingEnabled(True)
        kinds = sorted({str(r.kind) for r in self.records})
        current = self.kind_box.currentText()
        self.kind_box.blockSignals(True)
        self.kind_box.clear()
        self.kind_box.addItems([ALL_KINDS, *kinds])
        self.kind_box.setCurrentText(current if current in kinds else ALL_KINDS)
        self.kind_box.blockSignals(False)
        self.filter.set(kind=self.kind_box.currentText())
        for column in range(len(COLUMNS) - 1):  # the error text takes the rest, elided
            self.table.resizeColumnToContents(column)
        self._select(kept)
        self._set_status(self._summary())

    def _row(self, record: Any, index: int) -> list[QtGui.QStandardItem]:
        check = self._check_text(record)
        texts = {
            "kind": record.kind,
            "name": record.name,
            "source": source_text(record.source),
            "version": record.version,
            "status": record.status,
            "check": check,
            "error": record.error,
        }
        tip = f"{record.source}: {record.origin}\n{record.error}".strip()
        items = []
        for column in COLUMNS:
            item = QtGui.QStandardItem(str(texts[column]))
            item.setToolTip(tip)
            item.setData(index, RECORD_ROLE)
            if not record.ok:
                item.setBackground(FAILED_ROW)
            if column == "status" and not record.ok:
                item.setForeground(FAILED_COLOUR)
            if column == "check" and check:
                item.setForeground(PASSED_COLOUR if check == "passed" else FAILED_COLOUR)
            items.append(item)
        return items

    def _check_text(self, record: Any) -> str:
        """The latest check's verdict here, else the scan's ("" when never checked)."""
        report = self.reports.get(record_key(record))
        if report is not None:
            return "passed" if report.passed else "failed"
        verdict = getattr(record, "check_verdict", None)
        if verdict is None:
            return ""
        return "failed" if verdict else "passed"

    def _summary(self) -> str:
        failed = sum(not r.ok for r in self.records)
        text = f"{len(self.records)} plugins, {failed} failed · user plugins: {_short(self.folder)}"
        if self.plugin_options.safe_mode:
            text += " (safe mode: user plugins are not loaded)"
        return text

    def record_at(self, proxy_row: int) -> Any:
        index = self.filter.index(proxy_row, 0)
        return self.records[int(index.data(RECORD_ROLE))]

    def row_of(self, kind: str, name: str) -> int | None:
        """The table row (as shown) of the plugin ``kind`` ``name``; None when not shown."""
        for row in range(self.filter.rowCount()):
            record = self.record_at(row)
            if (record.kind, record.name) == (kind, name):
                return row
        return None

    def selected_records(self) -> list[Any]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.record_at(row) for row in rows]

    def _selected_keys(self) -> list[tuple[str, str, str]]:
        return [record_key(r) for r in self.selected_records()]

    def _select(self, keys: list[tuple[str, str, str]]) -> None:
        selection = QtCore.QItemSelection()
        for row in range(self.filter.rowCount()):
            if record_key(self.record_at(row)) in keys:
                selection.select(self.filter.index(row, 0), self.filter.index(row, 0))
        flags = (
            QtCore.QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QtCore.QItemSelectionModel.SelectionFlag.Rows
        )
        self.table.selectionModel().select(selection, flags)
        if not selection.isEmpty():
            self.table.scrollTo(selection.indexes()[0])

    # ------------------------------------------------------------------ commands
    def reload(self) -> None:
        """Discover every plugin again, off the GUI thread; the window hears of it."""
        work = partial(load_registry, self.plugin_options)
        self.jobs.add("discovering plugins", work, self._discovered)

    def _discovered(self, registry: Any) -> None:
        self.set_registry(registry)
        self.registry_changed.emit(registry)

    def check_selected(self) -> None:
        records = self.selected_records()
        if records:
            self._check(records, f"checking {', '.join(r.name for r in records)}")

    def check_all(self) -> None:
        """Check every plugin the table shows (all, or those the filters leave), one job each
        (a drop-in file once for all its plugins), so a file saved meanwhile goes between."""
        shown = [self.record_at(row) for row in range(self.filter.rowCount())]
        files: set[str] = set()
        batch = []
        for record in shown:
            if record.source == "folder":
                if record.origin in files:
                    continue
                files.add(record.origin)
            batch.append(record)
        tally = _Tally(len(batch))
        for record in batch:
            self._check([record], f"checking {record.kind} {record.name}", tally)
        self.report.setPlainText(f"checking {len(shown)} plugins, one by one…")

    def _check(self, records: list[Any], label: str, tally: _Tally | None = None) -> None:
        done = partial(self._checked, tally=tally)
        self.jobs.add(label, partial(check_records, records, self.registry), done)

    def _checked(self, results: list[tuple[Any, Any]], tally: _Tally | None) -> None:
        for record, report in results:
            self._keep(record, report)
        self._refresh_checks()
        if tally is None:
            self.report.setPlainText("\n\n".join(report_text(report) for _, report in results))
            return
        tally.left -= 1
        tally.results += results
        failures = [report for _, report in tally.results if not report.passed]
        lines = [f"{len(tally.results)} checked: {len(failures)} failed"]
        if tally.left:
            lines[0] += f"; {tally.left} to go…"
        lines += [report.describe(only_failures=True) for report in failures]
        self.report.setPlainText("\n".join(lines))

    def _keep(self, record: Any, report: Any) -> None:
        self.reports[record_key(record)] = report
        if record.loaded:
            self.checked[record_key(record)] = record

    def _refresh_checks(self) -> None:
        column = COLUMNS.index("check")
        for row in range(self.model.rowCount()):
            item = self.model.item(row, column)
            record = self.records[int(item.data(RECORD_ROLE))]
            check = self._check_text(record)
            item.setText(check)
            item.setForeground(PASSED_COLOUR if check == "passed" else FAILED_COLOUR)

    def new_plugin(self, kind: str) -> Path | None:
        """Write a plugin of ``kind`` under a free name, open it in the system's editor, and
        check it; it is offered to the window (``registry_changed``) once it is loaded.
        None when the folder cannot be written (the status line says why)."""
        taken = self.registry.names(kind) if self.registry is not None else ()
        try:
            path = write_plugin(kind, self.folder, taken)
        except OSError as exc:
            self._cannot(f"cannot write a new {kind} into {self.folder}", exc)
            return None
        self.watcher.arm()
        self._set_status(f"wrote {path.name}")
        QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(path)))
        self.files_saved(self.watcher.changes() or [path])
        return path

    def open_folder(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._cannot(f"cannot make {self.folder}", exc)
            return
        self.watcher.arm()
        QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(self.folder)))

    # ------------------------------------------------------------------ saved files
    def files_saved(self, paths: list[Path]) -> None:
        """Check the saved files and rediscover, ahead of any other waiting job."""
        waiting = bool(self._dirty)
        self._dirty.update(Path(p) for p in paths)
        if not waiting:
            self.jobs.add_urgent("checking saved plugins", self._take_dirty, self._files_checked)

    def _take_dirty(self) -> Callable[[], Any]:
        paths, self._dirty = tuple(sorted(self._dirty)), set()
        self._set_status(f"checking {', '.join(p.name for p in paths)}…")
        return partial(check_files, paths, self.plugin_options)

    def _files_checked(self, done: tuple[list[Any], Any]) -> None:
        checked, registry = done
        focus: list[tuple[str, str, str]] = []
        texts = []
        for path, results in checked:
            if results is None:
                texts.append(f"{path.name}: removed")
                continue
            for record, report in results:
                self._keep(record, report)
                texts.append(report_text(report))
                focus.append(record_key(record))
        self._discovered(registry)
        if focus:
            self._select(focus[:1])
        self.report.setPlainText("\n\n".join(texts))

    # ------------------------------------------------------------------ selection and curves
    def _selected(self, *_: Any) -> None:
        records = self.selected_records()
        if len(records) != 1:
            return
        record = records[0]
        report = self.reports.get(record_key(record))
        checked = f"\n\nlast check:\n{report_text(report)}" if report else ""
        self.report.setPlainText(self._describe(record) + checked)
        self._curves_for = record_key(record)
        drawn = record if record.ok else self.checked.get(self._curves_for)
        if record.kind not in ("activation", "loss") or drawn is None or not drawn.ok:
            self.curves.clear()  # nothing to draw: the report takes the room
        else:
            done = partial(self._draw_curves, record, self._curves_for)
            self.jobs.add(f"drawing {record.name}", partial(curves_of, drawn), done)

    def _describe(self, record: Any) -> str:
        lines = [
            f"{record.kind} {record.name} {record.version}".strip(),
            f"from {source_text(record.source)}: {record.origin}",
            f"status: {record.status}" + (f": {record.error}" if record.error else ""),
        ]
        if record.loaded and record.cls is not None:  # never imports a plugin here
            lines += [f"formula: {record.cls.formula}", record.cls.teaching]
        if record.note:
            lines.append(f"note: {record.note}")
        if record.detail:
            lines.append(record.detail.rstrip())
        return "\n".join(line for line in lines if line)

    def _draw_curves(self, record: Any, key: tuple[str, str, str], curves: Curves) -> None:
        if key == self._curves_for:  # else the selection moved on meanwhile
            self.curves.show_curves(record.kind, record.name, curves)

    # ------------------------------------------------------------------ status
    def _set_status(self, text: str) -> None:
        self.status.setText(text)

    def _idle(self) -> None:
        self._set_status(self._summary())

    def _cannot(self, what: str, error: BaseException) -> None:
        text = f"{what}: {type(error).__name__}: {error}".splitlines()[0]
        self._set_status(text)
        self.report.setPlainText(text)

    def _job_failed(self, label: str, error: BaseException) -> None:
        self._cannot(f"{label} failed", error)
        if label.startswith("drawing"):
            self.curves.clear()

    @property
    def busy(self) -> bool:
        """Whether a background job is running or waiting."""
        return self.jobs.busy

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.watcher.stop()
        super().closeEvent(event)


def _short(path: Any) -> str:
    """A path under the home folder as ~/…, as a file manager shows it."""
    home, text = str(Path.home()), str(path)
    return "~" + text[len(home) :] if text.startswith(home + "/") else text
