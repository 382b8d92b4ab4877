"""Kept fraction (%) per layer at one evaluation point, as bars named by layer.

Shows at a glance where a method put the sparsity (e.g. DNS keeping ~14% of conv1 but <1% of fc1).
The bar item and the value labels are created once and updated in place when the point changes.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from workbench.gui.plots.common import ViewNote, foreground, layer_value, plain_axes, run_color

NO_RUN = "No run yet: the kept weights of each layer\nof the run in focus appear here."


class KeptBars(QtWidgets.QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._trace = None
        self._point = -1            # -1: follow the last point
        self._selected = ""
        self._seen = 0              # points the trace had at the last redraw (a live trace grows in place)
        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setLabel("left", "kept weights (%)")
        self.plot.setYRange(0, 100, padding=0)          # empty: a percent axis, not pyqtgraph's 0-1
        self.plot.getAxis("bottom").setTicks([[]])      # empty: no layers to name, not 0.1 ... 0.9
        self.plot.showGrid(y=True, alpha=0.2)
        self.plot.setMouseEnabled(x=False, y=False)     # nothing to explore; avoids losing the bars
        self.plot.hideButtons()
        plain_axes(self.plot)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.6, pen=pg.mkPen(None))
        self.plot.addItem(self.bars)
        self.note = ViewNote(self.plot, NO_RUN)
        self._labels: list[pg.TextItem] = []
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot_widget)

    def set_trace(self, trace, point: int = -1) -> None:
        self._trace, self._point = trace, point
        self._redraw()

    def update_trace(self, trace) -> None:
        """Live update: stays on its point, or on the newest one if it was following the last."""
        if self._trace is not None and self._point == self._seen - 1:
            self._point = -1
        self._trace = trace
        self._redraw()

    def set_point(self, point: int) -> None:
        self._point = point
        self._redraw()

    def heights(self) -> np.ndarray:
        return np.asarray(self.bars.opts["height"], float)

    def export_item(self):
        return self.plot

    def follow(self, trace, layer: str, point: int) -> None:
        """Show what a HistogramView shows (its `shown` signal): the main window calls it for the open tab
        (MainWindow._histogram_shown)."""
        self._trace, self._selected, self._point = trace, layer, point
        self._redraw()

    def _redraw(self) -> None:
        trace = self._trace
        self._seen = trace.points if trace else 0
        layers = list(trace.layers) if trace else []
        point = self._point if self._point >= 0 else (trace.points - 1 if trace else 0)
        kept = [layer_value(trace, layer, "kept_fraction", point) for layer in layers]
        heights = np.array([np.nan if k is None else 100.0 * k for k in kept], float)
        x = np.arange(len(layers), dtype=float)
        accent, plain = run_color(0), run_color(9)
        brushes = [accent if layer == self._selected else plain for layer in layers]
        # Missing values are drawn as zero-height bars with an "n/a" label, not dropped, so positions
        # keep matching the layer names on the axis.
        self.bars.setOpts(x=x, height=np.nan_to_num(heights), width=0.6, brushes=brushes)
        if trace is not None and 0 <= point < trace.points:
            self.plot.setTitle(f"kept weights per layer, {trace.point_labels[point]} point {point + 1}"
                               f"/{trace.points}", size="9pt")
        else:
            self.plot.setTitle(None)        # no point to name: not the last run's title
        self.note.say("" if layers and trace.points else NO_RUN)
        self.plot.getAxis("bottom").setTicks([[(i, name) for i, name in enumerate(layers)]])
        while len(self._labels) < len(layers):
            label = pg.TextItem(color=foreground(), anchor=(0.5, 1))
            self.plot.addItem(label, ignoreBounds=True)
            self._labels.append(label)
        for i, label in enumerate(self._labels):
            label.setVisible(i < len(layers))
            if i < len(layers):
                h = heights[i]
                label.setText("n/a" if not np.isfinite(h) else f"{h:.2g}%" if h < 10 else f"{h:.0f}%")
                label.setPos(i, 0 if not np.isfinite(h) else h)
        if np.isfinite(heights).any():
            self.plot.setYRange(0, max(np.nanmax(heights), 1e-3) * 1.2, padding=0)   # room for the labels
        else:
            self.plot.setYRange(0, 100, padding=0)      # nothing to show: the empty percent axis
        self.plot.setXRange(-0.6, max(len(layers) - 0.4, 0.4), padding=0)
