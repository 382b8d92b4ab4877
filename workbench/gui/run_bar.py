"""The run bar: Run, Cancel, the progress with its ETA, the current run, the queue and the last error.

It is pinned below the Setup panel's scroll area (gui/setup_dock.py), so it is in view whatever the
panel's scroll position and the window's size. The bar says how the last run ended ("completed",
"cancelled at 60%", "failed at 12%") until the next one starts; it is never reset to "idle" by the queue
emptying (that used to race the run's end and hide the outcome).
"""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QListWidget, QProgressBar, QPushButton, QVBoxLayout

from workbench.core.events import Finished, Progress
from workbench.gui.fit_label import FitLabel
from workbench.gui.messages import app_words

RUN_TIP = "Queue a run with these settings (runs go one after another)"
ERROR_COLOR = "#b00020"


def duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def outcome(status: str, value: int, maximum: int, started: bool) -> str:
    """How a run ended, as the progress bar says it."""
    if status == "completed":
        return "completed"
    percent = f" at {round(100 * value / maximum)}%" if started and maximum > 0 else ""
    return f"{status}{percent}"


class RunBar(QFrame):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip(RUN_TIP)
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel the running run: it ends as cancelled and its file keeps "
                                      "everything recorded so far (Shift+F5)")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button, 1)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.run_label = FitLabel(max_lines=2)
        layout.addWidget(self.run_label)
        self.queue_list = QListWidget()       # shown only while runs wait their turn
        self.queue_list.setMaximumHeight(64)
        self.queue_list.hide()
        layout.addWidget(self.queue_list)
        self.error_label = FitLabel(max_lines=4, color=ERROR_COLOR)
        self.error_label.hide()
        layout.addWidget(self.error_label)
        self._started = False

    # --- the run -----------------------------------------------------------------------------------
    def queued(self) -> None:
        """Run was pressed with nothing running: the last outcome gives way to the new run."""
        self._started = False
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("starting…")

    def started(self, text: str, total_steps: int) -> None:
        self._started = True
        self.run_label.setText(text)
        self.progress.setRange(0, max(total_steps, 1))
        self.progress.setValue(0)
        self.progress.setFormat("%p%")

    def advanced(self, ev: Progress) -> None:
        if self.progress.maximum() != ev.total_steps:   # pretraining counts its own steps first
            self.progress.setRange(0, max(ev.total_steps, 1))
        self._started = True
        self.progress.setValue(ev.step)
        what = "pretraining  " if ev.stage < 0 else ""
        self.progress.setFormat(f"{what}%p%  loss {ev.train_loss:.3f}  ETA {duration(ev.eta)}")

    def reached(self, step: int) -> None:
        self.progress.setValue(step)

    def finished(self, fin: Finished) -> None:
        bar = self.progress
        if fin.status == "completed":
            bar.setValue(bar.maximum())
        bar.setFormat(outcome(fin.status, bar.value() - bar.minimum(), bar.maximum() - bar.minimum(),
                              self._started))
        self._started = False

    def set_queue(self, running: bool, pending: list[str]) -> None:
        self.cancel_button.setEnabled(running)
        self.queue_list.clear()
        self.queue_list.addItems([f"queued: {text}" for text in pending])
        self.queue_list.setVisible(bool(pending))

    # --- messages ----------------------------------------------------------------------------------
    def set_error(self, text: str) -> None:
        self.error_label.setText(app_words(text))
        self.error_label.setVisible(bool(text))

    def set_run_enabled(self, problem: str) -> None:
        """Run is enabled when there is no problem; its tooltip says why not otherwise."""
        self.run_button.setEnabled(not problem)
        self.run_button.setToolTip(app_words(problem) or RUN_TIP)
