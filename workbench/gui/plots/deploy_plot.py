"""Deployment figures of the shown runs: test accuracy against batch-1 latency and against file size.

One point per (run, form); a form keeps its symbol and colour in both plots and across runs, so the
legend names forms, and hovering a point names its run. The reference (the uncompressed model each run
started from) is a hollow ring in the axis colour: the baseline, not one of the run's forms. Both x axes
are logarithmic: forms differ by orders of magnitude in latency (CSR at batch 1 against onnxruntime) and
in size (int8 against fp32).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtWidgets

from workbench.gui.deploy_figures import Point, points
from workbench.gui.plots.common import PALETTE, ViewNote, foreground, plain_axes
from workbench.gui.plots.log_axis import LogAxis

EMPTY_NOTE = "No deployment measured for these runs:\nselect a finished run and press Measure deployment."
# Symbol and palette index by form (the part before "@cuda"); a form not listed gets the next free ones.
FORM_STYLE = {
    "dense": ("s", 0), "csr": ("d", 1), "lowrank": ("t", 2), "thinned": ("t1", 3), "int8": ("t2", 4),
    "hashed": ("t3", 6), "hashed-regen": ("p", 7), "onnxruntime": ("star", 5), "onnxruntime-int8": ("h", 8),
}
SPARE_SYMBOLS = ("o", "x", "+", "arrow_up", "arrow_down")
AXES = (("latency_ms", "latency at batch {} (ms)"), ("file_kib", "file size of the form (KiB)"))


def _tip(x, y, data) -> str:
    """Hover text of one point: `data` is its Point."""
    p: Point = data
    parts = [f"{p.latency_ms:.3g} ms at batch {p.batch}" if p.latency_ms is not None else "",
             f"{p.file_kib:.1f} KiB" if p.file_kib is not None else "",
             f"{p.accuracy_pct:.2f}% accuracy" if p.accuracy_pct is not None else "accuracy not measured"]
    return f"{p.run}\n{p.form}: " + ", ".join(x for x in parts if x)


class DeployPlot(QtWidgets.QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.view = pg.GraphicsLayoutWidget()
        self.plots = {}
        for col, (key, label) in enumerate(AXES):
            plot = self.view.addPlot(row=0, col=col, axisItems={"bottom": LogAxis("bottom")})
            plot.setLogMode(x=True, y=False)
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLabel("bottom", label.format(1))
            plot.setLabel("left", "test accuracy (%)")
            plain_axes(plot)
            self.plots[key] = plot
        self.plots["file_kib"].setYLink(self.plots["latency_ms"])    # one accuracy scale for both
        # The legend has a row of its own under the plots (as in CurvesPlot): inside, it hid points.
        self.legend = pg.LegendItem(labelTextSize="9pt", colCount=6)
        self.view.addItem(self.legend, row=1, col=0, colspan=2)
        self.view.ci.layout.setRowStretchFactor(0, 1)
        self.notes = [ViewNote(plot, EMPTY_NOTE) for plot in self.plots.values()]
        self._items: dict[str, dict[str, pg.PlotDataItem]] = {key: {} for key in self.plots}
        self._points: list[Point] = []
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)

    # --- API ----------------------------------------------------------------------------------------
    def set_reports(self, reports: list[tuple[str, object]]) -> None:
        """Draw (run label, DeployReport) pairs; a run without a report is left out."""
        self._points = [p for label, report in reports if report is not None for p in points(label, report)]
        for key, plot in self.plots.items():
            for item in self._items[key].values():
                plot.removeItem(item)
            self._items[key].clear()
        self.legend.clear()
        by_form: dict[str, list[Point]] = {}
        for p in self._points:
            by_form.setdefault(p.form, []).append(p)
        # the reference first in the legend, then the forms in the order the reports list them
        for n, (form, pts) in enumerate(sorted(by_form.items(), key=lambda kv: not kv[1][0].reference)):
            style = self._style(form, n, pts[0].reference)
            for key, plot in self.plots.items():
                drawn = [p for p in pts if getattr(p, key) and p.accuracy_pct is not None]
                item = pg.PlotDataItem([getattr(p, key) for p in drawn], [p.accuracy_pct for p in drawn],
                                       pen=None, data=drawn, name=form, **style)
                item.scatter.opts.update(hoverable=True, tip=_tip)
                plot.addItem(item)
                self._items[key][form] = item
            if any(len(item.opts["data"] or []) for item in (self._items[k][form] for k in self.plots)):
                self.legend.addItem(self._items["latency_ms"][form], form)   # a form not measured: no entry
        batches = sorted({p.batch for p in self._points})
        small = str(batches[0]) if len(batches) == 1 else "1 (or the smallest measured)"
        self.plots["latency_ms"].setLabel("bottom", AXES[0][1].format(small if batches else 1))
        for note in self.notes:
            note.say("" if self._points else EMPTY_NOTE)
        for plot in self.plots.values():
            plot.enableAutoRange()

    def drawn(self, key: str) -> dict[str, tuple[list[float], list[float], list[str]]]:
        """What one plot ("latency_ms" or "file_kib") shows: form -> (x, y, hover texts), x unlogged."""
        out = {}
        for form, item in self._items[key].items():
            xs, ys = item.getOriginalDataset()
            data = item.opts.get("data") or []
            out[form] = ([] if xs is None else list(map(float, xs)), [] if ys is None else list(map(float, ys)),
                         [_tip(None, None, d) for d in data])
        return out

    def legend_names(self) -> list[str]:
        return [label.text for _, label in self.legend.items]

    # --- drawing -------------------------------------------------------------------------------------
    @staticmethod
    def _style(form: str, n: int, reference: bool) -> dict:
        if reference:
            return dict(symbol="o", symbolSize=14, symbolBrush=None, symbolPen=pg.mkPen(foreground(), width=2))
        base, _, device = form.partition("@")
        symbol, index = FORM_STYLE.get(base, (SPARE_SYMBOLS[n % len(SPARE_SYMBOLS)], 9 - n % 3))
        color = PALETTE[index % len(PALETTE)]
        if device:            # on CUDA: the same shape, hollow
            return dict(symbol=symbol, symbolSize=11, symbolBrush=None, symbolPen=pg.mkPen(color, width=2))
        return dict(symbol=symbol, symbolSize=11, symbolBrush=color, symbolPen=pg.mkPen(foreground(), width=0.8))
