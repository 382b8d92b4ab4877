"""The Tune dialog's two tables: the search space (editable, one row per knob) and the live trials.

The space table holds text only; `entries()` turns the checked rows into `--space` entries, so the dialog
checks them with the same parser (engine.tune_space) the CLI uses and one message covers both.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

from workbench.core import params as P
from workbench.engine.tune_objective import Objective, TrialResult
from workbench.engine.tune_space import Dim

SPACE_COLUMNS = ("knob", "low", "high", "log", "choices")
TRIAL_COLUMNS = ("trial", "params", "accuracy", "storage ratio", "state", "run file")
BEST = QColor(255, 236, 150)          # the best trials (Pareto front or best feasible): a light yellow


def _item(text: str, editable: bool) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    if not editable:
        item.setFlags(item.flags() & ~Qt.ItemIsEditable)
    return item


def _value(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else P.format_value(v)


class SpaceTable(QTableWidget):
    """One row per knob: checked rows are searched. A range row edits low/high/log; a choice row its
    choices (A|B|C). A grid step is kept as declared (not shown: rarely changed)."""

    def __init__(self, parent=None):
        super().__init__(0, len(SPACE_COLUMNS), parent)
        self.horizontalHeader().setStretchLastSection(True)     # choices (or the run file) take the room
        self.setHorizontalHeaderLabels(SPACE_COLUMNS)
        self.verticalHeader().setVisible(False)
        self._steps: list[float | None] = []

    def set_dims(self, dims: list[Dim]) -> None:
        self.setRowCount(0)
        self._steps = []
        for dim in dims:
            row = self.rowCount()
            self.insertRow(row)
            name = _item(dim.name, False)
            name.setFlags(name.flags() | Qt.ItemIsUserCheckable)
            name.setCheckState(Qt.Checked)
            name.setToolTip("unchecked: left out of the search (the setup's value is used)")
            self.setItem(row, 0, name)
            ranged = not dim.choices
            self.setItem(row, 1, _item(P.format_value(dim.low) if ranged else "", ranged))
            self.setItem(row, 2, _item(P.format_value(dim.high) if ranged else "", ranged))
            log = _item("", False)
            if ranged:
                log.setFlags(log.flags() | Qt.ItemIsUserCheckable)
                log.setCheckState(Qt.Checked if dim.log else Qt.Unchecked)
            self.setItem(row, 3, log)
            self.setItem(row, 4, _item("|".join(P.format_value(c) for c in dim.choices), not ranged))
            self._steps.append(dim.step)
        self.resizeColumnsToContents()

    def knobs(self) -> list[str]:
        return [self.item(r, 0).text() for r in range(self.rowCount())]

    def set_checked(self, name: str, checked: bool) -> None:
        row = self.knobs().index(name)
        self.item(row, 0).setCheckState(Qt.Checked if checked else Qt.Unchecked)

    def set_cell(self, name: str, column: str, text: str) -> None:
        self.item(self.knobs().index(name), SPACE_COLUMNS.index(column)).setText(text)

    def entries(self) -> list[str]:
        """The checked rows as `--space` entries (NAME=LOW..HIGH[:log][:step=S] or NAME=A|B)."""
        out = []
        for r in range(self.rowCount()):
            name = self.item(r, 0)
            if name.checkState() != Qt.Checked:
                continue
            choices = self.item(r, 4).text().strip()
            if self.item(r, 3).flags() & Qt.ItemIsUserCheckable:
                text = f"{name.text()}={self.item(r, 1).text().strip()}..{self.item(r, 2).text().strip()}"
                if self.item(r, 3).checkState() == Qt.Checked:
                    text += ":log"
                if self._steps[r]:
                    text += f":step={P.format_value(self._steps[r])}"
            else:
                text = f"{name.text()}={choices}"
            out.append(text)
        return out


class TrialTable(QTableWidget):
    """The study's trials as they finish (earlier runs of a resumed study too); the best highlighted."""

    def __init__(self, parent=None):
        super().__init__(0, len(TRIAL_COLUMNS), parent)
        self.horizontalHeader().setStretchLastSection(True)
        self.setHorizontalHeaderLabels(TRIAL_COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.results: dict[int, TrialResult] = {}
        self.best: list[int] = []

    def clear_trials(self) -> None:
        self.results.clear()
        self.best = []
        self.setRowCount(0)

    def add(self, result: TrialResult, objective: Objective) -> None:
        """A trial's result (new or updated) into its row, then the best trials re-highlighted."""
        self.results[result.number] = result
        numbers = sorted(self.results)
        self.setRowCount(len(numbers))
        for row, n in enumerate(numbers):
            r = self.results[n]
            acc = "--" if r.accuracy is None else f"{100 * r.accuracy:.2f}%"
            ratio = "--" if r.storage_ratio is None else f"{r.storage_ratio:.2f}x"
            state = r.state + (f" ({r.error})" if r.error and r.state != "complete" else "")
            cells = (str(n), " ".join(f"{k}={_value(v)}" for k, v in r.params.items()), acc, ratio, state,
                     Path(r.run).name if r.run else "-")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.UserRole, r.run)
                if col == len(cells) - 1 and r.run:
                    item.setToolTip(r.run)
                self.setItem(row, col, item)
        self.best = [r.number for r in objective.best(list(self.results.values()))]
        for row, n in enumerate(numbers):
            brush = QBrush(BEST) if n in self.best else QBrush()
            for col in range(self.columnCount()):
                self.item(row, col).setBackground(brush)
                if n in self.best:
                    self.item(row, col).setToolTip("best so far" if not objective.multi else "on the Pareto front")
        self.resizeColumnsToContents()

    def row_of(self, number: int) -> int:
        return sorted(self.results).index(number)

    def selected_runs(self) -> list[str]:
        rows = sorted({i.row() for i in self.selectedIndexes()})
        return [p for p in (self.item(r, 0).data(Qt.UserRole) for r in rows) if p]
