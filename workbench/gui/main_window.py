"""The main window: wires the setup and method panels, the run queue, the live plots, the comparison
table and the Deploy tab together. It computes nothing itself: runs and deployment measurements go to the
RunQueue's thread (one at a time), files to the thread pool (run_files: opened, recent, a watched folder)."""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, QThreadPool
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QGraphicsItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTabWidget,
    QWidget,
)

from workbench.core.config import RunConfig
from workbench.core.events import Finished, RunStarted
from workbench.gui.compare_view import CompareView
from workbench.gui.deploy_control import DeployControl
from workbench.gui.deploy_job import DeployJob
from workbench.gui.deploy_view import DeployView
from workbench.gui.export_dialog import ExportDialog
from workbench.gui.help_menu import add_help_menu
from workbench.gui.live_refresh import StaggeredRefresh
from workbench.gui.main_thread_gc import collect_on_gui_thread
from workbench.gui.messages import app_words
from workbench.gui.method_panel import MethodPanel
from workbench.gui.model_layers import ModelLayers
from workbench.gui.plots import (
    CurvesPlot,
    HashingPlot,
    HistogramView,
    KeptBars,
    MixturePlot,
    RatioPlot,
    SpectrumPlot,
    export_plot,
)
from workbench.gui.promote_dialog import promote_run
from workbench.gui.run_files import RunFiles
from workbench.gui.run_trace import RunTrace
from workbench.gui.setup_dock import SetupDock
from workbench.gui.setup_panel import SetupPanel
from workbench.gui.tune_dialog import TuneDialog
from workbench.gui.wheel_guard import WheelGuard
from workbench.gui.window_state import restore_window, save_window
from workbench.gui.worker import RunQueue

# The tabs beside the histogram, as (attribute, tab title, class). Each follows the histogram's run, layer
# and point (MainWindow._histogram_shown); with the histogram they are the per-layer plots of the focused
# run (MainWindow.layer_plots).
SIDE_TABS = (
    ("kept", "Kept per layer", KeptBars),
    ("mixture", "Mixture", MixturePlot),
    ("spectrum", "Spectrum", SpectrumPlot),
    ("hashing", "Hashing", HashingPlot),
)


