"""The comparison table of runs: sortable, selectable (selected runs are overlaid in the plots),
with the equivalent CLI command of a run one click away and CSV export.

Repeats (completed runs that differ only in their seed: engine.compare.repeat_sets) are one row while
"Group repeats" is ticked: each figure's mean ± sample std, sorted by the mean, the members in its
tooltip; selecting it selects its runs. Unticked, the runs' own rows show instead.

"Watch folder…" asks the window to follow a folder's run files (gui/folder_watch.py); the watch bar in the
button row says which folder, how many runs, and stops it."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.core import params as P
from workbench.core.config import TrainParams
from workbench.core.errors import WorkbenchError
from workbench.engine.compare import config_key, repeat_sets
from workbench.engine.repeats import spread
from workbench.gui.deploy_figures import compare_figures
from workbench.gui.folder_watch import WatchBar
from workbench.gui.run_trace import RunTrace
from workbench.methods import get_method

COLUMNS = [  # (header, tooltip); the header is also the CSV's
    ("Run", "method, model, data set, seed and start time; hover a run for its file (right-click a header "
            "to show the Method, Model and Data columns)"), ("Method", ""), ("Model", ""), ("Data", ""), ("Status", ""),
    ("Ref acc %", "test accuracy before compression"), ("Acc %", "test accuracy after compression"),
    ("Params x", "dense / stored parameters (Han 2015, DNS)"),
    ("Bits x", "dense fp32 bits / stored bits (Deep Compression, SWS)"), ("KiB", "stored size"),
    ("Latency ms", "batch-1 latency of the run's fastest form on CPU (hover a cell for the form); blank until "
                   "the run's deployment is measured (Deploy tab)"),
    ("Speed-up", "that form's batch-1 latency speed-up against the reference, measured in the same process"),
    ("Wall s", "wall time of the compression"), ("Device", ""),
    ("Key parameters", "the knobs that differ from their defaults"),
]
# At 1280x800 the table has about 870 px beside the Setup dock for its 15 columns (measured under Xvfb:
# 1342 px of columns before, so it scrolled sideways). So: Method, Model and Data (the Run name holds them,
# and sorting by Run groups by method) start hidden, shown from the header's context menu; number columns
# get two-line headers (their figures are narrower than their names); the long texts are elided in the
# middle (the end of a run name is its start time) at these widths, whole in their tooltips.
HIDDEN = ("Method", "Model", "Data")
RUN_WIDTH, DEVICE_WIDTH, KEY_WIDTH = 175, 100, 260
KEY_MIN, PAD = 70, 14


def fit_columns(table: QTableWidget, headers: list[str], caps: dict[str, int], least: int = KEY_MIN) -> None:
    """Each shown column as wide as its cells and its header's widest line; those named in `caps` at most
    that wide (at least `least`; their text is elided, whole in the tooltip) unless the table has room
    to spare, which goes to them in order; where the table is too narrow they shrink towards `least`,
    the last first. Qt's own header hint reserves room for the sort arrow in every
    column (about 30 px more each, measured): the header's widest line is enough, and the arrow shows in
    the one column sorted."""
    metrics = table.horizontalHeader().fontMetrics()
    wanted = {}
    for col, name in enumerate(headers):
        if not table.isColumnHidden(col):
            title = max(metrics.horizontalAdvance(line) for line in name.split("\n")) + PAD
            wanted[col] = max(table.sizeHintForColumn(col), title)
    widths = {col: max(min(w, caps[headers[col]]), least) if headers[col] in caps else w
              for col, w in wanted.items()}
    spare = table.viewport().width() - sum(widths.values())
    capped = [c for c in widths if headers[c] in caps]
    for col in capped:
        more = max(0, min(spare, wanted[col] - widths[col]))
        widths[col] += more
        spare -= more
    for col in reversed(capped):            # too wide (long key parameters): the capped ones give way first
        less = max(0, min(-spare, widths[col] - least))
        widths[col] -= less
        spare += less
    for col, width in widths.items():
        table.setColumnWidth(col, width)


def header_text(name: str) -> str:
    """The header as shown: a number column's name over two lines ("Latency ms" -> "Latency\nms")."""
    index = [n for n, _ in COLUMNS].index(name)
    return name.replace(" ", "\n", 1) if 5 <= index < len(COLUMNS) - 2 else name


