"""The Tune dialog's study options in one compact grid: trials, objective, sampler, pruner, where the
trials run (this process, a Ray on this machine, a Ray cluster) and the output folder.

`tuner_args()` turns them into Tuner's keyword arguments, or one WorkbenchError line (nothing started):
a Ray choice when Ray is not installed, a cluster without an address. Pruning needs a single objective:
with accuracy-ratio the pruner box is off and a note says that no trial is pruned (instead of an error).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from workbench.core.errors import WorkbenchError
from workbench.engine.tune import PRUNERS, SAMPLERS, RayOptions
from workbench.engine.tune_objective import parse_objective

OBJECTIVE_CHOICES = ("accuracy-ratio", "ratio-at-drop=1", "accuracy-at-ratio=10")
WHERE = ("this process", "Ray on this machine", "Ray cluster at")
HERE, RAY_LOCAL, RAY_CLUSTER = range(3)
NEEDS_RAY = "Ray needs the tune extra: pip install 'compression-workbench[tune]'"
NO_PRUNING = "Pruning does not apply to accuracy-ratio (two objectives): every trial runs to its end."


def ray_available() -> bool:
    """Ray can be imported (looked up, not imported: importing Ray takes seconds)."""
    return importlib.util.find_spec("ray") is not None


class TuneOptions(QWidget):
    def __init__(self, out_dir: str, parent=None):
        super().__init__(parent)
        self.trials = QSpinBox(minimum=1, maximum=10000, value=20)
        self.objective = QComboBox(editable=True)
        self.objective.addItems(OBJECTIVE_CHOICES)
        self.objective.setToolTip("accuracy-ratio: the Pareto front of accuracy against storage ratio; "
                                  "ratio-at-drop=X: the largest ratio losing at most X accuracy points; "
                                  "accuracy-at-ratio=R: the best accuracy at a ratio of at least R")
        self.sampler = QComboBox()
        self.sampler.addItems(SAMPLERS)
        self.sampler.setToolTip("tpe: Optuna's tree-structured Parzen estimator; gp: a Gaussian process "
                                "(often better with few trials over numeric knobs; needs scipy)")
        self.pruner = QComboBox()
        self.pruner.addItems(PRUNERS)
        self.pruner.setToolTip("median: stop a trial whose score after an epoch is below the median of "
                               "earlier trials at that epoch (from the fifth trial on); none: every trial runs "
                               "to its end")
        self.where = QComboBox()
        self.where.addItems(WHERE)
        self.where.setToolTip("this process: one trial after another, with live progress; Ray: as many trials "
                              "at once as there are workers (one CPU each), rows say 'running' until they end")
        self.workers = QSpinBox(minimum=0, maximum=4096, value=0, specialValueText="all CPUs")
        self.workers.setToolTip("trials at once on this machine (one CPU each); 0: all CPUs")
        self.address = QLineEdit()
        self.address.setPlaceholderText("HOST:6379 or ray://HOST:10001")
        self.address.setToolTip("a running Ray cluster; every worker must see the output folder at the same path")
        self.gpus = QDoubleSpinBox(minimum=0.0, maximum=64.0, value=0.0, decimals=2, singleStep=0.25)
        self.gpus.setToolTip("GPUs per trial on Ray (0.5: two trials share a GPU); 0: trials on CPU")
        self.out = QLineEdit(out_dir)
        self.out.setToolTip("the trials' run files and the study's journal; the same folder resumes the study")
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(mid)")

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        cells = ((0, 0, "Trials", self.trials), (0, 2, "Objective", self.objective),
                 (0, 4, "Sampler", self.sampler), (0, 6, "Pruner", self.pruner),
                 (1, 0, "Where", self.where), (1, 2, "Workers", self.workers),
                 (1, 4, "Address", self.address), (1, 6, "GPUs per trial", self.gpus))
        for row, col, text, widget in cells:
            grid.addWidget(QLabel(text), row, col)
            grid.addWidget(widget, row, col + 1)
        grid.addWidget(QLabel("Output folder"), 2, 0)
        grid.addWidget(self.out, 2, 1, 1, 7)
        grid.addWidget(self.note, 3, 0, 1, 8)
        for col in (1, 3, 5, 7):
            grid.setColumnStretch(col, 1)
        grid.setColumnStretch(5, 2)           # the address is the longest entry

        self.objective.currentTextChanged.connect(self._update)
        self.where.currentIndexChanged.connect(self._update)
        self._update()

    def widgets(self) -> list[QWidget]:
        return [self.trials, self.objective, self.sampler, self.pruner, self.where, self.workers, self.address,
                self.gpus, self.out]

    def set_enabled(self, enabled: bool) -> None:
        """All off while a study runs; back on, each as the choices allow."""
        for w in self.widgets():
            w.setEnabled(enabled)
        if enabled:
            self._update()

    def _multi(self) -> bool:
        try:
            return parse_objective(self.objective.currentText()).multi
        except WorkbenchError:            # Start says what is wrong with it
            return False

    def _update(self, *_) -> None:
        where = self.where.currentIndex()
        self.workers.setEnabled(where == RAY_LOCAL)
        self.address.setEnabled(where == RAY_CLUSTER)
        self.gpus.setEnabled(where != HERE)
        multi = self._multi()
        self.pruner.setEnabled(not multi)
        notes = [NO_PRUNING] if multi else []
        if where != HERE and not ray_available():
            notes.insert(0, NEEDS_RAY)
        self.note.setText(" ".join(notes))

    def tuner_args(self) -> dict:
        """Tuner's sampler, pruner and ray arguments; one WorkbenchError line for a choice that cannot run."""
        where = self.where.currentIndex()
        ray = None
        if where != HERE:
            if not ray_available():
                raise WorkbenchError(NEEDS_RAY)
            address = "local"
            if where == RAY_CLUSTER:
                address = self.address.text().strip()
                if not address:
                    raise WorkbenchError("give the Ray cluster's address (HOST:6379 or ray://HOST:10001), "
                                         "or run the trials in this process or on a Ray on this machine")
            ray = RayOptions(address=address, workers=self.workers.value() if where == RAY_LOCAL else 0,
                             gpus_per_trial=self.gpus.value())
        pruner = "none" if self._multi() else self.pruner.currentText()
        return {"sampler": self.sampler.currentText(), "pruner": pruner, "ray": ray}

    def out_dir(self) -> Path:
        text = self.out.text().strip()
        if not text:
            raise WorkbenchError("give an output folder for the trials' run files")
        return Path(text)
