"""Training curves: train loss (top) and test accuracy (bottom) against training steps, x-linked.

The x axis is the `step` metric (optimizer steps since the run began, cumulative across stages): it is
recorded at every point, increases monotonically through surgery and fine-tuning stages, and does not
depend on a steps-per-epoch figure the trace does not carry. Wall time would mix in machine load.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from workbench.gui.plots.common import (
    ViewNote,
    aligned,
    legend_columns,
    legend_runs,
    plain_axes,
    run_color,
    show_values,
)
from workbench.gui.plots.log_axis import LogAxis


class CurvesPlot(QtWidgets.QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._curves: dict[str, tuple[object, pg.PlotDataItem, pg.PlotDataItem]] = {}
        self.view = pg.GraphicsLayoutWidget()
        self.loss_plot = self.view.addPlot(row=0, col=0, axisItems={"left": LogAxis("left")})
        self.acc_plot = self.view.addPlot(row=1, col=0)
        # Loss falls over orders of magnitude (0.3 -> 1e-4 when fine-tuning): log y keeps it readable.
        self.loss_plot.setLogMode(y=True)
        self.loss_plot.setLabel("left", "train loss")
        # short axis titles: at 1280x800 each plot is about 100 px tall and longer ones ran into each other
        self.acc_plot.setLabel("left", "test acc. (%)")
        self.acc_plot.setLabel("bottom", "training steps (cumulative over stages)")
        # empty, a percent axis reads 0-100, not pyqtgraph's 0-1; the first run's points range it as before
        self.acc_plot.setYRange(0, 100, padding=0)
        self.acc_plot.enableAutoRange(y=True)
        self.acc_plot.setXLink(self.loss_plot)
        for plot in (self.loss_plot, self.acc_plot):
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.getAxis("left").setWidth(60)     # equal widths keep the two x axes aligned
        self.loss_plot.getAxis("bottom").setStyle(showValues=False)
        plain_axes(self.acc_plot)
        # The legend has a row of its own under the plots: inside them it covered curves wherever it
        # sat (a loss staying high runs along the top, an accuracy rising slowly along the bottom).
        self.legend = pg.LegendItem(labelTextSize="9pt")
        self._more_runs = pg.PlotDataItem(pen=None)    # the legend's "N earlier runs" line (drawn nowhere)
        self.view.addItem(self.legend, row=2, col=0)
        for row, stretch in ((0, 1), (1, 1), (2, 0)):
            self.view.ci.layout.setRowStretchFactor(row, stretch)
        self.note = ViewNote(self.loss_plot, "No runs to show: start a run or open run files.")
        self._show_values()
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)

    def set_traces(self, traces) -> None:
        """Replace all runs; colours follow list order, as in RatioPlot."""
        for _, loss, acc in self._curves.values():
            self.loss_plot.removeItem(loss)
            self.acc_plot.removeItem(acc)
        self._curves.clear()
        self._sync_legend()
        for trace in traces:
            self.update_trace(trace)
        self.note.setVisible(not self._curves)
        self._show_values()

    def _show_values(self) -> None:
        """Steps and loss values only where there are runs; the empty accuracy axis keeps its 0-100."""
        show_values(self.loss_plot, bool(self._curves), ("left",))
        show_values(self.acc_plot, bool(self._curves), ("bottom",))

    def update_trace(self, trace) -> None:
        """Fast path: existing curves get new data in place; an unknown run gets its curves once."""
        key = trace.path or trace.label
        if key not in self._curves:
            color = run_color(len(self._curves))
            pen = pg.mkPen(color, width=2)
            loss = self.loss_plot.plot(pen=pen, connect="finite")
            acc = self.acc_plot.plot(pen=pen, symbol="o", symbolSize=4, symbolBrush=color,
                                     symbolPen=None, connect="finite")
            self._curves[key] = (trace, loss, acc)
            self._sync_legend()
            self.note.hide()
            self._show_values()
        _, loss, acc = self._curves[key]
        self._curves[key] = (trace, loss, acc)
        step = aligned(trace, "step")
        train_loss = aligned(trace, "train_loss")
        # log axis: a loss of exactly 0 cannot be drawn; leave it out rather than fake a value.
        loss.setData(step, np.where(train_loss > 0, train_loss, np.nan))
        acc.setData(step, aligned(trace, "test_accuracy") * 100.0)

    def curves(self, trace_or_key):
        """(loss item, accuracy item) of one run, for tests and linking."""
        key = trace_or_key if isinstance(trace_or_key, str) else (trace_or_key.path or trace_or_key.label)
        return self._curves[key][1:]

    def export_item(self):
        return self.view.ci

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_legend()

    def _sync_legend(self) -> None:
        """The latest runs by name, one line for the rest (legend_runs): a study's dozens of runs made the
        legend's row taller than the plots above it."""
        self.legend.clear()
        for item, name in legend_runs([(loss, t.label) for t, loss, _ in self._curves.values()], self._more_runs):
            self.legend.addItem(item, name)
        self._fit_legend()

    def _fit_legend(self) -> None:
        """As many legend columns as the width holds, so a few runs take one line, not one each."""
        items = self.legend.items
        if not items:
            return
        # preferredWidth is the text's own width; width() is the layout column's (the widest entry's)
        widths = [sample.width() + label.preferredWidth() + 12 for sample, label in items]
        columns = legend_columns(widths, self.view.width() - 70)
        self.legend.setColumnCount(columns)
