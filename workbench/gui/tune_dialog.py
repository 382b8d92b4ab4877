"""The Tune dialog: a study (engine.tune.Tuner) over the current setup's knobs, with live trials.

The space comes pre-filled from build_space's defaults for the setup's method or pipeline and is edited
as a table; the study's options (sampler, pruner, where the trials run) sit in a compact grid
(tune_options). Start checks everything with the CLI's own parsers (one line for anything wrong, nothing
started) and runs the Tuner on a QThread. The GUI thread only fills rows: a timer (POLL_MS) reads the
trials the Tuner has launched (Tuner.results(), thread-safe) and the running trials' progress
(tune_live.LiveTrials, fed by the run events on the study's thread), and fills the rows that changed; a
finished trial also comes at once through a queued signal. Cancel sets the study's CancelToken: the
running trial's file is kept as cancelled, the journal stays resumable (Start again with the same folder
resumes it). The "Knobs vs outcome" tab draws the finished trials as parallel coordinates.
"""

from __future__ import annotations

import threading
import traceback
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
)

from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.core.events import CancelToken
from workbench.engine.tune import Tuner
from workbench.engine.tune_objective import TrialResult, parse_objective
from workbench.engine.tune_space import build_space
from workbench.gui.plots.parallel_plot import ParallelPlot
from workbench.gui.promote_dialog import promote_run
from workbench.gui.tune_live import LiveTrials
from workbench.gui.tune_options import TuneOptions
from workbench.gui.tune_table import SpaceTable, TrialTable
from workbench.gui.window_state import fit_to_screen

POLL_MS = 250          # the rows' refresh: at most four times a second, however often the runs report


class _TuneWorker(QObject):
    """Lives in the dialog's thread: runs one study, re-emitting each finished trial."""

    trial = Signal(object)          # TrialResult
    done = Signal(object, str)      # StudyResult or None, the error ("" when it ran)

    def __init__(self):
        super().__init__()
        self.thread_ident: int | None = None     # the thread the study ran on (tests check it is not the GUI's)

    @Slot(object, object, object)
    def run(self, tuner: Tuner, token: CancelToken, events) -> None:
        self.thread_ident = threading.get_ident()
        try:
            result, error = tuner.run(progress=self.trial.emit, cancel=token, events=events), ""
        except WorkbenchError as exc:
            result, error = None, str(exc)
        except Exception as exc:  # noqa: BLE001 - the app stays up; the line says what broke
            traceback.print_exc()
            result, error = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
        self.done.emit(result, error)