def _cache_axes(root: QWidget) -> None:
    """Keep each plot axis as a pixmap until its range changes: pyqtgraph otherwise re-renders every tick
    label on every repaint, which was most of the GUI thread's time after each live point (profiled)."""
    for view in root.findChildren(pg.GraphicsView):
        for item in view.scene().items():
            if isinstance(item, pg.AxisItem):
                item.setCacheMode(QGraphicsItem.DeviceCoordinateCache)


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.setWindowTitle("Compression Workbench")
        self.settings = settings or QSettings("compression-workbench", "workbench")
        self.traces: dict[str, RunTrace] = {}
        self._warnings: dict[str, str] = {}          # run path -> its latest warning (runner.stall_notice)
        self._closing = False                        # closed while a run was finishing: close after it
        self.focus_path = ""
        self.tune_dialog: TuneDialog | None = None
        self.queue = RunQueue(self)
        self.live_refresh = StaggeredRefresh(self)

        self.setup = SetupPanel()
        self.methods = MethodPanel()
        self.setCentralWidget(self._build_center())
        self._build_dock()
        self._build_menu()
        # Created now, not by the first message: its appearing mid-run resized and repainted every plot.
        self.statusBar().showMessage("ready", 3000)
        self._connect()
        self.deploy = DeployControl(self)              # Measure deployment: queued like a run
        self.queue.measured.connect(lambda outcome: self._closing and self.close())   # closed while measuring
        restore_window(self)
        self._wheel_guard = WheelGuard(self)            # scrolling a panel never changes a setting
        QApplication.instance().installEventFilter(self._wheel_guard)
        # runs, studies and file checks work in threads: cyclic garbage holding Qt objects must be
        # collected here, never in them (main_thread_gc)
        collect_on_gui_thread(QApplication.instance())
        self.model_layers.set_stages(self.methods.stages())
        self._model_changed()
        self._update_run_button()

    # --- layout -----------------------------------------------------------------------------------
    def _build_center(self) -> QWidget:
        self.ratio_plot = RatioPlot()
        self.curves = CurvesPlot()
        self.histogram = HistogramView()
        # The plots that show the focused run layer by layer, by name; each side tab is an attribute of that
        # name too (self.kept, ...). Only the histogram is given the run: the side tabs follow it.
        self.layer_plots: dict[str, QWidget] = {"histogram": self.histogram}
        live = QSplitter(Qt.Vertical)
        top = QSplitter(Qt.Horizontal)
        top.addWidget(self.ratio_plot)
        top.addWidget(self.curves)
        side = self.side_tabs = QTabWidget()
        for name, title, cls in SIDE_TABS:
            plot = cls()
            setattr(self, name, plot)
            self.layer_plots[name] = plot
            side.addTab(plot, title)
        self._followed = None                  # the histogram's (trace, layer, point) the side tabs follow
        self._stale_tabs: set[str] = set()     # side tabs not redrawn since it changed (not the open tab)
        self.histogram.shown.connect(self._histogram_shown)
        side.currentChanged.connect(lambda _: self._side_tab_opened())
        bottom = QSplitter(Qt.Horizontal)
        bottom.addWidget(self.histogram)
        bottom.addWidget(side)
        bottom.setSizes([700, 300])
        live.addWidget(top)
        live.addWidget(bottom)
        self.compare = CompareView()
        self.compare.order = self._listed_at
        self.compare_plot = RatioPlot()     # the selected runs (all when none is selected), side by side
        compare = QSplitter(Qt.Vertical)
        compare.addWidget(self.compare)
        compare.addWidget(self.compare_plot)
        compare.setSizes([300, 600])       # the plot gets most; the table scrolls past a dozen runs
        self.tabs = QTabWidget()
        self.tabs.addTab(live, "Live")
        self.tabs.addTab(compare, "Compare")
        self.deploy_view = DeployView()      # accuracy against latency and file size; the per-form table
        self.tabs.addTab(self.deploy_view, "Deploy")
        self.model_layers = ModelLayers()    # the chosen model's layers and what each stage does with them
        self.tabs.addTab(self.model_layers, "Layers")
        _cache_axes(self.tabs)
        return self.tabs

    def _build_dock(self) -> None:
        self.setup_dock = SetupDock(self, [self.setup, self.methods])
        self.addDockWidget(Qt.LeftDockWidgetArea, self.setup_dock)
        bar = self.run_bar = self.setup_dock.run_bar
        # The window's names for the bar's parts (tests and menus use them).
        self.run_button, self.cancel_button, self.progress = bar.run_button, bar.cancel_button, bar.progress
        self.run_label, self.error_label, self.queue_list = bar.run_label, bar.error_label, bar.queue_list
        # Tune… beside Run: a study over the method form's knobs (not in the Run menu, whose shortcuts the
        # help page and its test list exactly)
        self.tune_button = QPushButton("Tune…")
        self.tune_button.setToolTip("Search the method's knobs over many runs (an Optuna study) in a dialog")
        self.tune_button.clicked.connect(self.open_tune_dialog)
        bar.layout().itemAt(0).layout().addWidget(self.tune_button, 1)     # the bar's Run | Cancel row

    def _build_menu(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.files = RunFiles(self, file_menu)       # Open runs…, Open recent, Watch folder…
        self.recent, self.watch = self.files.recent, self.files.watch
        file_menu.addSeparator()
        for text, slot in (("Export &model…", self.export_selected),
                           ("P&romote run to preset…", self.promote_selected),
                           ("Export &plot…", self.export_plot_dialog),
                           ("Export table as &CSV…", self.export_csv_dialog)):
            act = QAction(text, self)
            act.triggered.connect(slot)
            file_menu.addAction(act)
        file_menu.addSeparator()
        act = QAction("&Quit", self, shortcut=QKeySequence.Quit)
        act.triggered.connect(self.close)
        file_menu.addAction(act)
        run_menu = self.menuBar().addMenu("&Run")
        for text, key, slot in (("&Run the current settings", "F5", self.queue_current),
                                ("&Cancel the running run", "Shift+F5", self.queue.cancel),
                                ("&Measure deployment of the current run", "F6", lambda: self.deploy.request())):
            act = QAction(text, self, shortcut=QKeySequence(key))
            act.triggered.connect(slot)
            run_menu.addAction(act)
        add_help_menu(self)

    def _connect(self) -> None:
        self.run_button.clicked.connect(self.queue_current)
        self.cancel_button.clicked.connect(self.queue.cancel)
        self.methods.validity_changed.connect(lambda ok, msg: self._update_run_button())
        self.setup.changed.connect(self._update_run_button)
        self.setup.changed.connect(self._model_changed)
        self.setup.model_chosen.connect(self._model_chosen)
        self.methods.changed.connect(lambda: self.model_layers.set_stages(self.methods.stages()))
        self.model_layers.inspected.connect(self.setup.set_model_inspection)
        self.setup.open_runs.connect(self.open_runs)
        self.methods.preset_chosen.connect(self._preset_chosen)
        self.queue.started.connect(self._run_started)
        self.queue.progress.connect(self.run_bar.advanced)
        self.queue.point.connect(self._run_point)
        self.queue.message.connect(self.show_status)
        self.queue.warning.connect(self._run_warning)
        self.queue.finished.connect(self._run_finished)
        self.queue.queue_changed.connect(self._queue_changed)
        self.compare.selection_changed.connect(self._selection_changed)
        self.compare.status.connect(self.show_status)
        self.compare.export_requested.connect(self.export_run)

    # --- running ------------------------------------------------------------------------------------
    def current_config(self) -> RunConfig:
        parts = self.setup.config_parts()
        out = self.settings.value("out_dir", str(Path.cwd() / "runs"))
        return RunConfig(stages=self.methods.stages(), out_dir=out, **parts)

    def _preset_chosen(self, preset: dict) -> None:
        """A preset names the model and data it was measured on, and whether storage is Huffman coded."""
        self.setup.set_parts({"model": preset.get("model"), "dataset": preset.get("dataset"),
                              "huffman": bool(preset.get("huffman", False))})

    def _model_changed(self) -> None:
        """The Layers tab follows the model field (built in the thread pool when it changed)."""
        parts = self.setup.config_parts()
        self.model_layers.set_model(parts["model"], parts["dataset"], parts["trust_code"])

    def _model_chosen(self, spec: str) -> None:
        if not self.queue.busy:               # a run's live plots stay in front while it runs
            self.tabs.setCurrentWidget(self.model_layers)

    def validation_error(self) -> str:
        return self.setup.error() or self.methods.error()

    def _update_run_button(self) -> None:
        self.run_bar.set_run_enabled(self.validation_error())

    def queue_current(self) -> None:
        if self.validation_error():
            return
        self.run_bar.set_error("")
        if not self.queue.busy:
            self.run_bar.queued()
        for i in range(self.setup.repeats()):      # Repeats: the same run over consecutive seeds
            config = self.current_config()
            config.seed += i
            self.queue.enqueue(config)

    def open_tune_dialog(self) -> None:
        """A study over the current setup (its thread, not the run queue's); a running one is brought back."""
        if self.validation_error():
            self.show_error(self.validation_error())
            return
        if self.tune_dialog is not None and self.tune_dialog.running:
            self.tune_dialog.show()
            self.tune_dialog.raise_()
            return
        if self.tune_dialog is not None:
            self.tune_dialog.shutdown()
            self.tune_dialog.deleteLater()
        self.tune_dialog = TuneDialog(self.current_config(), self.open_runs, self,
                                      promoted=lambda _name: self.methods.refresh_presets())
        self.tune_dialog.show()

    def _queue_changed(self) -> None:
        # The bar keeps saying how the last run ended: the queue emptying is no news (see run_bar).
        self.run_bar.set_queue(self.queue.busy, [
            item.describe() if isinstance(item, DeployJob) else
            f"{item.method_label} on {item.model or item.checkpoint} s{item.seed}"
            for item in self.queue.pending()])

    def _run_started(self, ev: RunStarted) -> None:
        trace = RunTrace.started(ev)      # named as its file will name it (run_trace.run_label)
        self.traces[ev.run_path] = trace
        self.focus_path = ev.run_path
        self.compare.add_or_update(trace)
        self.run_bar.started(f"{trace.label}\n{ev.device} · {Path(ev.run_path).name}", ev.total_steps)
        # Added to the plots as they stand, one plot per pass: rebuilding every plot here was the
        # longest GUI stall of a run (about 90 ms on 2 busy cores).
        self._schedule_views(ev.run_path, trace, "set_trace")    # a point arriving first keeps the keys

    def _run_point(self, path: str, ev) -> None:
        trace = self.traces.get(path)
        if trace is None:
            return
        trace.add_point(ev)
        self.run_bar.reached(ev.step)
        # Each plot redraws in its own event-loop pass (see live_refresh): one paint at a time.
        layers = path == self.focus_path and "histogram" not in self.live_refresh.pending()
        self._schedule_views(path, trace, "update_trace" if layers else None)
        self.live_refresh.schedule(f"table:{path}", lambda: self.compare.add_or_update(trace))

    def _schedule_views(self, path: str, trace, layer_call: str | None) -> None:
        """One run's plots, each in its own pass (live_refresh), under the keys every caller shares so a
        pending redraw is replaced, not repeated; the per-layer plots by `layer_call` (set_trace or
        update_trace), none when None."""
        refresh = self.live_refresh.schedule
        refresh(f"ratio:{path}", lambda: self.ratio_plot.update_trace(trace))
        refresh(f"curves:{path}", lambda: self.curves.update_trace(trace))
        if layer_call:       # the side tabs follow the histogram (_histogram_shown)
            refresh("histogram", lambda call=getattr(self.histogram, layer_call): call(trace))
        refresh(f"compare:{path}", lambda: self.compare_plot.update_trace(trace))

    def _histogram_shown(self, trace, layer: str, point: int) -> None:
        """The side tabs follow the histogram's run, layer and point: the open tab in its own later pass,
        the others when their tab is opened. Redrawn in the histogram's pass, all four tabs and the
        histogram took one event-loop pass and one paint (62-90 ms on the GUI thread during a LeNet-5
        run: the responsiveness benchmark's worst stalls, sampled with the GUI thread's stack)."""
        self._followed = (trace, layer, point)
        self._stale_tabs.update(name for name, _, _ in SIDE_TABS)
        self._side_tab_opened()

    def _side_tab_opened(self) -> None:
        name = next((n for n, _, _ in SIDE_TABS if self.layer_plots[n] is self.side_tabs.currentWidget()), None)
        if name in self._stale_tabs and self._followed is not None:
            self._stale_tabs.discard(name)
            plot = self.layer_plots[name]
            self.live_refresh.schedule(f"follow:{name}", lambda: plot.follow(*self._followed))

    def _run_warning(self, path: str, text: str) -> None:
        self._warnings[path] = text
        trace = self.traces.get(path)           # it stays on screen while later runs go: say whose it is
        self.show_error(f"{trace.label}: {text}" if trace is not None else text)

    def _run_finished(self, fin: Finished) -> None:
        if fin.status == "failed":
            self.show_error(f"run failed: {fin.error}" + (f" (partial results kept in {fin.run_path})"
                                                          if fin.run_path else ""))
        elif fin.run_path in self._warnings:
            self.show_status(f"run {fin.status} with a warning: {self._warnings[fin.run_path]}", 15000)
        else:
            self.statusBar().showMessage(f"run {fin.status}: {Path(fin.run_path).name}", 10000)
        if fin.run_path:
            self.files.load(fin.run_path)  # the file has the summary; read it off the GUI thread
        self.run_bar.finished(fin)
        if self._closing:                  # the user closed the window while this run was finishing
            self.close()                   # the queue is idle now: closeEvent stops its thread

    def show_error(self, text: str) -> None:
        self.run_bar.set_error(text)
        self.statusBar().showMessage(app_words(text), 15000)

    def show_status(self, text: str, ms: int = 8000) -> None:
        self.statusBar().showMessage(app_words(text), ms)

    # --- files (run_files.RunFiles reads them and calls back refresh_views) --------------------------------
    def open_runs(self, paths: list[str]) -> None:
        self.files.open(paths)

    def _selection_changed(self, paths: list[str]) -> None:
        if paths:
            self.focus_path = paths[0]
        self._show_traces()

    def refresh_views(self) -> None:
        """Redraw what shows the loaded runs (after a deployment report arrived)."""
        self._show_traces()

    def _listed_at(self, path: str) -> int:
        """A run's place in the window's runs (open order: the plots' legends and colours)."""
        keys = list(self.traces)
        return keys.index(path) if path in self.traces else len(keys)

    def refresh_run(self, path: str) -> None:
        """A shown run read again from its file (at its end, or rewritten in a watched folder): its views
        are updated in the staggered passes the live points use. Rebuilding every view at once here was
        the longest GUI-thread stall of a run (35-60 ms measured at a run's end, 2 busy cores)."""
        trace = self.traces[path]
        if all(t.path != path for t in self._shown_traces()):
            return                   # the Compare selection leaves it out of the plots
        self._schedule_views(path, trace, "set_trace" if path == self.focus_path else None)
        self.live_refresh.schedule("deploy", lambda: self.deploy_view.set_runs(self._shown_traces(), self.traces.get(self.focus_path)))

    def _show_traces(self) -> None:
        # The rebuild below draws the newest data of the shown traces; a pending live update would
        # re-add a trace the selection just left out. Table rows are not rebuilt here, so they stay.
        # A pending side-tab follow stays: the histogram announces only a change, so it may not come again.
        self.live_refresh.discard(lambda key: not key.startswith(("table:", "follow:")))
        traces = self._shown_traces()
        self.ratio_plot.set_traces(traces)
        self.compare_plot.set_traces(traces)
        self.curves.set_traces(traces)
        focus = self.traces.get(self.focus_path)
        self.deploy_view.set_runs(traces, focus)
        if focus is not None:
            self.histogram.set_trace(focus)     # the side tabs follow it

    def _shown_traces(self) -> list:
        selected = self.compare.selected_paths()
        return [self.traces[p] for p in (selected or list(self.traces)) if p in self.traces]

    # --- export -------------------------------------------------------------------------------------------
    def export_selected(self) -> None:
        paths = self.compare.selected_paths() or ([self.focus_path] if self.focus_path else [])
        if paths:
            self.export_run(paths[0])
        else:
            self.show_error("select a finished run in the Compare tab first")

    def export_run(self, path: str) -> None:
        ExportDialog(path, self).open()

    def promote_selected(self) -> None:
        """The selected (or current) finished run as a user preset, listed in the method panel at once."""
        paths = self.compare.selected_paths() or ([self.focus_path] if self.focus_path else [])
        if not paths:
            self.show_error("select a finished run in the Compare tab first")
        elif (name := promote_run(self, paths[0])) is not None:
            self.methods.refresh_presets()
            self.show_status(f"saved preset {name}: pick it under Presets")

    def export_plot_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export plot", "ratio.png", "PNG (*.png);;SVG (*.svg)")
        if path:
            export_plot(self.ratio_plot, path)

    def export_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export table", "runs.csv", "CSV (*.csv)")
        if path:
            self.compare.write_csv(path)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        save_window(self)
        if self.queue.busy and not self._closing and self.isVisible():   # a hidden window has no one to ask
            answer = QMessageBox.question(
                self, "A run is in progress",
                "A run (or deployment measurement) is in progress. Cancel it and close? A run's file keeps "
                "everything recorded so far, a measurement stores nothing; queued runs are dropped.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        if self.queue.busy:
            # Cancel, stay open (and responsive) until the run has closed its file, then close: the
            # run's `finished` signal comes back here (_run_finished).
            self._closing = True
            self.queue.cancel_all()
            self.statusBar().showMessage("cancelling the run; the window closes once its file is closed")
            event.ignore()
            return
        self.queue.shutdown()
        self.watch.stop()                      # no scan starts after this
        if self.tune_dialog is not None:       # a study still running is cancelled (its journal resumes it)
            self.tune_dialog.shutdown()
        # File reads and exports still running in the pool report back to this window: let them end
        # before it goes (an export is written atomically either way).
        QThreadPool.globalInstance().waitForDone(30000)
        super().closeEvent(event)