class NumberItem(QTableWidgetItem):
    """Sorts by number, shows formatted text; NaN sorts last. `missing` is the text of no number."""

    def __init__(self, value, fmt: str, missing: str = "-"):
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        super().__init__(format(value, fmt) if ok else missing)
        self.value = float(value) if ok else float("inf")
        self.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)

    def __lt__(self, other):
        return self.value < getattr(other, "value", float("inf"))


class SpreadItem(NumberItem):
    """A group's figure: the mean over `±std` of the members' values (times `scale`), sorted by the mean.
    Two lines, so that the column stays as wide as one run's figure (on one line the table scrolled
    sideways at 1280 px); blank where no member has the figure."""

    def __init__(self, values, fmt: str, scale: float = 1.0):
        stats = spread(values)
        mean = None if stats["mean"] is None else scale * stats["mean"]
        super().__init__(mean, fmt)
        if stats["std"] is not None:
            self.setText(f"{self.text()}\n±{format(scale * stats['std'], fmt)}")
        elif mean is None:
            self.setText("")
        self.stats = stats


def key_params(trace: RunTrace) -> str:
    """The knobs of each stage that differ from their defaults, e.g. `c_rate_layers=fc1=5,fc2=4, epochs=60`."""
    stages = trace.config.get("stages", [])
    parts = []
    for stage in stages:
        try:
            values = {**P.changed(get_method(stage["method"]).Params, stage["params"]),
                      **P.changed(TrainParams, stage.get("train", {}))}
        except WorkbenchError:  # a method this build does not know: show what the file says
            values = {**stage["params"], **stage.get("train", {})}
        items = [f"{k}={P.format_value(v)}" for k, v in values.items()]
        parts.append(f"{stage['method']}: " + ", ".join(items) if len(stages) > 1 else ", ".join(items))
    return "; ".join(parts)


def _deploy_cells(trace: RunTrace) -> list[QTableWidgetItem]:
    """Latency ms and Speed-up from the run's stored deployment report; blank (sorted last) without one."""
    figures = compare_figures(trace.deploy)
    if figures is None:
        return [NumberItem(None, "", missing=""), NumberItem(None, "", missing="")]
    cells = [NumberItem(figures.latency_ms, ".3g"), NumberItem(figures.speedup, ".2f")]
    for cell in cells:
        cell.setToolTip(figures.tip)
    return cells


