"""The Deploy tab: what the shown runs' compressed models cost where they run, and how to measure it.

Top: Measure deployment with its few choices (batch sizes, threads, forms, repeats). Middle: accuracy
against batch-1 latency and against file size, one point per (run, form) of the runs selected in Compare
(all loaded runs when none is). Bottom: the per-form table of the current run, with the threads and the
machine it was measured on above it. The view only draws reports it is given; measuring is the run
queue's business (deploy_control.py), reading files the thread pool's.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.core.errors import WorkbenchError
from workbench.gui.compare_view import NumberItem, fit_columns
from workbench.gui.deploy_figures import form_rows, heading, notes, small_batch
from workbench.gui.deploy_job import DeployOptions, machine_cores, parse_batches, parse_forms
from workbench.gui.fit_label import FitLabel
from workbench.gui.messages import app_words
from workbench.gui.plots.deploy_plot import DeployPlot

MEASURE_TIP = ("Measure the current run (the first selected in Compare) in each form it can take, against "
               "its reference in the same process; the report is stored in the run file (F6). It waits for "
               "a running run: side by side, each would disturb the other's timing.")
EMPTY_TABLE = "No deployment measured for {run}: select a finished run and press Measure deployment."
NO_RUN = "No run: open run files or finish a run, select it in Compare, and press Measure deployment."
DESCRIPTION_WIDTH = 260          # elided beyond; whole in the tooltip
ERROR_COLOR = "#b00020"


def table_columns(small: int, large: int) -> list[tuple[str, str]]:
    """(header, tooltip) of the per-form table, naming the batches the report measured."""
    return [("Form", "the model as it runs: hover for notes"),
            (f"Latency\nb{small} ms", f"median milliseconds per call at batch {small}"),
            (f"Throughput\nb{large} /s", f"samples per second at batch {large}"),
            ("Speed-up", f"the reference's latency at batch {small} over the form's (same process, interleaved)"),
            ("File\nKiB", "size of the file the form runs from"),
            ("Peak\nMB", "peak memory running the largest batch (see the notes above the table)"),
            ("Acc\n%", "test accuracy of the form on the subset named above"),
            ("Changed", "the form's accuracy differs from dense's by more than 0.1 points"),
            ("Description", "what the form is; the widest column last, so that it takes the room left")]


class DeployView(QWidget):
    measure_requested = Signal(object)     # DeployOptions, from the controls

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        # What the controls leave out (evaluation samples, memory): tests and the screenshot script use less.
        self.defaults = DeployOptions()
        self.measure_button = QPushButton("Measure deployment")
        self.measure_button.setToolTip(MEASURE_TIP)
        self.measure_button.clicked.connect(self._measure_clicked)
        self.batches = QLineEdit(",".join(map(str, self.defaults.batches)))
        self.batches.setToolTip("Batch sizes, comma-separated: latency at the smallest, throughput at the largest")
        self.batches.setMaximumWidth(110)
        self.threads = QSpinBox()
        self.threads.setRange(1, max(256, machine_cores()))
        self.threads.setValue(machine_cores())
        self.threads.setToolTip(f"Intra-op threads of torch and onnxruntime (this machine: {machine_cores()} cores)")
        self.forms = QLineEdit()
        self.forms.setPlaceholderText("all")
        self.forms.setToolTip("Forms to measure, comma-separated (e.g. csr, onnxruntime); empty: every form the "
                              "run can take. The reference and dense are always measured.")
        self.forms.setMaximumWidth(150)
        self.repeats = QSpinBox()
        self.repeats.setRange(1, 1000)
        self.repeats.setValue(self.defaults.repeats)
        self.repeats.setToolTip("Interleaved repeats: each figure is the median")
        self.message = FitLabel(max_lines=2)
        controls = QHBoxLayout()
        controls.addWidget(self.measure_button)
        for label, widget in (("Batches", self.batches), ("Threads", self.threads), ("Forms", self.forms),
                              ("Repeats", self.repeats)):
            controls.addWidget(QLabel(label))
            controls.addWidget(widget)
        controls.addWidget(self.message, 1)

        self.plot = DeployPlot()
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.table = QTableWidget(0, len(table_columns(1, 256)))
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        # The report's order (reference, dense, the run's own form, ...) until a header is clicked.
        self.table.horizontalHeader().setSortIndicator(-1, Qt.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.empty = QLabel(NO_RUN)
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.empty.setContentsMargins(8, 8, 8, 8)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty)
        self.stack.setCurrentWidget(self.empty)
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.title)
        lower_layout.addWidget(self.stack, 1)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.plot)
        split.addWidget(lower)
        split.setSizes([480, 360])
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(split, 1)
        self._focus = None

    # --- API ----------------------------------------------------------------------------------------
    def options(self) -> DeployOptions:
        """The controls' choices on top of `defaults`; WorkbenchError (one line) for bad batch sizes."""
        return replace(self.defaults, batches=parse_batches(self.batches.text()), threads=self.threads.value(),
                       forms=parse_forms(self.forms.text()), repeats=self.repeats.value())

    def set_runs(self, traces: list, focus=None) -> None:
        """Plot the reports of `traces`; the table shows `focus`'s (the current run)."""
        self.plot.set_reports([(t.label, t.deploy) for t in traces])
        self._focus = focus
        self._fill_table()

    def say(self, text: str, error: bool = False) -> None:
        """One line beside the controls: what the measurement is doing, or why it cannot start."""
        self.message.setStyleSheet(f"color: {ERROR_COLOR};" if error else "")
        self.message.setText(app_words(text))

    def set_measuring(self, measuring: bool) -> None:
        self.measure_button.setText("Measuring…" if measuring else "Measure deployment")

    # --- internals ----------------------------------------------------------------------------------
    def _measure_clicked(self) -> None:
        try:
            options = self.options()
        except WorkbenchError as exc:
            self.say(str(exc), error=True)
            return
        self.measure_requested.emit(options)

    def _fill_table(self) -> None:
        trace = self._focus
        report = getattr(trace, "deploy", None)
        if report is None:
            text = NO_RUN if trace is None else EMPTY_TABLE.format(run=trace.label)
            if trace is not None and trace.deploy_error:
                text = f"{trace.label}: {trace.deploy_error}"
            self.title.setText("")
            self.empty.setText(app_words(text))
            self.stack.setCurrentWidget(self.empty)
            return
        self.title.setText(f"<b>{trace.label}</b> · {heading(report)}".replace("\n", "<br>"))
        self.title.setToolTip(notes(report))
        columns = table_columns(small_batch(report), max(report.batches))
        table = self.table
        table.setSortingEnabled(False)
        table.clearContents()
        table.setRowCount(0)
        table.setColumnCount(len(columns))
        for i, (name, tip) in enumerate(columns):
            item = QTableWidgetItem(name)
            item.setToolTip(tip)
            table.setHorizontalHeaderItem(i, item)
        for r, row in enumerate(form_rows(report)):
            table.insertRow(r)
            name = QTableWidgetItem(row.name)
            name.setToolTip(row.note or row.description)
            description = QTableWidgetItem(row.description)
            description.setToolTip(row.description)
            changed = QTableWidgetItem("changed" if row.changed else "")
            if row.changed:
                changed.setToolTip(row.note)
            cells = [name, NumberItem(row.latency_ms, ".4g"), NumberItem(row.throughput, ",.0f"),
                     NumberItem(row.speedup, ".2f"), NumberItem(row.file_kib, ".1f"),
                     NumberItem(row.peak_mb, ".1f"), NumberItem(row.accuracy_pct, ".2f"), changed, description]
            for c, item in enumerate(cells):
                table.setItem(r, c, item)
        table.setSortingEnabled(True)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        fit_columns(table, [name for name, _ in columns], {"Description": DESCRIPTION_WIDTH})
        header.setStretchLastSection(True)
        self.stack.setCurrentWidget(table)

    def table_text(self) -> list[list[str]]:
        """The table as shown (tests): one list of cell texts per row."""
        return [[self.table.item(r, c).text() if self.table.item(r, c) else ""
                 for c in range(self.table.columnCount())] for r in range(self.table.rowCount())]