class TuneDialog(QDialog):
    """Non-modal; `open_runs(paths)` is the main window's way to add run files to Compare."""

    _start = Signal(object, object, object)

    def __init__(self, config: RunConfig, open_runs: Callable[[list[str]], None], parent=None,
                 promoted: Callable[[str], None] | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Tune {config.method_label} on {config.model or config.checkpoint}")
        self.setModal(False)
        self.config, self.open_runs, self.promoted = config, open_runs, promoted
        self.tuner: Tuner | None = None
        self.token: CancelToken | None = None
        self.result = None                       # the last StudyResult
        self.live = LiveTrials()

        self.space = SpaceTable()
        self.options = TuneOptions(str(Path(config.out_dir or "runs") / "tune"))
        self.trials, self.objective, self.out = self.options.trials, self.options.objective, self.options.out

        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel")
        self.compare_button = QPushButton("Open in Compare")
        self.compare_button.setToolTip("add the selected trials' run files to the Compare tab")
        self.cancel_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.compare_button.clicked.connect(self.open_selected)
        self.promote_button = QPushButton("Promote to preset…")
        self.promote_button.setToolTip("save the selected trial's settings as your own preset, with its "
                                       "accuracy, ratio and the reference it was measured on")
        self.promote_button.clicked.connect(self.promote_selected)
        self.status_label = QLabel("")
        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.compare_button, self.promote_button):
            buttons.addWidget(b)
        buttons.addWidget(self.status_label, 1)
        self.error_label = QLabel("")
        self.error_label.setStyleSheet("color: #b00020")
        self.error_label.setWordWrap(True)
        self.table = TrialTable()
        self.plot = ParallelPlot()
        self.plot.trial_clicked.connect(self._select_trial)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.table, "Trials")
        self.tabs.addTab(self.plot, "Knobs vs outcome")
        self.tabs.setMinimumHeight(220)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Search space (unchecked knobs keep the setup's value)"))
        layout.addWidget(self.space, 2)
        layout.addWidget(self.options)
        layout.addLayout(buttons)
        layout.addWidget(self.error_label)
        layout.addWidget(self.tabs, 3)
        self.resize(900, 720)
        self._placed = False

        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(POLL_MS)
        self._poll_timer.timeout.connect(self._poll)
        self._thread = QThread(self)
        self.worker = _TuneWorker()
        self.worker.moveToThread(self._thread)
        self._start.connect(self.worker.run)
        self.worker.trial.connect(self._show_result)
        self.worker.done.connect(self._done)
        self._thread.start()
        try:
            self.space.set_dims(build_space(config).dims)
        except WorkbenchError as exc:           # a method with nothing to search: say so, start nothing
            self.set_error(str(exc))
            self.start_button.setEnabled(False)

    # --- running --------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.token is not None

    def set_error(self, text: str) -> None:
        self.error_label.setText(text.splitlines()[0] if text else "")

    def start(self) -> None:
        """Check everything here (one line, nothing started), then hand the study to the worker thread."""
        if self.running:
            return
        try:
            space = build_space(self.config, self.space.entries(), defaults=False)
            objective = parse_objective(self.objective.currentText())
            tuner = Tuner(self.config, space, self.trials.value(), objective, self.options.out_dir(),
                          **self.options.tuner_args())
        except WorkbenchError as exc:
            self.set_error(str(exc))
            return
        self.set_error("")
        self.tuner, self.token = tuner, CancelToken()
        self.live.clear()
        self.table.clear_trials()
        self.plot.set_study(space.dims, [], [])
        self._set_running(True)
        where = "on Ray" if tuner.ray is not None else "in this process"
        self.status_label.setText(f"running study {tuner.name} in {tuner.out}, trials {where}")
        self._poll_timer.start()
        # the live view only for trials in this process: Ray's workers send no events here
        self._start.emit(tuner, self.token, self.live.event if tuner.ray is None else None)

    def cancel(self) -> None:
        if self.token is not None:
            self.token.cancel()
            self.status_label.setText("cancelling: the running trials stop at their next check")

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.space.setEnabled(not running)
        self.options.set_enabled(not running)

    def _poll(self) -> None:
        """Rows for trials launched or ended since the last pass, then the running ones' progress."""
        if self.tuner is None:
            return
        for r in self.tuner.results():       # launched and ended trials, a resumed study's earlier ones
            shown = self.table.results.get(r.number)
            if shown is None or shown.state != r.state:
                self._show_result(r)
        for number, live in self.live.take().items():
            self.table.show_live(number, live)

    def _show_result(self, result: TrialResult) -> None:
        self.table.add(result, self.tuner.objective)
        if result.state != "running":
            self.live.forget(result.number)
            self.plot.set_study(self.tuner.space.dims, list(self.table.results.values()), self.table.best)

    def _done(self, result, error: str) -> None:
        cancelled = self.token is not None and self.token.cancelled
        self.token = None
        self._poll_timer.stop()
        self._poll()
        for number, shown in list(self.table.results.items()):
            if shown.state == "running":      # the study stopped with an error mid-trial: a resume redoes it
                self._show_result(TrialResult(number, shown.params, "failed", error="interrupted"))
        self._set_running(False)
        self.result = result
        if result is not None:
            best = ", ".join(str(r.number) for r in result.best) or "none yet"
            self.status_label.setText(f"study {result.name}: {len(result.trials)} trials ({result.ran} run now), "
                                      f"{'cancelled, ' if cancelled else ''}best: {best}")
        else:
            self.status_label.setText("")
        self.set_error(error)

    def _select_trial(self, number: int) -> None:
        self.table.select_trial(number)
        self.tabs.setCurrentWidget(self.table)

    def open_selected(self) -> None:
        runs = self.table.selected_runs()
        if not runs:
            self.set_error("select trials with run files first")
            return
        self.set_error("")
        self.open_runs(runs)

    def promote_selected(self) -> None:
        runs = self.table.selected_runs()
        if len(runs) != 1:
            self.set_error("select one finished trial to promote")
            return
        self.set_error("")
        name = promote_run(self, runs[0])
        if name is not None:
            self.status_label.setText(f"saved preset {name}")
            if self.promoted is not None:
                self.promoted(name)

    # --- placing --------------------------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if not self._placed:
            self._placed = True
            QTimer.singleShot(0, lambda: fit_to_screen(self))    # once the window manager has framed it

    # --- closing ----------------------------------------------------------------------------------------
    def shutdown(self, wait_ms: int = 60000) -> bool:
        """Cancel a running study and stop the thread (the window's close calls it)."""
        self.cancel()
        self._poll_timer.stop()
        self._thread.quit()
        return self._thread.wait(wait_ms)