class CompareView(QWidget):
    selection_changed = Signal(list)    # selected run paths
    status = Signal(str)                # one line for the status bar (e.g. what was copied)
    export_requested = Signal(str)      # run path
    open_requested = Signal()
    watch_requested = Signal()          # "Watch folder…": the window asks which folder

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.traces: dict[str, RunTrace] = {}
        self._keys: dict[str, str] = {}          # run path -> config_key, once the run has completed
        self._shown_groups: list[tuple] = []   # the groups that have a row now: (path, id of its trace)
        self._items: dict[str, QTableWidgetItem] = {}   # run path -> its row's first cell (item.row(): its row)
        # where a run stands in the window's open order (the plots' order and colours); None: appended
        self.order: Callable[[str], int] | None = None
        # Column widths are fitted once per pass of the event loop, not once per row: a study's hundreds of
        # files arrive in bursts, and each fit asks every column for its cells' width (measured: 600 runs
        # added took 16 s of the GUI thread, most of it fits, row ordering and re-hiding every row).
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(0)
        self._fit_timer.timeout.connect(self._fit_columns)
        self.table = QTableWidget(0, len(COLUMNS))
        for i, (name, tip) in enumerate(COLUMNS):
            item = QTableWidgetItem(header_text(name))
            item.setToolTip(tip)
            self.table.setHorizontalHeaderItem(i, item)
            self.table.setColumnHidden(i, name in HIDDEN)
        self.table.setTextElideMode(Qt.ElideMiddle)
        self.table.verticalHeader().setVisible(False)      # row numbers mean nothing once sorted
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setContextMenuPolicy(Qt.CustomContextMenu)
        header.customContextMenuRequested.connect(self._column_menu)
        # no sort until a header is clicked: rows then follow the open order, as the plots' legends do
        # (Qt's default indicator, column 0 descending, listed runs by name backwards)
        header.setSortIndicator(-1, Qt.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(
            lambda: self.selection_changed.emit(self.selected_paths()))
        buttons = QHBoxLayout()
        for text, slot in (("Open runs…", self.open_requested.emit), ("Copy CLI command", self.copy_cli),
                           ("Export model…", self._export), ("Remove", self.remove_selected),
                           ("Watch folder…", self.watch_requested.emit)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        self.group_box = QCheckBox("Group repeats")
        self.group_box.setChecked(True)
        self.group_box.setToolTip("Runs that differ only in their seed (Repeats, `workbench run --repeats N`) "
                                  "as one row: mean ± sample std of each figure; hover it for its runs")
        self.group_box.toggled.connect(lambda _: self._regroup())
        buttons.addWidget(self.group_box)
        buttons.addStretch(1)
        # its own row, shown only while watching: in the button row at 1280x800 it had about 130 px, too
        # few for any folder's name (looked at under Xvfb)
        self.watch_bar = WatchBar()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.watch_bar)
        layout.addWidget(self.table)

    # --- rows -----------------------------------------------------------------------------------
    def add_or_update(self, trace: RunTrace) -> None:
        self.traces[trace.path] = trace
        self.table.setSortingEnabled(False)
        row = self._row_of(trace.path)
        if row < 0:
            row = self._new_row(trace.path)
        s = trace.summary
        acc = s.get("test_accuracy", trace.series("test_accuracy")[-1] if trace.points else math.nan)
        ref = s.get("reference_accuracy", trace.series("test_accuracy")[0] if trace.points else math.nan)
        pr = s.get("param_ratio", trace.series("param_ratio")[-1] if trace.points else math.nan)
        sr = s.get("storage_ratio", trace.series("storage_ratio")[-1] if trace.points else math.nan)
        bits = s.get("bits", trace.series("bits")[-1] if trace.points else math.nan)
        keys = QTableWidgetItem(key_params(trace))
        keys.setToolTip(keys.text())
        cells = [QTableWidgetItem(trace.label), QTableWidgetItem(trace.method), QTableWidgetItem(trace.model),
                 QTableWidgetItem(str(trace.attrs.get("dataset", ""))), QTableWidgetItem(trace.status),
                 NumberItem(100 * ref, ".2f"), NumberItem(100 * acc, ".2f"), NumberItem(pr, ".1f"), NumberItem(sr, ".1f"),
                 NumberItem(bits / 8192, ".1f"), *_deploy_cells(trace), NumberItem(s.get("wall_seconds"), ".0f"),
                 QTableWidgetItem(str(trace.attrs.get("device", ""))), keys]
        cells[-2].setToolTip(cells[-2].text())
        warnings = str(trace.attrs.get("warnings", ""))
        if warnings:                       # a stalled stage (runner.stall_notice)
            cells[4].setText(f"{trace.status} (warning)")
            cells[4].setToolTip(warnings)
        cells[0].setData(Qt.UserRole, trace.path)
        self._items[trace.path] = cells[0]
        cells[0].setToolTip(f"{trace.label}\n{trace.path}" + (f"\nerror: {trace.attrs.get('error')}" if trace.attrs.get("error") else ""))
        for col, item in enumerate(cells):
            self.table.setItem(row, col, item)
        self.table.resizeRowToContents(row)      # the figures' two lines
        if trace.status == "completed":    # again each time: a watched file may be replaced by another run
            self._keys[trace.path] = config_key(trace.config)
        else:
            self._keys.pop(trace.path, None)
        self._regroup(row)                 # sorting stays off until it is done: `row` is still this run's

    # --- groups of repeats ------------------------------------------------------------------------
    def groups(self) -> list[list[str]]:
        """The run paths of each group of repeats shown (two runs or more), in table order of loading."""
        sets = repeat_sets([p for p in self.traces if p in self._keys], self._keys.get,
                           lambda p: self.traces[p].config.get("seed"))
        return [members for members in sets if len(members) > 1]

    def _regroup(self, changed: int | None = None) -> None:
        """Group rows for the groups there are now, members hidden while grouping is on. The group rows
        are rebuilt only when the groups changed (a run completed, was opened or removed), not on each
        live point of a running run, which would drop a selected group row's selection; nor when a member
        was read again (a watched folder's file replaced), whose new trace must show in the figures.
        `changed`: the one row added or updated; where the groups are the same, only it can need hiding."""
        groups = self.groups() if self.group_box.isChecked() else []
        shown = [tuple((p, id(self.traces[p])) for p in members) for members in groups]
        grouped = {p for members in groups for p in members}
        rebuild = shown != self._shown_groups
        self.table.setSortingEnabled(False)
        if rebuild:
            self._shown_groups = shown
            for row in reversed(range(self.table.rowCount())):
                if self._members(row):
                    self.table.removeRow(row)
            for members in groups:
                self._add_group_row(members)
        if rebuild or changed is None:
            for row in range(self.table.rowCount()):
                self.table.setRowHidden(row, self._path(row) in grouped)
        else:
            self.table.setRowHidden(changed, self._path(changed) in grouped)
        self.table.setSortingEnabled(True)
        self._fit_timer.start()

    def _add_group_row(self, members: list[str]) -> None:
        traces = [self.traces[p] for p in members]
        first = traces[0]
        sums = [t.summary for t in traces]

        def figure(key, fmt, scale=1.0):
            return SpreadItem([s.get(key) for s in sums], fmt, scale)

        seeds = sorted((t.config.get("seed") for t in traces), key=lambda v: (v is None, str(v).zfill(12)))
        name = QTableWidgetItem(f"{first.method} {first.model} {first.dataset} ×{len(traces)} "
                                f"(seeds {', '.join(map(str, seeds))})")
        name.setData(Qt.UserRole, "")
        name.setData(Qt.UserRole + 1, members)
        name.setToolTip("mean ± sample std (n-1) of these repeats:\n" + "\n".join(f"{t.label}: {t.path}"
                                                                                  for t in traces))
        keys = QTableWidgetItem(key_params(first))
        keys.setToolTip(keys.text())
        cells = [name, QTableWidgetItem(first.method), QTableWidgetItem(first.model),
                 QTableWidgetItem(first.dataset), QTableWidgetItem(f"completed\nn={len(traces)}"),
                 figure("reference_accuracy", ".2f", 100), figure("test_accuracy", ".2f", 100),
                 figure("param_ratio", ".1f"), figure("storage_ratio", ".1f"), figure("bits", ".1f", 1 / 8192),
                 *self._group_deploy(traces), figure("wall_seconds", ".0f"),
                 QTableWidgetItem(str(first.attrs.get("device", ""))), keys]
        row = self.table.rowCount()
        self.table.insertRow(row)
        for col, item in enumerate(cells):
            self.table.setItem(row, col, item)

    @staticmethod
    def _group_deploy(traces: list[RunTrace]) -> list[QTableWidgetItem]:
        """Latency and speed-up of the members whose deployment was measured (n in the tooltip)."""
        figures = [f for f in (compare_figures(t.deploy) for t in traces) if f is not None]
        cells = [SpreadItem([f.latency_ms for f in figures] or [None], ".3g"),
                 SpreadItem([f.speedup for f in figures] or [None], ".2f")]
        for cell in cells:
            cell.setToolTip(f"over the {len(figures)} of {len(traces)} repeats whose deployment was measured"
                            if figures else "no repeat's deployment was measured (Deploy tab)")
        return cells

    def _path(self, row: int) -> str:
        item = self.table.item(row, 0)
        return item.data(Qt.UserRole) if item is not None else ""

    def _members(self, row: int) -> list[str]:
        """A group row's run paths ([] for a run's own row)."""
        item = self.table.item(row, 0)
        return list(item.data(Qt.UserRole + 1) or []) if item is not None else []

    def _fit_columns(self) -> None:
        """Numbers at their width; the run name, device and key parameters capped (elided, whole in the
        tooltip); the key parameters take what is left (the last section stretches)."""
        fit_columns(self.table, [header_text(name) for name, _ in COLUMNS],
                    {"Run": RUN_WIDTH, "Device": DEVICE_WIDTH, "Key parameters": KEY_WIDTH})

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        # after the layout has resized the table: its viewport still has the old width here, and a fit
        # to that width shrank the capped columns the new width has room for
        self._fit_timer.start()

    def _column_menu(self, pos) -> None:
        """Show or hide any column but Run (the header's context menu)."""
        menu = QMenu(self)
        for col, (name, _) in enumerate(COLUMNS[1:], 1):
            act = menu.addAction(name)
            act.setCheckable(True)
            act.setChecked(not self.table.isColumnHidden(col))
            act.toggled.connect(lambda shown, col=col: (self.table.setColumnHidden(col, not shown),
                                                        self._fit_columns()))
        menu.popup(self.table.horizontalHeader().mapToGlobal(pos))

    def _new_row(self, path: str) -> int:
        """A row for a run new to the table: before the first run opened after it while no column sorts
        the table (files are read in parallel and arrive in any order), else at the end."""
        at = self.table.rowCount()
        if self.order is not None and self.table.horizontalHeader().sortIndicatorSection() < 0:
            # The run rows are in open order (each went in by this rule), so the scan runs from the end
            # and stops at the first run opened before this one: one step where runs arrive in order.
            mine = self.order(path)
            for r in reversed(range(self.table.rowCount())):
                other = self._path(r)
                if not other:
                    continue                 # a group row: it holds no place in the open order
                if self.order(other) <= mine:
                    break
                at = r
        self.table.insertRow(at)
        return at

    def _row_of(self, path: str) -> int:
        item = self._items.get(path)
        return item.row() if item is not None else -1

    def selected_paths(self) -> list[str]:
        """The selected runs: a group row stands for its runs."""
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        paths = [p for r in rows for p in (self._members(r) or [self._path(r)])]
        return list(dict.fromkeys(paths))

    def remove_selected(self) -> None:
        self.remove_paths(self.selected_paths())

    def remove_paths(self, paths: list[str]) -> None:
        """Take these runs out of the table (selected, or their files gone from a watched folder)."""
        for path in paths:
            row = self._row_of(path)
            self._items.pop(path, None)          # before its row goes: removeRow deletes the item
            if row >= 0:
                self.table.removeRow(row)
            self.traces.pop(path, None)
            self._keys.pop(path, None)
        self._regroup()
        self.selection_changed.emit(self.selected_paths())

    # --- actions ----------------------------------------------------------------------------------
    def cli_command(self, path: str) -> str:
        return str(self.traces[path].attrs.get("cli", ""))

    def copy_cli(self) -> None:
        paths = self.selected_paths()
        if not paths:
            self.status.emit("select runs in the table to copy their command lines")
            return
        QApplication.clipboard().setText("\n".join(self.cli_command(p) for p in paths))
        self.status.emit(f"copied the command line{'s' if len(paths) > 1 else ''} of {len(paths)} "
                         f"run{'s' if len(paths) > 1 else ''} to the clipboard")

    def _export(self) -> None:
        paths = self.selected_paths()
        if paths:
            self.export_requested.emit(paths[0])

    def write_csv(self, path: str) -> None:
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([name for name, _ in COLUMNS])
            for row in range(self.table.rowCount()):
                w.writerow([self.table.item(row, c).text().replace("\n", " ") if self.table.item(row, c) else ""
                            for c in range(len(COLUMNS))])
