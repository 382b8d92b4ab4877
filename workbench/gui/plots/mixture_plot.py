"""Soft weight-sharing's mixture over training: component means against training steps (line width
from the mixing weight), and at the end each weight against its value before training.

The means' paths show the components gathering the weights and merging; the scatter is the paper's
Figure 2 view: horizontal bands where weights were snapped to a shared value, the zero band pruned.
The mixture is the same for every layer; the scatter follows the histogram's layer.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore

from workbench.gui.plots.common import SideTab, aligned, foreground, layer_value, plain_axes, run_color


class MixturePlot(SideTab):
    def __init__(self, parent=None):
        super().__init__("no mixture recorded in this run (soft weight-sharing records one)", parent)
        self._layer = ""
        # what tau did (tau_text) on a line of its own over both plots: as the means plot's title it
        # was wider than the plot at 1280x800, widened its column and pushed the scatter off the tab
        self.tau_label = self.view.addLabel("", row=0, col=0, colspan=2, size="9pt")
        self.means_plot = self.view.addPlot(row=1, col=0)
        self.means_plot.setLabel("left", "component mean")
        self.means_plot.setLabel("bottom", "training steps")
        self.means_plot.showGrid(x=True, y=True, alpha=0.2)
        self.scatter_plot = self.view.addPlot(row=1, col=1)
        self.scatter_plot.setLabel("left", "final weight")
        self.scatter_plot.setLabel("bottom", "initial weight")
        self.scatter_plot.showGrid(x=True, y=True, alpha=0.2)
        self.scatter = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(run_color(0) + "90"))
        self.scatter_plot.addItem(self.scatter)
        plain_axes(self.means_plot, self.scatter_plot)
        self._lines: list[pg.PlotDataItem] = []
        self.view.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        """The two plots share the view's width equally. Left to the grid, a column gets at least its
        items' minimum width, which for a titled plot is its title's: the means plot got what the
        scatter's title left over (at 1280x800 a third, its step ticks ran together), and equal stretch
        factors did not change that (they share only the room beyond the preferred widths)."""
        if watched is self.view and event.type() == QtCore.QEvent.Type.Resize:
            grid = self.view.ci.layout
            left, _, right, _ = grid.getContentsMargins()
            room = event.size().width() - left - right - grid.horizontalSpacing()
            for col in (0, 1):
                grid.setColumnFixedWidth(col, max(room / 2 - 1, 1.0))
        return super().eventFilter(watched, event)

    def set_layer(self, layer: str, point: int = -1) -> None:
        self._layer = layer
        self._redraw()

    def component_paths(self) -> np.ndarray:
        """(points, components) means as drawn, for tests."""
        return self._means()[1]

    def tau_text(self) -> str:
        """What tau did over the run: as set, or how snap_budget raised it and at which epochs."""
        _, taus = self._recorded("tau")
        known = [(i, t) for i, t in enumerate(taus) if t is not None]
        if not known:
            return ""
        epochs = aligned(self._trace, "epoch")
        grew = [i for (_, a), (i, b) in zip(known, known[1:]) if b > a]
        first, peak, last = known[0][1], max(t for _, t in known), known[-1][1]
        text = f"tau {first:g}"
        if grew:
            at = ", ".join(f"{epochs[i]:g}" if np.isfinite(epochs[i]) else f"point {i}" for i in grew)
            text += f" -> {peak:g} (snap budget; raised after epoch {at})"
        if last < peak:     # the gradual snap's steps: tau back as set, or 0 (the prior off; sws.py)
            text += "; the prior off for the snap steps" if last == 0 else f"; {last:g} for the snap steps"
        return text

    def steps_text(self) -> str:
        """Where the gradual snap (snap_steps) acted: from which epoch, and the share of the layer held."""
        layer, held = self._recorded("snap_held")
        first = next((i for i, h in enumerate(held) if h is not None and h > 0), None)
        if first is None:
            return ""
        epoch = aligned(self._trace, "epoch")[first]
        last = next(h for h in reversed(held) if h is not None)
        return (f"snapped in steps from epoch {epoch:g}" if np.isfinite(epoch) else "snapped in steps") + \
            f" ({last:.0%} of {layer} held)"

    def _recorded(self, key: str) -> tuple[str, list]:
        """The mixture's layer and what it recorded under `key` at each point (None where nothing)."""
        layer = self._mixture_layer()
        series = self._trace.layers.get(layer, {}).get(key) if layer else None
        return layer, [layer_value(self._trace, layer, key, i) for i in range(len(series))] if series else []

    def _mixture_layer(self) -> str:
        trace = self._trace
        if trace is None:
            return ""
        if "mix_mean" in trace.layers.get(self._layer, {}):
            return self._layer
        return next((name for name, series in trace.layers.items() if "mix_mean" in series), "")

    def _means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        layer = self._mixture_layer()
        if not layer:
            return np.zeros(0), np.zeros((0, 0)), np.zeros((0, 0))
        rows = self._trace.layers[layer]["mix_mean"]
        weights = self._trace.layers[layer].get("mix_weight", [None] * len(rows))
        width = max((len(r) for r in rows if r is not None and np.ndim(r) == 1), default=0)

        def table(values):
            out = np.full((len(values), width), np.nan)
            for i, r in enumerate(values):
                if r is not None and np.ndim(r) == 1:
                    out[i, :len(r)] = r
            return out

        return aligned(self._trace, "step"), table(rows), table(weights)

    def _redraw(self) -> None:
        steps, means, weights = self._means()
        has = bool(means.size > 0 and np.isfinite(means).any())
        self.note.setVisible(not has)
        self.view.setVisible(has)
        for line in self._lines:
            line.hide()
        if not has:
            self.scatter.setData([], [])
            return
        fg = foreground()
        while len(self._lines) < means.shape[1]:
            line = pg.PlotDataItem(connect="finite")
            self.means_plot.addItem(line)
            self._lines.append(line)
        for j in range(means.shape[1]):
            pi = np.nanmax(weights[:, j]) if np.isfinite(weights[:, j]).any() else 0.0
            color = pg.mkColor(run_color(j))
            if j == 0:
                color = pg.mkColor(fg)      # the fixed zero component
            self._lines[j].setData(steps, means[:, j], pen=pg.mkPen(color, width=1 + 3 * min(pi * 4, 1)))
            self._lines[j].show()
        # a line each: side by side they ran past the tab's width at 1280x800 (looked at under Xvfb)
        self.tau_label.setText("<br>".join(t for t in (self.tau_text(), self.steps_text()) if t), size="9pt")
        last = self._trace.points - 1
        layer = self._layer or self._mixture_layer()
        initial = layer_value(self._trace, layer, "scatter_initial", last)
        final = layer_value(self._trace, layer, "scatter_final", last)
        if initial is not None and final is not None and np.ndim(initial) == 1:
            self.scatter.setData(np.asarray(initial, float), np.asarray(final, float))
            self.scatter_plot.setTitle(f"{layer} (a sample)", size="9pt")
        else:
            self.scatter.setData([], [])
            self.scatter_plot.setTitle("at the end of the run", size="9pt")
