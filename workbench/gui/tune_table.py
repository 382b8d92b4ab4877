"""The Tune dialog's two tables: the search space (editable, one row per knob) and the trials, live.

The space table holds text only; `entries()` turns the checked rows into `--space` entries, so the dialog
checks them with the same parser (engine.tune_space) the CLI uses and one message covers both.
"""

from __future__ import annotations

import bisect
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

from workbench.core import params as P
from workbench.engine.tune_objective import Objective, TrialResult
from workbench.engine.tune_space import Dim
from workbench.gui.tune_live import Live

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
        self._ranged: list[bool] = []        # a range row (low/high/log), else a choice row

    def set_dims(self, dims: list[Dim]) -> None:
        self.setRowCount(0)
        self._steps, self._ranged = [], []
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
            log.setFlags(log.flags() & ~Qt.ItemIsUserCheckable)     # a table item is checkable by default
            if ranged:
                log.setFlags(log.flags() | Qt.ItemIsUserCheckable)
                log.setCheckState(Qt.Checked if dim.log else Qt.Unchecked)
            self.setItem(row, 3, log)
            self.setItem(row, 4, _item("|".join(P.format_value(c) for c in dim.choices), not ranged))
            self._steps.append(dim.step)
            self._ranged.append(ranged)
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
            if self._ranged[r]:
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
    """The study's trials: a row as soon as a trial is launched ("running", with its epoch and last
    accuracy while it runs in this process), its result when it ends (earlier runs of a resumed study too);
    the best highlighted. Rows are filled one at a time, only where something changed."""

    state_shown = Signal(int, str)      # trial number, the text its state cell now shows

    def __init__(self, parent=None):
        super().__init__(0, len(TRIAL_COLUMNS), parent)
        self.horizontalHeader().setStretchLastSection(True)
        self.setHorizontalHeaderLabels(TRIAL_COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.results: dict[int, TrialResult] = {}
        self.best: list[int] = []
        self._order: list[int] = []       # trial numbers, row by row

    def clear_trials(self) -> None:
        self.results.clear()
        self.best = []
        self._order = []
        self.setRowCount(0)

    def add(self, result: TrialResult, objective: Objective) -> None:
        """A trial launched or ended (new or updated) into its row; the best re-highlighted when it ended."""
        old = self.results.get(result.number)
        self.results[result.number] = result
        row = self._row_for(result.number)
        acc = "--" if result.accuracy is None else f"{100 * result.accuracy:.2f}%"
        ratio = "--" if result.storage_ratio is None else f"{result.storage_ratio:.2f}x"
        state = result.state + (f" ({result.error})" if result.error and result.state != "complete" else "")
        self._set(row, (str(result.number), " ".join(f"{k}={_value(v)}" for k, v in result.params.items()), acc,
                        ratio, state, Path(result.run).name if result.run else "-"), result.run)
        self.state_shown.emit(result.number, state)
        if result.state != "running" or (old is not None and old.state != "running"):
            self._highlight(objective)
        self.resizeColumnsToContents()

    def show_live(self, number: int, live: Live) -> bool:
        """A running trial's progress into its row (its accuracy and ratio the last measured); False when
        the trial has no row or has ended meanwhile (its result stays)."""
        result = self.results.get(number)
        if result is None or result.state != "running":
            return False
        row = self._order.index(number)
        acc = "--" if live.accuracy is None else f"{100 * live.accuracy:.2f}%"
        ratio = "--" if live.storage_ratio is None else f"{live.storage_ratio:.2f}x"
        text = live.text()
        for col, value in ((2, acc), (3, ratio), (4, text), (5, Path(live.run).name if live.run else "-")):
            self.item(row, col).setText(value)
        self.item(row, 5).setToolTip(live.run)
        self.item(row, 2).setToolTip("the last measured accuracy of the running trial")
        self.resizeColumnToContents(4)
        self.state_shown.emit(number, text)
        return True

    def _row_for(self, number: int) -> int:
        if number in self._order:
            return self._order.index(number)
        row = bisect.bisect(self._order, number)
        self._order.insert(row, number)
        self.insertRow(row)
        for col in range(self.columnCount()):
            self.setItem(row, col, QTableWidgetItem(""))
        return row

    def _set(self, row: int, cells: tuple, run: str) -> None:
        for col, text in enumerate(cells):
            item = self.item(row, col)
            item.setText(text)
            item.setData(Qt.UserRole, run)
            item.setToolTip(run if col == len(cells) - 1 and run else "")

    def _highlight(self, objective: Objective) -> None:
        self.best = [r.number for r in objective.best(list(self.results.values()))]
        tip = "on the Pareto front" if objective.multi else "best so far"
        for row, n in enumerate(self._order):
            brush = QBrush(BEST) if n in self.best else QBrush()
            for col in range(self.columnCount()):
                self.item(row, col).setBackground(brush)
                if col < self.columnCount() - 1:
                    self.item(row, col).setToolTip(tip if n in self.best else "")

    def row_of(self, number: int) -> int:
        return self._order.index(number)

    def select_trial(self, number: int) -> None:
        """Select a trial's row and show it (a line clicked in the parallel-coordinates plot)."""
        if number in self._order:
            self.selectRow(self._order.index(number))
            self.scrollToItem(self.item(self._order.index(number), 0))

    def selected_runs(self) -> list[str]:
        rows = sorted({i.row() for i in self.selectedIndexes()})
        return [p for p in (self.item(r, 0).data(Qt.UserRole) for r in rows) if p]
