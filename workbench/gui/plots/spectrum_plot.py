"""Low-rank methods' spectra: a layer's singular values at one point with the cumulative energy below it,
the energy threshold and the rank it gives; beside them, the rank kept per layer against its full rank.

The spectrum shows how far the nuclear-norm training has pushed the tail towards zero (the reference
spectrum stays faint behind it), the energy curve shows where the threshold cuts it. The spectrum follows
the histogram's layer and point; a layer that records none falls back to the first that does.

Everything drawn is a series the method recorded at that point (methods/lowrank.py, `layer_spectra`):
singular_values, rank, numerical_rank, and for the energy panel cumulative_energy, energy_threshold,
energy_rank and energy_power. Run files written before the energy series existed get the spectrum, the
rank lines and the bars, and an energy panel that says it was not recorded.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from workbench.gui.plots.common import SideTab, aligned, foreground, layer_value, plain_axes, run_color

SPECTRUM = "singular_values"
ENERGY = "cumulative_energy"          # fraction of the energy held by the leading 1..k singular values
ENERGY_LABELS = {1.0: "energy kept (Σσ)", 2.0: "energy kept (Σσ²)"}     # by energy_power
LABEL_WIDTH = 44      # px: "/4096" in the default font


def _spectrum(trace, layer: str, point: int) -> np.ndarray | None:
    v = layer_value(trace, layer, SPECTRUM, point)
    if v is None or np.ndim(v) != 1 or not np.isfinite(v).any():
        return None
    return np.asarray(v, float)


class SpectrumPlot(SideTab):
    def __init__(self, parent=None):
        super().__init__("no singular values recorded in this run (lowrank and svd record them)", parent)
        self._layer = ""
        self._point = -1            # -1: follow the last point
        self._seen = 0              # the trace's points at the last redraw
        fg = foreground()

        self.sigma_plot = self.view.addPlot(row=0, col=0)
        self.sigma_plot.setLabel("left", "singular value σ")
        self.sigma_plot.showGrid(x=True, y=True, alpha=0.2)
        self.sigma_plot.getAxis("bottom").setStyle(showValues=False)   # the energy plot below labels x
        faint = pg.mkColor(fg)
        faint.setAlpha(110)
        self.first_curve = pg.PlotDataItem(pen=pg.mkPen(faint, width=1, style=QtCore.Qt.PenStyle.DashLine))
        fill = pg.mkColor(run_color(0))
        fill.setAlpha(80)
        self.sigma_curve = pg.PlotDataItem(pen=pg.mkPen(run_color(0), width=2), fillLevel=0, brush=fill)
        self.sigma_plot.addItem(self.first_curve)
        self.sigma_plot.addItem(self.sigma_curve)

        self.energy_plot = self.view.addPlot(row=1, col=0)
        self.energy_plot.setLabel("left", "energy kept")
        self.energy_plot.setLabel("bottom", "index (descending σ)")
        self.energy_plot.showGrid(x=True, y=True, alpha=0.2)
        self.energy_plot.setXLink(self.sigma_plot)
        self.energy_plot.setYRange(0, 1.05, padding=0)
        self.energy_plot.setMouseEnabled(y=False)
        self.energy_curve = pg.PlotDataItem(pen=pg.mkPen(fg, width=2))
        self.energy_plot.addItem(self.energy_curve)
        # The left axes get one width so the linked x axes line up exactly.
        for plot in (self.sigma_plot, self.energy_plot):
            plot.getAxis("left").setWidth(48)

        threshold_pen = pg.mkPen(run_color(2), width=1, style=QtCore.Qt.PenStyle.DashLine)
        self.threshold_line = pg.InfiniteLine(angle=0, movable=False, pen=threshold_pen,
                                              label="energy {value:.2g}",
                                              labelOpts={"position": 0.98, "color": run_color(2),
                                                         "anchors": [(1, 0), (1, 0)]})
        self.energy_plot.addItem(self.threshold_line, ignoreBounds=True)
        rank_pen = pg.mkPen(run_color(1), width=1.5)
        self.rank_line = pg.InfiniteLine(angle=90, movable=False, pen=rank_pen, label="rank {value:.0f}",
                                         labelOpts={"position": 0.9, "color": run_color(1),
                                                    "anchors": [(0, 0.5), (0, 0.5)]})
        self.sigma_plot.addItem(self.rank_line, ignoreBounds=True)
        # Where sigma is numerically zero: the rank the training itself has reached.
        dotted = pg.mkPen(faint, width=1, style=QtCore.Qt.PenStyle.DotLine)
        self.numerical_line = pg.InfiniteLine(angle=90, movable=False, pen=dotted, label="numerical {value:.0f}",
                                              labelOpts={"position": 0.65, "color": foreground(),
                                                         "anchors": [(0, 0.5), (0, 0.5)]})
        self.sigma_plot.addItem(self.numerical_line, ignoreBounds=True)
        self.energy_rank_line = pg.InfiniteLine(angle=90, movable=False, pen=rank_pen)
        self.energy_plot.addItem(self.energy_rank_line, ignoreBounds=True)

        self.bars_plot = self.view.addPlot(row=0, col=1, rowspan=2)
        self.bars_plot.showGrid(y=True, alpha=0.2)
        self.bars_plot.setMouseEnabled(x=False, y=False)    # nothing to explore; avoids losing the bars
        plain_axes(self.sigma_plot, self.energy_plot, self.bars_plot)
        self.bars_plot.hideButtons()
        self.bars_plot.getAxis("left").setTicks([[(v, str(v)) for v in (0, 25, 50, 75, 100)]])
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.6, pen=pg.mkPen(None))
        self.bars_plot.addItem(self.bars)
        self._bar_labels: list[pg.TextItem] = []
        self._bar_layers: list[str] = []

        grid = self.view.ci.layout
        grid.setRowStretchFactor(0, 3)
        grid.setRowStretchFactor(1, 2)
        grid.setColumnStretchFactor(0, 3)
        grid.setColumnStretchFactor(1, 2)
        self._redraw()

    # ---- public API ------------------------------------------------------------------------------
    def set_trace(self, trace, point: int = -1) -> None:
        self._trace, self._point = trace, point
        self._redraw()

    def update_trace(self, trace) -> None:
        """Live update: stays on its point, or on the newest one if it was following the last."""
        # A live trace grows in place, so "the last point" is the one seen at the previous redraw.
        if self._point == self._seen - 1:
            self._point = -1
        self._trace = trace
        self._redraw()

    def set_layer(self, layer: str, point: int = -1) -> None:
        self._layer, self._point = layer, point
        self._redraw()

    def spectrum_layer(self) -> str:
        """The layer drawn: the selected one if it records a spectrum, else the first that does."""
        layers = self.spectrum_layers()
        return self._layer if self._layer in layers else (layers[0] if layers else "")

    def spectrum_layers(self) -> list[str]:
        trace = self._trace
        if trace is None:
            return []
        return [name for name, series in trace.layers.items()
                if any(_spectrum(trace, name, i) is not None for i in range(len(series.get(SPECTRUM, []))))]

    def shown_point(self) -> int:
        """The chosen point, or the nearest one with a spectrum (earlier first); -1 when none has one."""
        trace, layer = self._trace, self.spectrum_layer()
        if trace is None or not layer:
            return -1
        chosen = self._point if 0 <= self._point < trace.points else trace.points - 1
        order = list(range(chosen, -1, -1)) + list(range(chosen + 1, trace.points))
        return next((i for i in order if _spectrum(trace, layer, i) is not None), -1)

    def bar_layers(self) -> list[str]:
        return list(self._bar_layers)

    def bar_heights(self) -> np.ndarray:
        return np.asarray(self.bars.opts["height"], float)

    def bar_texts(self) -> list[str]:
        return [label.textItem.toPlainText().replace("\n", "").replace("\u2028", "")
                for label in self._bar_labels[:len(self._bar_layers)]]

    def export_item(self):
        return self.view.ci

    # ---- drawing ---------------------------------------------------------------------------------
    def _redraw(self) -> None:
        self._seen = self._trace.points if self._trace is not None else 0
        layers = self.spectrum_layers()
        point = self.shown_point()
        has = point >= 0
        self.note.setVisible(not has)
        self.view.setVisible(has)
        if not has:
            for item in (self.sigma_curve, self.first_curve, self.energy_curve):
                item.setData([], [])
            self._draw_bars([], -1)
            return
        trace, layer = self._trace, self.spectrum_layer()
        sigma = _spectrum(trace, layer, point)
        index = np.arange(1, len(sigma) + 1, dtype=float)
        self.sigma_curve.setData(index, sigma)
        first = next((i for i in range(trace.points) if _spectrum(trace, layer, i) is not None), point)
        if first != point:
            before = _spectrum(trace, layer, first)
            self.first_curve.setData(np.arange(1, len(before) + 1, dtype=float), before)
            self.first_curve.show()
        else:
            self.first_curve.hide()
        curve = layer_value(trace, layer, ENERGY, point)
        if curve is not None and (np.shape(curve) != np.shape(sigma) or not np.isfinite(curve).all()):
            curve = None              # not recorded at this point (an older run file, a NaN-padded row)
        if curve is None:
            self.energy_curve.setData([], [])
        else:
            self.energy_curve.setData(index, np.asarray(curve, float))
        self.energy_plot.setTitle(None if curve is not None else "energy not recorded in this run file",
                                  size="9pt")
        power = layer_value(trace, layer, "energy_power", point)
        self.energy_plot.setLabel("left", ENERGY_LABELS.get(power, "energy kept"))
        energy = layer_value(trace, layer, "energy_threshold", point) if curve is not None else None
        energy_rank = layer_value(trace, layer, "energy_rank", point) if curve is not None else None
        self.threshold_line.setVisible(energy is not None)
        if energy is not None:
            self.threshold_line.setValue(energy)
        rank = layer_value(trace, layer, "rank", point)
        numerical = layer_value(trace, layer, "numerical_rank", point)
        for line, value in ((self.rank_line, rank), (self.energy_rank_line, energy_rank),
                            (self.numerical_line, numerical)):
            line.setVisible(value is not None)
            if value is not None:
                line.setValue(value)
                if getattr(line, "label", None) is not None:   # text on the roomier side, not cut at the edge
                    side = 1 if value > 0.6 * len(sigma) else 0
                    line.label.anchors = [(side, 0.5), (side, 0.5)]
                    line.label.updatePosition()
        # Short titles: a title's width is a minimum width of its plot, and the tab is narrow.
        behind = f" (dashed: {self._when(first)})" if first != point else ""
        self.sigma_plot.setTitle(f"{layer} · {self._when(point)}{behind}", size="9pt")
        self.sigma_plot.setXRange(0.5, len(sigma) + 0.5, padding=0.02)
        self._draw_bars(layers, point)

    def _when(self, point: int) -> str:
        epoch = aligned(self._trace, "epoch")[point]
        label = self._trace.point_labels[point]
        return f"epoch {epoch:g}" if label == "epoch" and np.isfinite(epoch) else label

    def _draw_bars(self, layers: list[str], point: int) -> None:
        trace = self._trace
        ranks, fulls = [], []
        for layer in layers:
            sigma = _spectrum(trace, layer, point)
            ranks.append(layer_value(trace, layer, "rank", point))
            fulls.append(len(sigma) if sigma is not None else None)
        heights = np.array([100.0 * r / f if r is not None and f else np.nan for r, f in zip(ranks, fulls)],
                           float)
        accent, plain = run_color(1), run_color(9)
        selected = self.spectrum_layer()
        # Missing values are zero-height bars labelled "n/a", so positions keep matching the axis names.
        self.bars.setOpts(x=np.arange(len(layers), dtype=float), height=np.nan_to_num(heights), width=0.6,
                          brushes=[accent if layer == selected else plain for layer in layers])
        self._bar_layers = list(layers)
        self.bars_plot.getAxis("bottom").setTicks([[(i, name) for i, name in enumerate(layers)]])
        self.bars_plot.setTitle("rank kept, % of full", size="9pt")
        while len(self._bar_labels) < len(layers):
            label = pg.TextItem(color=foreground(), anchor=(0.5, 1))
            label.setTextWidth(LABEL_WIDTH)    # centres the two lines; "128/300" on one did not fit
            self.bars_plot.addItem(label, ignoreBounds=True)
            self._bar_labels.append(label)
        for i, label in enumerate(self._bar_labels):
            label.setVisible(i < len(layers))
            if i < len(layers):
                r, f, h = ranks[i], fulls[i], heights[i]
                text = "n/a" if not np.isfinite(h) else f"{r:.0f}<br>/{f}"
                label.setHtml(f'<div style="text-align:center; color:{foreground().name()}">{text}</div>')
                label.setPos(i, h if np.isfinite(h) else 0)
        self.bars_plot.setYRange(0, 125, padding=0)     # room for the labels above a full-rank bar
        self.bars_plot.setXRange(-0.6, max(len(layers) - 0.4, 0.4), padding=0)
