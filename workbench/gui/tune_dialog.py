"""The Tune dialog: a study (engine.tune.Tuner) over the current setup's knobs, with a live trial table.

The space comes pre-filled from build_space's defaults for the setup's method or pipeline and is edited
as a table; Start checks it with the CLI's own parser (one line for anything wrong, nothing started) and
runs the Tuner on a QThread: trials come back through a queued signal, so the GUI thread only fills rows.
Cancel sets the study's CancelToken: the running trial's file is kept as cancelled, the journal stays
resumable (Start again with the same folder resumes it).
"""

from __future__ import annotations

import threading
import traceback
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.core.events import CancelToken
from workbench.engine.tune import Tuner
from workbench.engine.tune_objective import parse_objective
from workbench.engine.tune_space import build_space
from workbench.gui.tune_table import SpaceTable, TrialTable

OBJECTIVE_CHOICES = ("accuracy-ratio", "ratio-at-drop=1", "accuracy-at-ratio=10")


class _TuneWorker(QObject):
    """Lives in the dialog's thread: runs one study, re-emitting each finished trial."""

    trial = Signal(object)          # TrialResult
    done = Signal(object, str)      # StudyResult or None, the error ("" when it ran)

    def __init__(self):
        super().__init__()
        self.thread_ident: int | None = None     # the thread the study ran on (tests check it is not the GUI's)

    @Slot(object, object)
    def run(self, tuner: Tuner, token: CancelToken) -> None:
        self.thread_ident = threading.get_ident()
        try:
            result, error = tuner.run(progress=self.trial.emit, cancel=token), ""
        except WorkbenchError as exc:
            result, error = None, str(exc)
        except Exception as exc:  # noqa: BLE001 - the app stays up; the line says what broke
            traceback.print_exc()
            result, error = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
        self.done.emit(result, error)


class TuneDialog(QDialog):
    """Non-modal; `open_runs(paths)` is the main window's way to add run files to Compare."""

    _start = Signal(object, object)

    def __init__(self, config: RunConfig, open_runs: Callable[[list[str]], None], parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Tune {config.method_label} on {config.model or config.checkpoint}")
        self.setModal(False)
        self.config, self.open_runs = config, open_runs
        self.tuner: Tuner | None = None
        self.token: CancelToken | None = None
        self.result = None                       # the last StudyResult

        self.space = SpaceTable()
        self.trials = QSpinBox(minimum=1, maximum=10000, value=20)
        self.objective = QComboBox(editable=True)
        self.objective.addItems(OBJECTIVE_CHOICES)
        self.objective.setToolTip("accuracy-ratio: the Pareto front of accuracy against storage ratio; "
                                  "ratio-at-drop=X: the largest ratio losing at most X accuracy points; "
                                  "accuracy-at-ratio=R: the best accuracy at a ratio of at least R")
        self.out = QLineEdit(str(Path(config.out_dir or "runs") / "tune"))
        self.out.setToolTip("the trials' run files and the study's journal; the same folder resumes the study")
        form = QFormLayout()
        form.addRow("Trials", self.trials)
        form.addRow("Objective", self.objective)
        form.addRow("Output folder", self.out)
        where = QLabel("Trials run here, one after another.")
        where.setToolTip("Ray (several workers or a cluster) is not offered in the app yet: use "
                         "`workbench tune --ray local|ADDRESS` from the command line")
        form.addRow("Where", where)

        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel")
        self.compare_button = QPushButton("Open in Compare")
        self.compare_button.setToolTip("add the selected trials' run files to the Compare tab")
        self.cancel_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.compare_button.clicked.connect(self.open_selected)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.compare_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.error_label = QLabel("")
        self.error_label.setStyleSheet("color: #b00020")
        self.error_label.setWordWrap(True)
        self.status_label = QLabel("")
        self.table = TrialTable()

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Search space (unchecked knobs keep the setup's value)"))
        layout.addWidget(self.space, 2)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.error_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self.table, 3)
        self.resize(760, 640)

        self._thread = QThread(self)
        self.worker = _TuneWorker()
        self.worker.moveToThread(self._thread)
        self._start.connect(self.worker.run)
        self.worker.trial.connect(self._trial)
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
            out = self.out.text().strip()
            if not out:
                raise WorkbenchError("give an output folder for the trials' run files")
            tuner = Tuner(self.config, space, self.trials.value(), objective, out)   # median pruning where
            # the objective allows it: Tuner drops it for the two-objective study itself
        except WorkbenchError as exc:
            self.set_error(str(exc))
            return
        self.set_error("")
        self.tuner, self.token = tuner, CancelToken()
        self.table.clear_trials()
        self._set_running(True)
        self.status_label.setText(f"running study {tuner.name} in {tuner.out}")
        self._start.emit(tuner, self.token)

    def cancel(self) -> None:
        if self.token is not None:
            self.token.cancel()
            self.status_label.setText("cancelling: the running trial stops at its next check")

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for w in (self.space, self.trials, self.objective, self.out):
            w.setEnabled(not running)

    def _trial(self, result) -> None:
        self.table.add(result, self.tuner.objective)

    def _done(self, result, error: str) -> None:
        cancelled = self.token is not None and self.token.cancelled
        self.token = None
        self._set_running(False)
        self.result = result
        if result is not None:
            for r in result.trials:               # earlier runs of a resumed study, and any missed row
                if r.number not in self.table.results:
                    self.table.add(r, self.tuner.objective)
            best = ", ".join(str(r.number) for r in result.best) or "none yet"
            self.status_label.setText(f"study {result.name}: {len(result.trials)} trials ({result.ran} run now), "
                                      f"{'cancelled, ' if cancelled else ''}best: {best}")
        else:
            self.status_label.setText("")
        self.set_error(error)

    def open_selected(self) -> None:
        runs = self.table.selected_runs()
        if not runs:
            self.set_error("select trials with run files first")
            return
        self.set_error("")
        self.open_runs(runs)

    # --- closing ----------------------------------------------------------------------------------------
    def shutdown(self, wait_ms: int = 60000) -> bool:
        """Cancel a running study and stop the thread (the window's close calls it)."""
        self.cancel()
        self._thread.quit()
        return self._thread.wait(wait_ms)
